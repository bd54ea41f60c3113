//! Open mounts without developer keys (issue 21), against the emulator over HTTP: the user's
//! own OAuth app (`refresh_token`), a renewal service (`renew_url` + `refresh_token`) and a
//! pasted `access_token`. Refresh tokens rotate and are single-use, so each test checks that the
//! newest one is kept (in `state_dir`, 0600) and used after a restart and after a kill -9.

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig, Host, OAuthExpiresIn};
use serde_json::Value;

fn oauth_mount(emu: &Emulator, seed: &str, extra: &str) -> String {
    format!(
        "[[mounts]]\npath = \"/o\"\nbackend = \"open\"\ncache_ttl = \"0s\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{seed}\"\napi_base = \"{{api}}\"\n{extra}\n",
        emu.oauth_client_id(),
        emu.oauth_client_secret(),
    )
}

fn renew_mount(emu: &Emulator, seed: &str) -> String {
    format!(
        "[[mounts]]\npath = \"/o\"\nbackend = \"open\"\ncache_ttl = \"0s\"\nrenew_url = \"{}/123cloud/renewapi\"\nrefresh_token = \"{seed}\"\napi_base = \"{{api}}\"\n",
        emu.host_url(Host::Renew)
    )
}

fn pasted_mount(token: &str) -> String {
    format!(
        "[[mounts]]\npath = \"/o\"\nbackend = \"open\"\ncache_ttl = \"0s\"\naccess_token = \"{token}\"\napi_base = \"{{api}}\"\n"
    )
}

async fn env_with(cfg: EmulatorConfig, mount: impl FnOnce(&Emulator) -> String) -> TestEnv {
    TestEnv::start(cfg, |emu| {
        emu.put_file("/a.txt", "hello");
        mount(emu)
    })
    .await
}

async fn listing(env: &TestEnv) -> (u16, String) {
    env.propfind("/o/", "1").await
}

async fn readyz(env: &TestEnv) -> Value {
    env.req("GET", "/-/readyz")
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json")
}

/// The one refresh-token file of the state dir, and its text.
fn refresh_file(state: &std::path::Path) -> (std::path::PathBuf, String) {
    let dir = state.join("tokens");
    let path = std::fs::read_dir(&dir)
        .expect("tokens folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("refresh-") && n.ends_with(".json"))
        })
        .expect("a refresh token file");
    let text = std::fs::read_to_string(&path).expect("read");
    (path, text)
}

#[tokio::test]
async fn oauth_refresh_token_lists_rotates_on_401_and_survives_a_restart() {
    let mut env = env_with(EmulatorConfig::default(), |emu| {
        let seed = emu.oauth_tokens().refresh_token;
        oauth_mount(emu, &seed, "")
    })
    .await;
    let (status, body) = listing(&env).await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("a.txt"));
    assert_eq!(env.emu.oauth_rotations(), 1, "the seed was exchanged once");
    assert_eq!(env.emu.stats().calls("/api/v1/access_token"), 0);

    // The new refresh token is on disk, private, and is not the seed.
    let (path, first) = refresh_file(env.state_dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // 401 → one refresh, kept on disk at once.
    env.emu.expire_tokens();
    let (status, _) = listing(&env).await;
    assert_eq!(status, 207);
    let state = env.state_dir.path().to_path_buf();
    eventually("the rotated refresh token is on disk", || {
        refresh_file(&state).1 != first
    })
    .await;
    assert_eq!(env.emu.oauth_rotations(), 2);

    // A restart reuses the kept access token: no refresh.
    env.start_gateway().await;
    let (status, _) = listing(&env).await;
    assert_eq!(status, 207);
    assert_eq!(env.emu.oauth_rotations(), 2);
    // ...and refreshes with the kept refresh token (the seed is long spent).
    env.emu.expire_tokens();
    let (status, body) = listing(&env).await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(env.emu.oauth_rotations(), 3);
    let ready = readyz(&env).await;
    assert_eq!(ready["mounts"][0]["ready"], true, "{ready}");
    assert_no_wrong_host(&env.emu);
}

