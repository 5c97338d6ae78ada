//! The Kubernetes manifests in `config/k8s/` parse, hang together (names,
//! labels, ports, secret keys, probes on the admin `/healthz`), and the
//! gateway config in the ConfigMap passes `sluice validate` with the
//! Deployment's environment.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/k8s")
}

/// Every document of every manifest, keyed by `Kind/name`.
fn manifests() -> BTreeMap<String, Yaml> {
    let mut out = BTreeMap::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let docs =
            YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for d in docs {
            let kind = d["kind"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: no kind", f.display()));
            let name = d["metadata"]["name"].as_str().expect("metadata.name");
            assert!(d["apiVersion"].as_str().is_some(), "{}", f.display());
            out.insert(format!("{kind}/{name}"), d);
        }
    }
    out
}

fn get<'a>(m: &'a BTreeMap<String, Yaml>, key: &str) -> &'a Yaml {
    m.get(key)
        .unwrap_or_else(|| panic!("no {key} in {:?}", m.keys()))
}

fn list(y: &Yaml) -> &[Yaml] {
    y.as_vec().map(Vec::as_slice).unwrap_or(&[])
}

fn container_port(c: &Yaml, name: &str) -> i64 {
    list(&c["ports"])
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_i64())
        .unwrap_or_else(|| panic!("no container port {name}"))
}

#[test]
fn manifests_are_consistent_and_the_config_validates() {
    let m = manifests();
    let deploy = get(&m, "Deployment/sluice");
    let svc = get(&m, "Service/sluice");
    let cm = get(&m, "ConfigMap/sluice-config");
    let secret = get(&m, "Secret/sluice-secrets");
    let redis_deploy = get(&m, "Deployment/sluice-redis");
    let redis_svc = get(&m, "Service/sluice-redis");

    // Several replicas; selectors match the pod labels.
    assert!(deploy["spec"]["replicas"].as_i64().unwrap() >= 2);
    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    for (k, v) in deploy["spec"]["selector"]["matchLabels"].as_hash().unwrap() {
        assert_eq!(&labels[k.as_str().unwrap()], v);
    }
    for (k, v) in svc["spec"]["selector"].as_hash().unwrap() {
        assert_eq!(&labels[k.as_str().unwrap()], v, "service selector");
    }
    let redis_labels = &redis_deploy["spec"]["template"]["metadata"]["labels"];
    for (k, v) in redis_svc["spec"]["selector"].as_hash().unwrap() {
        assert_eq!(&redis_labels[k.as_str().unwrap()], v, "redis selector");
    }

    let pod = &deploy["spec"]["template"]["spec"];
    let c = &list(&pod["containers"])[0];
    let admin = container_port(c, "admin");
    let http = container_port(c, "http");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(
            c[probe]["httpGet"]["path"].as_str(),
            Some("/healthz"),
            "{probe}"
        );
        assert_eq!(
            c[probe]["httpGet"]["port"].as_str(),
            Some("admin"),
            "{probe}"
        );
    }
    let svc_port = &list(&svc["spec"]["ports"])[0];
    assert_eq!(svc_port["targetPort"].as_str(), Some("http"));

    // Every secret the pod reads exists in the Secret; the config comes from the ConfigMap.
    let mut env: Vec<(String, String)> = Vec::new();
    for e in list(&c["env"]) {
        let name = e["name"].as_str().unwrap().to_owned();
        if let Some(r) = e["valueFrom"]["secretKeyRef"].as_hash() {
            let _ = r;
            let sref = &e["valueFrom"]["secretKeyRef"];
            assert_eq!(sref["name"].as_str(), Some("sluice-secrets"));
            let key = sref["key"].as_str().unwrap();
            let value = secret["stringData"][key]
                .as_str()
                .unwrap_or_else(|| panic!("secret key {key} missing"));
            env.push((name, value.to_owned()));
        } else {
            env.push((name, e["value"].as_str().unwrap().to_owned()));
        }
    }
    for k in ["ANTHROPIC_API_KEY", "OPENAI_API_KEY", "REDIS_PASSWORD"] {
        assert!(env.iter().any(|(n, _)| n == k), "{k} not in the pod env");
    }
    let vol = list(&pod["volumes"])
        .iter()
        .find(|v| v["configMap"]["name"].as_str() == Some("sluice-config"))
        .expect("the config volume");
    let mount = list(&c["volumeMounts"])
        .iter()
        .find(|vm| vm["name"] == vol["name"])
        .expect("the config mount");
    let mount_dir = mount["mountPath"].as_str().unwrap();
    let args: Vec<&str> = list(&c["args"]).iter().filter_map(Yaml::as_str).collect();
    let cfg_arg = args[args.iter().position(|a| *a == "--config").unwrap() + 1];
    let file = cfg_arg
        .strip_prefix(&format!("{mount_dir}/"))
        .expect("config under the mount");

    // The embedded gateway config: the ports the manifests use, and valid.
    let text = cm["data"][file]
        .as_str()
        .expect("config file in the ConfigMap");
    let cfg = &YamlLoader::load_from_str(text).unwrap()[0];
    assert_eq!(
        cfg["admin"]["address"].as_str(),
        Some(format!("0.0.0.0:{admin}").as_str())
    );
    assert_eq!(cfg["binds"][0]["port"].as_i64(), Some(http));
    assert_eq!(cfg["binds"][0]["address"].as_str(), Some("0.0.0.0"));
    let url = cfg["state"]["redis"]["url"].as_str().unwrap();
    let redis_port = list(&redis_svc["spec"]["ports"])[0]["port"]
        .as_i64()
        .unwrap();
    assert!(
        url.contains(&format!("@sluice-redis:{redis_port}")),
        "the state url points at the redis Service: {url}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), file, text);
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = sluice_testkit::gateway::run(Path::new(BIN), &["validate", "--config", &path], &envs);
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown}");
    assert!(!shown.contains("replace-me"), "secrets echoed: {shown}");
}

/// Schema validation with `kubernetes-validate` (PyPI; bundles the
/// Kubernetes schemas, no cluster needed) when it is installed.
#[test]
fn manifests_match_the_kubernetes_schemas() {
    let probe = std::process::Command::new("kubernetes-validate")
        .arg("--version")
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("kubernetes-validate not installed (pip install kubernetes-validate): skipped");
        return;
    }
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".yaml"))
        .collect();
    files.sort();
    let out = std::process::Command::new("kubernetes-validate")
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
