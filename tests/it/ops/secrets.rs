//! A full session with logging at trace level must not print a single secret: not the client
//! secret, the access token, a password, the signing key, an `auth_key`, or a CDN signature;
//! nor, for share and personal (web) mounts, the share's password and access token, the web
//! password or the web session's token.

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig};

const SECRET: &str = "client-secret-4f2a9c";
const DIRECT_KEY: &str = "direct-key-77b1e0";
const SHARE_PASSWORD: &str = "sharepw-93c1";
const SHARE_TOKEN: &str = "share-access-token-e05f7a";
const WEB_PASSWORD: &str = "web-password-5d3e21";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_hold_no_secrets() {
    let cfg = EmulatorConfig {
        client_secret: SECRET.into(),
        direct_link_space: Some("/direct".into()),
        direct_link_key: Some(DIRECT_KEY.into()),
        web_password: WEB_PASSWORD.into(),
        ..Default::default()
    };
    let emu = Emulator::start(cfg).await.expect("emulator");
    emu.put_file("/lib/a.txt", bytes_of(5000, 1));
    emu.put_file("/direct/d.txt", b"direct".to_vec());
    emu.add_share("secretsKey", Some(SHARE_PASSWORD), "/lib");
    let lib = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
    let direct = emu.lookup("/direct").map(|e| e.id).unwrap_or(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mount = |path: &str, download: &str, extra: &str| {
        fill_hosts(
            &open_mount(path, download, extra).replace("{secret}", SECRET),
            &emu,
            &base,
        )
    };
    let share = fill_hosts(
        &share_mount(
            "/share",
            "proxy",
            "secretsKey",
            Some(SHARE_PASSWORD),
            &format!("access_token = \"{SHARE_TOKEN}\""),
        ),
        &emu,
        &base,
    );
    let web = fill_hosts(
        &web_mount("/web", "proxy", &format!("root_id = {lib}"))
            .replace(&EmulatorConfig::default().web_password, WEB_PASSWORD),
        &emu,
        &base,
    );
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nsigning_key = \"{SIGNING_KEY}\"\nstate_dir = \"{}\"\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\nwrite = true\n\n{}{}{}{}{share}{web}",
        dir.path().join("state").display(),
        password_hash(),
        mount("/proxy", "proxy", &format!("root_id = {lib}")),
        mount("/redir", "redirect", &format!("root_id = {lib}")),
        mount("/signed", "proxy-url", &format!("root_id = {lib}")),
        mount("/direct", "auto", &format!("root_id = {direct}\ndirect_link = true\ndirect_link_key = \"{DIRECT_KEY}\"\nuid = {}", emu.uid())),
    );
    // `uid` is not a key of Open mounts: drop it if the config refuses it.
    let config = if pan123_webdav::config::parse(&config, std::path::Path::new("c.toml")).is_ok() {
        config
    } else {
        config.replace(&format!("uid = {}\n", emu.uid()), "")
    };
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, &config).expect("config");
    let log_path = dir.path().join("log.txt");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut gw =
        GatewayProcess::spawn(&config_path, port, &[("RUST_LOG", "trace")], Some(log)).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HANG_GUARD)
        .build()
        .expect("client");
    let get = |path: &str| {
        client
            .get(format!("{base}{path}"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
    };
    let mut handed_out = Vec::new();
    assert_eq!(
        client
            .request(
                reqwest::Method::from_bytes(b"PROPFIND").expect("m"),
                format!("{base}/proxy/")
            )
            .basic_auth(USER, Some(PASSWORD))
            .header("Depth", "1")
            .send()
            .await
            .expect("propfind")
            .status()
            .as_u16(),
        207
    );
    for path in ["/proxy/a.txt", "/share/a.txt", "/web/a.txt"] {
        let r = get(path).await.expect("get");
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(r.bytes().await.expect("body").len(), 5000, "{path}");
    }
    for path in ["/redir/a.txt", "/signed/a.txt", "/direct/d.txt"] {
        let r = get(path).await.expect("get");
        assert_eq!(r.status().as_u16(), 302, "{path}");
        let location = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let query = location
            .split_once('?')
            .map(|(_, q)| q.to_string())
            .unwrap_or_default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if ["s", "sign", "auth_key"].contains(&k.as_ref()) && v.len() > 8 {
                handed_out.push(v.into_owned());
            }
        }
    }
    assert!(handed_out.len() >= 3, "signatures seen: {handed_out:?}");
    let r = client
        .put(format!("{base}/proxy/up.txt"))
        .basic_auth(USER, Some(PASSWORD))
        .body(b"upload".to_vec())
        .send()
        .await
        .expect("put");
    assert!(r.status().is_success());
    let r = client
        .get(format!("{base}/proxy/a.txt"))
        .basic_auth(USER, Some("wrong password"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status().as_u16(), 401);
    eventually("the upload lands", || emu.read("/lib/up.txt").is_some()).await;
    let _ = gw.child.kill();
    let _ = gw.child.wait();

    let logs = std::fs::read_to_string(&log_path).expect("logs");
    assert!(logs.len() > 1000, "trace logging was on");
    // Every token the gateway persisted: the Open access token and the web session's token.
    let tokens = persisted_tokens(&dir.path().join("state"));
    assert_eq!(tokens.len(), 2, "an Open and a web token: {}", tokens.len());
    let mut secrets = vec![
        SECRET.to_string(),
        DIRECT_KEY.to_string(),
        PASSWORD.to_string(),
        SIGNING_KEY.to_string(),
        SHARE_PASSWORD.to_string(),
        SHARE_TOKEN.to_string(),
        WEB_PASSWORD.to_string(),
    ];
    secrets.extend(tokens);
    secrets.extend(handed_out);
    for s in &secrets {
        assert!(
            !logs.contains(s.as_str()),
            "a secret ({}…) appears in the logs",
            &s[..6.min(s.len())]
        );
    }
}

/// The values of `access_token` and `token` in every JSON file under `dir`.
fn persisted_tokens(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(
                &std::fs::read(&path).unwrap_or_default(),
            ) else {
                continue;
            };
            for key in ["access_token", "token"] {
                if let Some(t) = v.get(key).and_then(|t| t.as_str()) {
                    found.push(t.to_string());
                }
            }
        }
    }
    found
}
