//! Provider and `backendAuth` decoding: agentgateway's keys for every
//! provider, each required key named when missing, and what the gateway
//! cannot honour refused, never parsed and ignored.

use super::*;

fn load(text: &str) -> Result<Loaded, Vec<String>> {
    load_str("t.yaml", text, &|_| None).map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

fn route(backend: &str, policies: &str) -> String {
    format!(
        "binds:\n- port: 4000\nroutes:\n- name: r\n  policies: {policies}\n  backends:\n  - ai: {backend}\n"
    )
}

fn backend(text: &str) -> AiBackend {
    let l = load(text).unwrap_or_else(|e| panic!("{e:?}"));
    match &l.config.routes[0].backends[0].kind {
        Backend::Ai(a) => a.clone(),
        other => panic!("{other:?}"),
    }
}

fn errors(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("loaded: {text}"),
        Err(e) => e.join("\n"),
    }
}

#[test]
fn every_provider_decodes_with_its_own_keys() {
    let b = backend(&route(
        "{name: g, provider: {gemini: {model: gemini-2.5-pro}}}",
        "{}",
    ));
    assert_eq!(
        (b.provider, b.model.as_deref()),
        (Provider::Gemini, Some("gemini-2.5-pro"))
    );
    let b = backend(&route(
        "{name: v, provider: {vertex: {projectId: p1, region: us-east5, model: claude-sonnet-4-5}}}",
        "{}",
    ));
    assert_eq!(b.provider, Provider::Vertex);
    assert_eq!(b.params.project_id.as_deref(), Some("p1"));
    assert_eq!(b.params.region.as_deref(), Some("us-east5"));
    let b = backend(&route(
        "{name: b, provider: {bedrock: {region: us-west-2}}}",
        "{}",
    ));
    assert_eq!(
        (b.provider, b.params.region.as_deref()),
        (Provider::Bedrock, Some("us-west-2"))
    );
    let b = backend(&route(
        "{name: a, provider: {azure: {resourceName: acme, resourceType: openAI, apiVersion: 2024-10-21, model: gpt-4o}}}",
        "{}",
    ));
    assert_eq!(b.provider, Provider::Azure);
    assert_eq!(b.params.resource_name.as_deref(), Some("acme"));
    assert_eq!(b.params.resource_type.as_deref(), Some("openAI"));
}

#[test]
fn missing_or_unknown_provider_keys_are_named() {
    let e = errors(&route("{name: b, provider: {bedrock: {}}}", "{}"));
    assert!(e.contains("missing required key `region`"), "{e}");
    let e = errors(&route("{name: v, provider: {vertex: {region: x}}}", "{}"));
    assert!(e.contains("missing required key `projectId`"), "{e}");
    let e = errors(&route(
        "{name: a, provider: {azure: {resourceName: x, resourceType: cloud}}}",
        "{}",
    ));
    assert!(e.contains("unknown resourceType"), "{e}");
    let e = errors(&route("{name: g, provider: {gemini: {region: x}}}", "{}"));
    assert!(e.contains("region"), "{e}");
    let e = errors(&route(
        "{name: b, provider: {bedrock: {region: r, guardrailIdentifier: g}}}",
        "{}",
    ));
    assert!(e.contains("guardrails are not supported"), "{e}");
    let e = errors(&route("{name: c, provider: {copilot: {}}}", "{}"));
    assert!(e.contains("not supported yet"), "{e}");
    // Every error names the file and line.
    assert!(e.contains("t.yaml:"), "{e}");
}

#[test]
fn backend_auth_variants() {
    let l = load(&route(
        "{name: b, provider: {bedrock: {region: us-east-1}}}",
        "{backendAuth: {aws: {accessKeyId: AKIDTEST, secretAccessKey: s3cr3t, sessionToken: tok}}}",
    ))
    .unwrap();
    let Some(BackendAuth::Aws(a)) = &l.config.routes[0].policies.backend_auth else {
        panic!("{:?}", l.config.routes[0].policies.backend_auth)
    };
    assert_eq!(a.access_key_id.as_deref(), Some("AKIDTEST"));
    assert_eq!(a.secret_access_key.as_ref().unwrap().expose(), "s3cr3t");
    // The secret never shows in the config dump.
    let dump = serde_json::to_string(&l.config.routes[0].policies).unwrap();
    assert!(
        !dump.contains("s3cr3t") && !dump.contains("tok\""),
        "{dump}"
    );

    let l = load(&route(
        "{name: v, provider: {vertex: {projectId: p}}}",
        "{backendAuth: {gcp: {credential: {file: sa.json}}}}",
    ))
    .unwrap();
    let Some(BackendAuth::Gcp(g)) = &l.config.routes[0].policies.backend_auth else {
        panic!()
    };
    assert!(matches!(&g.credential, Some(GcpCredential::File(p)) if p.ends_with("sa.json")));
    let l = load(&route(
        "{name: v, provider: {vertex: {projectId: p}}}",
        "{backendAuth: {gcp: {}}}",
    ))
    .unwrap();
    assert!(matches!(
        &l.config.routes[0].policies.backend_auth,
        Some(BackendAuth::Gcp(GcpAuth { credential: None }))
    ));
    let l = load(&route(
        "{name: o, provider: {openAI: {}}}",
        "{backendAuth: {key: {value: sk-1}}}",
    ))
    .unwrap();
    assert!(
        matches!(&l.config.routes[0].policies.backend_auth, Some(BackendAuth::Key(k)) if k.expose() == "sk-1")
    );

    let l = load(&route(
        "{name: o, provider: {openAI: {}}}",
        "{backendAuth: {key: {value: sk-1, location: {header: {name: X-Key, prefix: 'Token '}}}}}",
    ))
    .unwrap();
    assert!(matches!(
        &l.config.routes[0].policies.backend_auth,
        Some(BackendAuth::KeyAt { key, header, prefix })
            if key.expose() == "sk-1" && header == "x-key" && prefix == "Token "
    ));

    for (auth, needle) in [
        ("{aws: {accessKeyId: AKID}}", "go together"),
        ("{aws: {assumeRole: {roleArn: x}}}", "assumeRole"),
        ("{gcp: {type: idToken}}", "ID tokens"),
        ("{azure: {implicit: {}}}", "only `explicitConfig"),
        (
            "{azure: {explicitConfig: {managedIdentity: {}}}}",
            "only `clientSecret`",
        ),
        (
            "{azure: {explicitConfig: {clientSecret: {tenant_id: t, client_id: c}}}}",
            "missing required key `client_secret`",
        ),
        ("{copilot: {}}", "not supported yet"),
        (
            "{key: {value: k, location: {queryParameter: {name: key}}}}",
            "only a `header` location",
        ),
        (
            "{key: {value: k, location: {header: {name: 'bad name'}}}}",
            "not a header name",
        ),
        ("{key: k, aws: {}}", "exactly one"),
    ] {
        let e = errors(&route(
            "{name: b, provider: {bedrock: {region: r}}}",
            &format!("{{backendAuth: {auth}}}"),
        ));
        assert!(e.contains(needle), "{auth}: {e}");
    }
}