#[tokio::test]
async fn renewal_service_renews_and_rotates() {
    let env = env_with(EmulatorConfig::default(), |emu| {
        let seed = emu.oauth_tokens().refresh_token;
        renew_mount(emu, &seed)
    })
    .await;
    let (status, body) = listing(&env).await;
    assert_eq!(status, 207, "{body}");
    assert_eq!(env.emu.stats().calls("renew"), 1);
    let (_, first) = refresh_file(env.state_dir.path());
    env.emu.expire_tokens();
    let (status, _) = listing(&env).await;
    assert_eq!(status, 207);
    let state = env.state_dir.path().to_path_buf();
    eventually("the renewed refresh token is on disk", || {
        refresh_file(&state).1 != first
    })
    .await;
    assert_eq!(env.emu.stats().calls("renew"), 2);
    assert_eq!(env.emu.oauth_rotations(), 2);
}

#[tokio::test]
async fn expires_in_zero_is_read_as_the_documented_two_hours() {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.oauth_expires_in = OAuthExpiresIn::Zero;
    let env = env_with(cfg, |emu| {
        let seed = emu.oauth_tokens().refresh_token;
        oauth_mount(emu, &seed, "")
    })
    .await;
    let (status, _) = listing(&env).await;
    assert_eq!(status, 207);
    let (status, _) = listing(&env).await;
    assert_eq!(status, 207);
    assert_eq!(env.emu.oauth_rotations(), 1, "not refreshed on every call");
    let ready = readyz(&env).await;
    let exp = ready["mounts"][0]["token_expires_at"]
        .as_i64()
        .expect("expiry");
    let now = env.emu.now();
    assert!((now + 7000..=now + 7300).contains(&exp), "{ready}");
}

#[tokio::test]
async fn a_refused_refresh_makes_the_mount_unready_with_the_reason() {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.oauth_refresh_fails = true;
    let env = env_with(cfg, |emu| {
        let seed = emu.oauth_tokens().refresh_token;
        oauth_mount(emu, &seed, "")
    })
    .await;
    let (status, _) = listing(&env).await;
    assert!(status >= 500 || status == 403, "{status}");
    let ready = readyz(&env).await;
    let m = &ready["mounts"][0];
    assert_eq!(m["ready"], false, "{ready}");
    assert!(
        m["token_error"]
            .as_str()
            .is_some_and(|e| e.contains("refresh_token 无效")),
        "{ready}"
    );
    // The refusal did not spend the token: once 123 accepts it again, the mount recovers.
    env.emu.set_switches(|s| s.oauth_refresh_fails = false);
    let mut ok = false;
    for _ in 0..40 {
        if listing(&env).await.0 == 207 {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(ok, "the mount recovers after the failure back-off");
}

#[tokio::test]
async fn a_pasted_token_works_and_is_never_renewed() {
    let env = env_with(EmulatorConfig::default(), |emu| {
        let (token, _) = emu.pasted_access_token(3 * 86400);
        pasted_mount(&token)
    })
    .await;
    let (status, body) = listing(&env).await;
    assert_eq!(status, 207, "{body}");
    let ready = readyz(&env).await;
    assert_eq!(ready["mounts"][0]["ready"], true, "{ready}");
    // 123 refuses it: no refresh of any kind, and the mount says why.
    env.emu.expire_tokens();
    let mut ready = Value::Null;
    for _ in 0..100 {
        let _ = listing(&env).await;
        ready = readyz(&env).await;
        if ready["mounts"][0]["ready"] == false {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        ready["mounts"][0]["token_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused the pasted access_token")),
        "{ready}"
    );
    let s = env.emu.stats();
    assert_eq!(s.calls("/api/v1/access_token"), 0);
    assert_eq!(s.calls("/api/v1/oauth2/access_token"), 0);
}

#[tokio::test]
async fn a_pasted_token_turns_unready_a_day_before_it_expires_and_when_it_does() {
    let env = env_with(EmulatorConfig::default(), |emu| {
        let (token, _) = emu.pasted_access_token(12 * 3600);
        pasted_mount(&token)
    })
    .await;
    let (status, _) = listing(&env).await;
    assert_eq!(status, 207, "still usable");
    let ready = readyz(&env).await;
    assert_eq!(ready["mounts"][0]["ready"], false, "{ready}");
    let msg = ready["mounts"][0]["token_error"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains("less than a day"), "{ready}");

    let env = env_with(EmulatorConfig::default(), |emu| {
        let (token, _) = emu.pasted_access_token(-60);
        pasted_mount(&token)
    })
    .await;
    let ready = readyz(&env).await;
    let msg = ready["mounts"][0]["token_error"]
        .as_str()
        .unwrap_or_default();
    assert!(msg.contains("expired at"), "{ready}");
    let (status, _) = listing(&env).await;
    assert_ne!(status, 207);
    assert_eq!(env.emu.stats().calls("/api/v2/file/list"), 0);
}

// ---- the real binary: rotation survives a kill -9 ---------------------------------------------

fn write_config(
    path: &std::path::Path,
    emu: &Emulator,
    port: u16,
    state: &std::path::Path,
    seed: &str,
) {
    let mount = oauth_mount(emu, seed, "").replace("{api}", &emu.base_url());
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\n\n{mount}",
        state.display(),
        password_hash(),
    );
    std::fs::write(path, text).expect("write config");
}

async fn list_on(base: &str) -> u16 {
    reqwest::Client::new()
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("{base}/o/"),
        )
        .header("Depth", "1")
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("propfind")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_survives_a_kill_between_refreshes() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    emu.put_file("/a.txt", "hello");
    let seed = emu.oauth_tokens().refresh_token;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");

    let port = free_port();
    write_config(&config, &emu, port, &state, &seed);
    let gw = GatewayProcess::spawn(&config, port, &[], None).await;
    assert_eq!(list_on(&gw.base).await, 207);
    let (_, first) = refresh_file(&state);
    emu.expire_tokens();
    assert_eq!(list_on(&gw.base).await, 207);
    eventually("the second rotation is on disk", || {
        refresh_file(&state).1 != first
    })
    .await;
    assert_eq!(emu.oauth_rotations(), 2);
    drop(gw); // SIGKILL, between two refreshes

    // `check` names the kept token, not the spent seed.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pan123-webdav"))
        .args(["check", "-c"])
        .arg(&config)
        .output()
        .expect("check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("login own OAuth app (refresh_token)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refresh token in use: the rotated one in"),
        "{stdout}"
    );
    assert!(!stdout.contains(&seed), "check never prints a token");

    let port = free_port();
    write_config(&config, &emu, port, &state, &seed);
    let gw = GatewayProcess::spawn(&config, port, &[], None).await;
    let (_, second) = refresh_file(&state);
    emu.expire_tokens();
    let _ = list_on(&gw.base).await;
    eventually("a third rotation, from the kept refresh token", || {
        emu.oauth_rotations() == 3 && refresh_file(&state).1 != second
    })
    .await;
    assert_eq!(list_on(&gw.base).await, 207, "the kept refresh token works");
}

