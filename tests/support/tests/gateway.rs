//! Self-tests for the process harness, using `/bin/sh` scripts that speak the readiness protocol.

use std::path::Path;
use std::time::Duration;

use sluice_testkit::gateway::{self, Gateway};

const SH: &str = "/bin/sh";

#[tokio::test]
async fn parses_readiness_and_handles_signals() {
    let script = r#"
        trap 'echo "got hup" >&2' HUP
        echo "starting $MY_ENV" >&2
        echo "SLUICE_LISTENING port=8080 addr=127.0.0.1:41001 tls=false"
        echo "SLUICE_LISTENING port=0 addr=0.0.0.0:41002 tls=true"
        echo "SLUICE_ADMIN addr=127.0.0.1:41003"
        echo "SLUICE_READY"
        while true; do sleep 0.05; done
    "#;
    let mut gw = Gateway::start(Path::new(SH), &["-c", script], &[("MY_ENV", "hello")])
        .await
        .unwrap();
    assert_eq!(gw.listeners().len(), 2);
    assert_eq!(gw.addr(8080), "127.0.0.1:41001".parse().unwrap());
    assert_eq!(
        gw.url(8080, "/v1/messages"),
        "http://127.0.0.1:41001/v1/messages"
    );
    assert_eq!(gw.url(0, "/x"), "https://127.0.0.1:41002/x");
    assert_eq!(gw.admin_url("/healthz"), "http://127.0.0.1:41003/healthz");
    gw.wait_for_log("starting hello", Duration::from_secs(5))
        .await
        .unwrap();
    gw.send_signal_hup().unwrap();
    gw.wait_for_log("got hup", Duration::from_secs(5))
        .await
        .unwrap();
    assert!(gw
        .wait_for_log("never printed", Duration::from_millis(50))
        .await
        .is_err());
    gw.kill().await;
    assert!(gw.send_signal_hup().is_err());
}

#[tokio::test]
async fn early_exit_reports_stderr() {
    let script = "echo 'config error: bad yaml at line 3' >&2; exit 2";
    let err = Gateway::start(Path::new(SH), &["-c", script], &[])
        .await
        .err()
        .expect("must fail");
    assert!(err.contains("exited before SLUICE_READY"), "{err}");
    assert!(err.contains("bad yaml at line 3"), "{err}");
}

#[test]
fn run_one_shot() {
    let out = gateway::run(
        Path::new(SH),
        &["-c", "echo ok; echo $V >&2; exit 3"],
        &[("V", "from-env")],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "from-env\n");
}
