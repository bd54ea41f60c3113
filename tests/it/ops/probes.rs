//! Operations: `/-/healthz`, `/-/readyz` following token failures, `/-/metrics` after a
//! scripted session, and JSON logs from the real binary.

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig, Fault, FaultKind};

/// `name{labels}` → value, from OpenMetrics text.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

async fn scrape(env: &TestEnv) -> HashMap<String, f64> {
    let res = env
        .client
        .get(env.url("/-/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200);
    assert!(header(&res, "content-type").contains("openmetrics-text"));
    parse_metrics(&res.text().await.expect("metrics body"))
}

fn value(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    value(after, key) - value(before, key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_scripted_session() {
    const N: usize = 300_000;
    let mut cfg = EmulatorConfig::default();
    cfg.switches.complete_poll_interval = Duration::ZERO;
    let env = TestEnv::start(cfg, |emu| {
        emu.put_file("/ops/film.bin", bytes_of(N, 3));
        open_mount("/m", "proxy", "")
    })
    .await;
    let before = scrape(&env).await;

    for _ in 0..3 {
        assert_eq!(env.propfind("/m/", "1").await.0, 207);
    }
    assert_eq!(env.propfind("/m/ops/", "1").await.0, 207);
    let res = env.req("GET", "/m/ops/film.bin").send().await.expect("get");
    assert_eq!(res.status(), 200);
    let body = res.bytes().await.expect("body");
    assert_eq!(body.len(), N);
    let res = env
        .req("PUT", "/m/ops/new.txt")
        .body("hello, metrics")
        .send()
        .await
        .expect("put");
    assert_eq!(res.status(), 201);

    // The upload runs in the background; its gauges come from the queue at scrape time.
    let mut after = scrape(&env).await;
    for _ in 0..600 {
        if value(&after, "pan123_uploads_completed") >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = scrape(&env).await;
    }

    let requests = |method: &str, status: u16| {
        format!(
            "pan123_http_requests_total{{method=\"{method}\",status=\"{status}\",mount=\"/m\"}}"
        )
    };
    assert_eq!(delta(&before, &after, &requests("PROPFIND", 207)), 4.0);
    assert_eq!(delta(&before, &after, &requests("GET", 200)), 1.0);
    assert_eq!(delta(&before, &after, &requests("PUT", 201)), 1.0);
    assert_eq!(
        delta(&before, &after, "pan123_proxied_bytes_total"),
        N as f64
    );
    let list_ok = "pan123_upstream_calls_total{endpoint=\"/api/v2/file/list\",result=\"ok\"}";
    assert!(
        delta(&before, &after, list_ok) >= 2.0,
        "root and /ops listed"
    );
    let info_ok =
        "pan123_upstream_calls_total{endpoint=\"/api/v1/file/download_info\",result=\"ok\"}";
    assert_eq!(delta(&before, &after, info_ok), 1.0);
    assert_eq!(
        delta(
            &before,
            &after,
            "pan123_token_refreshes_total{result=\"ok\"}"
        ),
        1.0
    );
    assert!(
        delta(
            &before,
            &after,
            "pan123_cache_lookups_total{cache=\"listing\",result=\"hit\"}"
        ) >= 2.0,
        "the second and third PROPFIND of / are cached"
    );
    assert!(
        delta(
            &before,
            &after,
            "pan123_cache_lookups_total{cache=\"listing\",result=\"miss\"}"
        ) >= 2.0
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "pan123_cache_lookups_total{cache=\"link\",result=\"miss\"}"
        ),
        1.0
    );
    assert_eq!(value(&after, "pan123_uploads_completed"), 1.0);
    assert_eq!(value(&after, "pan123_uploads_failed"), 0.0);
    assert_eq!(value(&after, "pan123_upload_bytes"), 14.0);
    // The queued PUT wrote its manifest durably: at least one group commit of the queue folder.
    assert!(
        delta(&before, &after, "pan123_upload_manifest_syncs") >= 1.0,
        "manifest syncs exported"
    );
    let text = metrics_text(&env).await;
    assert!(
        text.contains("# HELP pan123_upload_manifest_syncs "),
        "explained: {text}"
    );
    assert!(after.contains_key("pan123_proxy_active_streams"));
}

/// `/-/readyz` as a signed-in user (the details); strangers get only counts.
async fn readyz(env: &TestEnv) -> (u16, serde_json::Value) {
    let public = env
        .client
        .get(env.url("/-/readyz"))
        .send()
        .await
        .expect("readyz without auth");
    let public: serde_json::Value = public.json().await.expect("public readyz is JSON");
    assert!(public["mounts"].is_number(), "{public}");
    let res = env.req("GET", "/-/readyz").send().await.expect("readyz");
    let status = res.status().as_u16();
    let text = res.text().await.expect("readyz body");
    assert!(!text.contains(&env.emu.client_secret()), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    (status, serde_json::from_str(&text).expect("readyz is JSON"))
}

/// Polls `/-/readyz` (bounded) until it answers `want`.
async fn readyz_until(env: &TestEnv, want: u16) -> serde_json::Value {
    for _ in 0..600 {
        let (status, body) = readyz(env).await;
        if status == want {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/-/readyz never answered {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_need_no_auth_and_follow_token_failures() {
    let env = TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            emu.mkdir_p("/sub");
            emu.mkdir_p("/other");
            open_mount("/m", "proxy", "")
        })
        .server("ready_probe_interval = \"100ms\"")
        .start()
        .await;

    let res = env
        .client
        .get(env.url("/-/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("text").trim(), "ok");

    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    let (status, body) = readyz(&env).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ready"], true);
    assert_eq!(body["mounts"][0]["path"], "/m");
    assert_eq!(body["mounts"][0]["token"], "valid");
    assert_eq!(body["uploads"]["failed"], 0);

    // Every token dies and no new one can be had: the next listing fails, and so does the
    // mount's readiness.
    env.emu.expire_tokens();
    env.emu.inject(Fault {
        endpoint: "/api/v1/access_token".into(),
        kind: FaultKind::Http {
            status: 500,
            count: 1000,
        },
    });
    let (status, _) = env.propfind("/m/sub/", "1").await;
    assert_eq!(status, 503);
    let body = readyz_until(&env, 503).await;
    assert_eq!(body["ready"], false);
    assert_eq!(body["mounts"][0]["ready"], false);
    assert_eq!(body["mounts"][0]["token"], "failing", "{body}");
    // Health does not depend on 123.
    let res = env
        .client
        .get(env.url("/-/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(res.status(), 200);

    // 123 recovers: the periodic re-probe gets a token and lists the root again.
    env.emu.clear_faults();
    let body = readyz_until(&env, 200).await;
    assert_eq!(body["mounts"][0]["token"], "valid", "{body}");
    assert_eq!(body["mounts"][0]["upstream"], "ok", "{body}");
    assert_eq!(env.propfind("/m/other/", "1").await.0, 207);
}

struct Gateway(std::process::Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_line_by_line_and_keep_secrets_out() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    emu.put_file("/a.txt", "hello");
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let metrics_port = free_port();
    let config = dir.path().join("config.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\nsigning_key = \"{SIGNING_KEY}\"\nmetrics_auth = true\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\n\n[[mounts]]\npath = \"/m\"\nbackend = \"open\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\napi_base = \"{}\"\ndownload = \"proxy-url\"\nproxy_url = \"http://127.0.0.1:{port}\"\n",
        dir.path().join("state").display(),
        password_hash(),
        emu.client_id(),
        emu.client_secret(),
        emu.base_url()
    );
    std::fs::write(&config, text).expect("write config");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pan123-webdav"))
        .args(["serve", "--log-format", "json", "-c"])
        .arg(&config)
        .env("RUST_LOG", "info,pan123_webdav=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut readers = Vec::new();
    let pipes: Vec<Box<dyn std::io::Read + Send>> = vec![
        Box::new(child.stdout.take().expect("stdout")),
        Box::new(child.stderr.take().expect("stderr")),
    ];
    for pipe in pipes {
        let lines = lines.clone();
        readers.push(std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        }));
    }
    let gw = Gateway(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HANG_GUARD)
        .build()
        .expect("client");
    let mut up = false;
    for _ in 0..200 {
        if client.get(format!("{base}/-/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "the gateway did not start");

    let res = client
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
            format!("{base}/m/"),
        )
        .basic_auth(USER, Some(PASSWORD))
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status(), 207);
    let _ = res.text().await;
    // A signed URL: its signature must not reach the log.
    let res = client
        .get(format!("{base}/m/a.txt"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status(), 302);
    let location = header(&res, "location");
    let sign = location.split("sign=").nth(1).expect("signed").to_string();
    let res = client.get(&location).send().await.expect("signed get");
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("body"), "hello");
    // Metrics live on their own address here, and ask for auth.
    let res = client
        .get(format!("{base}/-/metrics"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 404);
    let metrics = format!("http://127.0.0.1:{metrics_port}");
    let res = client
        .get(format!("{metrics}/-/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 401);
    let res = client
        .get(format!("{metrics}/m/"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("not metrics");
    assert_eq!(res.status(), 404);
    let res = client
        .get(format!("{metrics}/-/metrics"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("metrics");
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("metrics text");
    assert!(
        text.contains(
            "pan123_http_requests_total{method=\"PROPFIND\",status=\"207\",mount=\"/m\"} 1"
        ),
        "{text}"
    );
    assert!(text.contains("pan123_proxied_bytes_total 5"), "{text}");

    // Wait (bounded) for the request line of the signed download, then stop the gateway.
    let seen = |lines: &[String]| {
        lines
            .iter()
            .any(|l| l.contains("\"/-/d/m/a.txt\"") && l.contains("\"request\""))
    };
    for _ in 0..200 {
        if seen(&lines.lock().unwrap_or_else(|p| p.into_inner())) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(gw);
    for r in readers {
        let _ = r.join();
    }
    let lines = lines.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(
        seen(&lines),
        "no request line for the signed download:\n{}",
        lines.join("\n")
    );

    let mut requests = Vec::new();
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        for secret in [
            emu.client_secret(),
            PASSWORD.to_string(),
            SIGNING_KEY.to_string(),
            sign.clone(),
        ] {
            assert!(!line.contains(&secret), "a secret in the log: {line}");
        }
        if v["fields"]["message"] == "request" {
            requests.push(v["fields"].clone());
        }
    }
    let propfind = requests
        .iter()
        .find(|f| f["method"] == "PROPFIND")
        .unwrap_or_else(|| panic!("no PROPFIND line in {requests:?}"));
    assert_eq!(propfind["status"], 207);
    assert_eq!(propfind["mount"], "/m");
    assert_eq!(propfind["path"], "/m/");
    assert!(propfind["request_id"].is_string());
    assert!(propfind["bytes"].as_u64().unwrap_or(0) > 0);
    assert!(propfind["ms"].is_u64());
    let download = requests
        .iter()
        .find(|f| f["path"] == "/-/d/m/a.txt")
        .expect("download line");
    assert_eq!(download["status"], 200);
    assert_eq!(download["bytes"], 5);
    assert_eq!(download["mount"], "/m");
    assert_eq!(download["policy"], "proxy-url");
    // Upstream calls are logged at debug level.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("123 API call") && l.contains("/api/v2/file/list")),
        "no upstream call line"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probe_and_healthcheck_subcommands() {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/a.txt", "a");
        emu.put_file("/b.txt", "b");
        open_mount("/m", "proxy", "")
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_pan123-webdav");
    // `check --probe` with these mounts: its exit status and output.
    let probe = |name: &str, mounts: String| {
        let config = dir.path().join(name);
        let text = format!(
            "[server]\nstate_dir = \"{}\"\n\n{}",
            dir.path().join("state").display(),
            mounts
                .replace("{api}", &env.emu.base_url())
                .replace("{id}", &env.emu.client_id())
                .replace("proxy_url = \"{self}\"\n", "")
        );
        std::fs::write(&config, text).expect("write config");
        tokio::task::spawn_blocking(move || {
            Command::new(bin)
                .args(["check", "--probe", "-c"])
                .arg(&config)
                .output()
                .expect("check runs")
        })
    };
    let good = open_mount("/m", "proxy", "").replace("{secret}", &env.emu.client_secret());
    let out = probe("good.toml", good.clone()).await.expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("probe /m: OK, 2 entries in the root, "))
        .unwrap_or_else(|| panic!("no probe line in:\n{stdout}"));
    assert!(line.ends_with(" ms"), "{line}");
    // A mount whose credentials 123 refuses fails the probe: exit 1, the good mount still OK.
    let bad = open_mount("/bad", "proxy", "")
        .replace("{id}", "unknown-client")
        .replace("{secret}", "not-the-secret");
    let out = probe("bad.toml", format!("{good}{bad}"))
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("probe /m: OK")),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("probe /bad: FAILED after ")),
        "{stdout}"
    );
    assert!(!stdout.contains("not-the-secret"), "{stdout}");

    let url = env.url("/-/healthz");
    let ok = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["healthcheck", "--url", &url])
            .status()
            .expect("healthcheck runs")
    })
    .await
    .expect("join");
    assert!(ok.success());
    let url = format!("http://127.0.0.1:{}/-/healthz", free_port());
    let down = tokio::task::spawn_blocking(move || {
        Command::new(bin)
            .args(["healthcheck", "--url", &url])
            .stderr(Stdio::null())
            .status()
            .expect("healthcheck runs")
    })
    .await
    .expect("join");
    assert!(!down.success());
}