// ---- `authorize`: the code flow through the real binary ---------------------------------------

/// An Open mount with its own OAuth app and no refresh token (`authorize` provides it), and a
/// mount with developer keys, which `authorize` refuses.
fn write_authorize_config(
    path: &std::path::Path,
    emu: &Emulator,
    port: u16,
    state: &std::path::Path,
) {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\n\n\
         [[mounts]]\npath = \"/o\"\nbackend = \"open\"\ncache_ttl = \"0s\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\n\
         redirect_uri = \"https://app.example/callback\"\nauthorize_url = \"{}/auth\"\napi_base = \"{}\"\n\n\
         [[mounts]]\npath = \"/d\"\nbackend = \"open\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\napi_base = \"{}\"\n",
        state.display(),
        password_hash(),
        emu.oauth_client_id(),
        emu.oauth_client_secret(),
        emu.host_url(Host::Web),
        emu.base_url(),
        emu.client_id(),
        emu.client_secret(),
        emu.base_url(),
    );
    std::fs::write(path, text).expect("write config");
}

/// Runs `authorize -c config --mount mount`; `answer` gets the printed authorization URL and
/// returns the line to paste. Returns (exit code, stdout, stderr).
async fn authorize(
    config: &std::path::Path,
    mount: &str,
    answer: impl AsyncFnOnce(&str) -> String,
) -> (Option<i32>, String, String) {
    use std::io::{BufRead, Read, Write};
    use std::process::Stdio;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pan123-webdav"))
        .args(["authorize", "--mount", mount, "-c"])
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn authorize");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    // The URL comes at once (or nothing, when the command refuses the mount).
    let _ = stdout.read_line(&mut first);
    let mut stdin = child.stdin.take().expect("stdin");
    if !first.trim().is_empty() {
        let line = answer(first.trim()).await;
        let _ = writeln!(stdin, "{line}");
    }
    drop(stdin);
    let out = tokio::task::spawn_blocking(move || {
        let mut rest = String::new();
        let _ = stdout.read_to_string(&mut rest);
        let out = child.wait_with_output().expect("wait");
        (out.status.code(), rest, out.stderr)
    })
    .await
    .expect("join");
    (
        out.0,
        first + &out.1,
        String::from_utf8_lossy(&out.2).into_owned(),
    )
}

