//! The packaging README documents: the systemd unit passes `systemd-analyze verify` (no error,
//! no warning), and the Docker image builds, runs, turns healthy by its own HEALTHCHECK and
//! answers a PROPFIND. The Docker check needs a running container engine, which `.ci/run`
//! cannot install: without one it is recorded as not available (printed by `.ci/run`).

use std::process::Command;
use std::time::Duration;

use crate::common::*;

#[test]
fn the_systemd_unit_verifies_cleanly() {
    if !tools::require("systemd-analyze", "systemd") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // `verify` checks that ExecStart is executable: point it at the binary just built.
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/pan123-webdav.service"),
    )
    .expect("unit")
    .replace(
        "/usr/local/bin/pan123-webdav",
        env!("CARGO_BIN_EXE_pan123-webdav"),
    );
    let path = dir.path().join("pan123-webdav.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // Unknown keys and bad values are warnings with exit status 0.
    assert!(stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

/// `docker …` with a time bound; `None` when it could not be started.
fn docker(args: &[&str], secs: u64) -> Option<std::process::Output> {
    Command::new("timeout")
        .arg(secs.to_string())
        .arg("docker")
        .args(args)
        .output()
        .ok()
}

#[tokio::test]
async fn the_docker_image_builds_runs_and_turns_healthy() {
    let engine = docker(&["info", "--format", "{{.ServerVersion}}"], 20)
        .filter(|o| o.status.success() && !o.stdout.is_empty());
    if engine.is_none() {
        skips::not_available(
            "packaging the_docker_image_builds_runs_and_turns_healthy",
            "no running container engine (docker info fails)",
        );
        return;
    }
    let root = env!("CARGO_MANIFEST_DIR");
    let tag = format!("pan123-webdav-test:{}", std::process::id());
    let built = docker(&["build", "-q", "-t", &tag, root], 1800).expect("docker build");
    tools::ok(&built, "docker build");

    // A link mount lists from its own text, so the container needs no 123 to answer PROPFIND.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[server]\nlisten = \"0.0.0.0:8080\"\nstate_dir = \"/state\"\nsigning_key = \"{SIGNING_KEY}\"\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\n\n{}",
        password_hash(),
        link_mount("/films", "redirect", "10:http://127.0.0.1:9/a.mkv\n", "")
            .replace("proxy_url = \"{self}\"\n", ""),
    );
    std::fs::write(dir.path().join("config.toml"), config).expect("config");
    let port = free_port();
    let name = format!("pan123-webdav-test-{}", std::process::id());
    let volume = format!("{}:/config:ro", dir.path().display());
    let publish = format!("127.0.0.1:{port}:8080");
    let run = docker(
        &[
            "run",
            "-d",
            "--name",
            &name,
            "-v",
            &volume,
            "-p",
            &publish,
            "--health-interval",
            "1s",
            &tag,
        ],
        120,
    )
    .expect("docker run");
    tools::ok(&run, "docker run");

    let mut healthy = false;
    for _ in 0..120 {
        let state = docker(
            &["inspect", "--format", "{{.State.Health.Status}}", &name],
            20,
        )
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
        if state == "healthy" {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let propfind = reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
            format!("http://127.0.0.1:{port}/films/"),
        )
        .basic_auth(USER, Some(PASSWORD))
        .header("Depth", "1")
        .timeout(HANG_GUARD)
        .send()
        .await;
    let logs = docker(&["logs", &name], 20)
        .map(|o| String::from_utf8_lossy(&o.stderr).to_string())
        .unwrap_or_default();
    let _ = docker(&["rm", "-f", &name], 60);
    let _ = docker(&["rmi", "-f", &tag], 60);
    assert!(healthy, "the container never turned healthy; logs:\n{logs}");
    let res = propfind.expect("propfind");
    assert_eq!(res.status().as_u16(), 207, "logs:\n{logs}");
    let body = res.text().await.expect("body");
    assert!(body.contains("/films/a.mkv"), "{body}");
}
