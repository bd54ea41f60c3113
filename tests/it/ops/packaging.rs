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

/// `contrib/docker-compose.yml` (README: "Running several instances"): valid YAML naming Redis,
/// two gateways each with its own `state_dir` volume and config, and the proxy; the gateways'
/// configs share one Redis and each advertises its own service; the Caddyfile balances both.
/// YAML is read by python3's `yaml` module (no YAML parser among the Rust dependencies); without
/// it the YAML part is recorded as not available.
#[test]
fn the_compose_file_names_redis_two_gateways_and_a_proxy() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib");
    let script = "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(root.join("docker-compose.yml"))
        .output();
    match out {
        Ok(out) if out.status.success() => {
            let doc: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("compose as JSON");
            let services = doc["services"].as_object().expect("services");
            for name in ["redis", "gateway-a", "gateway-b", "proxy"] {
                assert!(services.contains_key(name), "service {name}");
            }
            let volumes = |s: &str| -> Vec<String> {
                services[s]["volumes"]
                    .as_array()
                    .expect("volumes")
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            };
            let (a, b) = (volumes("gateway-a"), volumes("gateway-b"));
            assert!(a.iter().any(|v| v.ends_with(":/state")), "{a:?}");
            assert!(b.iter().any(|v| v.ends_with(":/state")), "{b:?}");
            let state = |v: &[String]| v.iter().find(|x| x.ends_with(":/state")).cloned();
            assert_ne!(state(&a), state(&b), "each instance its own state_dir");
            assert!(a.iter().any(|v| v.contains("gateway-a.toml")), "{a:?}");
            assert!(b.iter().any(|v| v.contains("gateway-b.toml")), "{b:?}");
        }
        Ok(out) => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("No module named 'yaml'") {
                skips::not_available(
                    "packaging the_compose_file_names_redis_two_gateways_and_a_proxy (YAML)",
                    "python3 has no yaml module (apt-get install python3-yaml)",
                );
            } else {
                panic!("contrib/docker-compose.yml is not valid YAML: {stderr}");
            }
        }
        Err(_) => skips::not_available(
            "packaging the_compose_file_names_redis_two_gateways_and_a_proxy (YAML)",
            "no python3",
        ),
    }
    for name in ["a", "b"] {
        let path = root.join(format!("cluster/gateway-{name}.toml"));
        let text = std::fs::read_to_string(&path).expect("gateway config");
        let doc: toml::Table = text.parse().expect("gateway config is TOML");
        let cluster = doc["cluster"].as_table().expect("[cluster]");
        assert_eq!(cluster["redis_url"].as_str(), Some("redis://redis:6379"));
        assert_eq!(cluster["instances"].as_integer(), Some(2));
        assert_eq!(
            cluster["advertise_url"].as_str(),
            Some(format!("http://gateway-{name}:8080").as_str())
        );
        assert_eq!(doc["server"]["state_dir"].as_str(), Some("/state"));
    }
    let caddy = std::fs::read_to_string(root.join("cluster/Caddyfile")).expect("Caddyfile");
    assert!(caddy.contains("reverse_proxy gateway-a:8080 gateway-b:8080"));
    assert!(
        caddy.contains("/-/internal/*"),
        "the internal route kept private"
    );
}