/// What a browser does with the authorization URL: 123's page approves and redirects.
async fn approve(url: &str) -> String {
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(url)
        .send()
        .await
        .expect("authorization page");
    assert_eq!(res.status().as_u16(), 302, "{url}");
    header(&res, "location")
}

fn check_out(config: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pan123-webdav"))
        .args(["check", "-c"])
        .arg(config)
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_exchanges_the_code_and_serve_uses_the_stored_tokens() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    emu.put_file("/a.txt", "hello");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    let port = free_port();
    write_authorize_config(&config, &emu, port, &state);

    let before = check_out(&config);
    assert!(
        before.contains("refresh token in use: none yet; run `pan123-webdav authorize"),
        "{before}"
    );

    // Mistakes are named, with a non-zero exit and nothing stored.
    let (code, _, err) = authorize(&config, "/nope", async |_: &str| String::new()).await;
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no mount /nope; the mounts are: /o, /d"),
        "{err}"
    );
    let (code, _, err) = authorize(&config, "/d", async |_: &str| String::new()).await;
    assert_eq!(code, Some(2));
    assert!(err.contains("not an OAuth app of its own"), "{err}");
    let (code, out, err) = authorize(&config, "/o", async |_: &str| "not-a-code".to_string()).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(err.contains("123 refused the code"), "{err}");
    assert!(
        !state.join("tokens").exists()
            || std::fs::read_dir(state.join("tokens"))
                .unwrap()
                .next()
                .is_none()
    );

    // The real flow: the printed URL, approved in "the browser", the redirected address pasted.
    let mut printed = String::new();
    let (code, out, err) = authorize(&config, "/o", async |url: &str| {
        printed = url.to_string();
        approve(url).await
    })
    .await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(
        printed.starts_with(&format!("{}/auth?client_id=", emu.host_url(Host::Web))),
        "{printed}"
    );
    assert!(
        printed.contains("redirect_uri=https%3A%2F%2Fapp.example%2Fcallback"),
        "{printed}"
    );
    assert!(
        out.contains("authorized: the tokens of mount /o are kept in"),
        "{out}"
    );
    let (path, text) = refresh_file(&state);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(text.contains("refresh_token"));
    let after = check_out(&config);
    assert!(
        after.contains("refresh token in use: the one `authorize` stored"),
        "{after}"
    );

    // `serve` starts with the stored access token, and refreshes with the stored refresh token.
    let gw = GatewayProcess::spawn(&config, port, &[], None).await;
    assert_eq!(list_on(&gw.base).await, 207);
    assert_eq!(emu.oauth_rotations(), 0, "the stored access token was used");
    emu.expire_tokens();
    assert_eq!(list_on(&gw.base).await, 207);
    // An expired listing (`cache_ttl = "0s"`) is answered at once and listed again in the
    // background, so the refresh may come just after the 207.
    eventually("a refresh with the stored refresh token", || {
        emu.oauth_rotations() >= 1
    })
    .await;
    assert_eq!(
        emu.oauth_rotations(),
        1,
        "refreshed with the stored refresh token"
    );
    assert_eq!(emu.stats().calls("/api/v1/access_token"), 0);
}

#[tokio::test]
async fn a_mount_waiting_for_authorize_says_so() {
    let env = env_with(EmulatorConfig::default(), |emu| {
        format!(
            "[[mounts]]\npath = \"/o\"\nbackend = \"open\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nredirect_uri = \"https://app.example/callback\"\napi_base = \"{{api}}\"\n",
            emu.oauth_client_id(),
            emu.oauth_client_secret(),
        )
    })
    .await;
    let (status, _) = listing(&env).await;
    assert_eq!(status, 503);
    let ready = readyz(&env).await;
    assert_eq!(ready["mounts"][0]["ready"], false, "{ready}");
    assert!(
        ready.to_string().contains("run `pan123-webdav authorize"),
        "{ready}"
    );
    assert_eq!(env.emu.stats().calls("/api/v1/oauth2/access_token"), 0);
}
