//! Personal (web) mount logins users meet (issue 21), against the emulator: a pasted browser
//! token instead of the password (never logs in; unready with a clear message once refused),
//! each known login refusal named in `/-/readyz` and `check --probe`, and `check`'s words on a
//! mix of `password` and `token`, on neither, and on a password longer than 16 characters.

use std::time::Duration;

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig, WebLoginRefusal};
use serde_json::Value;

const LOGIN: &str = "/api/user/sign_in";
const LIST: &str = "/b/api/file/list/new";

fn token_mount(token: &str) -> String {
    format!(
        "[[mounts]]\npath = \"/w\"\nbackend = \"web\"\nusername = \"{}\"\ntoken = \"{token}\"\napi_base = \"{{web}}\"\nlogin_base = \"{{login}}\"\ndownload = \"proxy\"\ncache_ttl = \"0s\"\n",
        EmulatorConfig::default().web_user
    )
}

/// The `/w` mount's row of `/-/readyz` once `done` says it is settled (bounded poll).
async fn web_row(env: &TestEnv, done: impl Fn(&Value) -> bool) -> Value {
    let mut row = Value::Null;
    for _ in 0..400 {
        let report: Value = env
            .req("GET", "/-/readyz")
            .send()
            .await
            .expect("readyz")
            .json()
            .await
            .expect("readyz json");
        row = report["mounts"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["path"] == "/w"))
            .cloned()
            .unwrap_or(Value::Null);
        if done(&row) {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("readyz never settled: {row}");
}

#[tokio::test]
async fn a_pasted_browser_token_lists_without_logging_in_and_turns_unready_once_refused() {
    let mut token = String::new();
    let env = TestEnv::start(EmulatorConfig::default(), |emu: &Emulator| {
        emu.put_file("/hello.txt", "hi");
        emu.mkdir_p("/elsewhere");
        token = emu.web_session_token();
        token_mount(&token)
    })
    .await;
    let (status, body) = env.propfind("/w/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("hello.txt"));
    let res = env.get_following("/w/hello.txt", &[]).await;
    assert_eq!(res.text().await.expect("body"), "hi");
    let row = web_row(&env, |r| r["token"] == "valid").await;
    assert_eq!(row["ready"], true, "{row}");
    assert_eq!(
        env.emu.stats().calls(LOGIN),
        0,
        "a pasted token never logs in"
    );

    // 123 ends the session: no login attempt (there is no password), a clear message, and a
    // folder not listed before cannot be listed.
    env.emu.expire_tokens();
    let _ = env.propfind("/w/", "1").await;
    assert_eq!(env.propfind("/w/elsewhere/", "1").await.0, 503);
    let row = web_row(&env, |r| r["token"] == "failing").await;
    assert_eq!(row["ready"], false, "{row}");
    let error = row["token_error"].to_string();
    assert!(
        error.contains("123 refused the pasted web token") && error.contains("copy a new one"),
        "{row}"
    );
    assert!(
        !row.to_string().contains(&token),
        "the token is never shown"
    );
    assert_eq!(env.emu.stats().calls(LOGIN), 0);
    // State stays off the disk: the token lives in the config only.
    assert!(
        !env.state_dir.path().join("tokens").exists()
            || std::fs::read_dir(env.state_dir.path().join("tokens"))
                .expect("tokens")
                .all(|e| !e
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .starts_with("web"))
    );
}

#[tokio::test]
async fn an_expired_pasted_token_is_unready_from_the_start() {
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1000000000}"#);
    let token = format!("eyJhbGciOiJIUzI1NiJ9.{payload}.sig");
    let env = TestEnv::start(EmulatorConfig::default(), |_| token_mount(&token)).await;
    let row = web_row(&env, |r| r["token"] == "failing").await;
    assert!(
        row["token_error"]
            .to_string()
            .contains("the pasted web token expired at 2001-09-09"),
        "{row}"
    );
    assert_eq!(env.propfind("/w/", "1").await.0, 503);
    assert_eq!(env.emu.stats().calls(LOGIN), 0);
}

/// Each refusal users report, as 123 words it, and the reason the gateway names.
const REFUSALS: [(WebLoginRefusal, &str, &str); 4] = [
    (
        WebLoginRefusal::RiskControl,
        "当前账号存在安全风险",
        "risk control: 123 wants an SMS or WeChat verification",
    ),
    (
        WebLoginRefusal::Abroad,
        "境外登录风险",
        "risk control: a login from abroad",
    ),
    (
        WebLoginRefusal::Verify,
        "请进行验证",
        "a verification step (请进行验证) the API cannot pass",
    ),
    (
        WebLoginRefusal::Locked,
        "账号已被锁定",
        "the account is locked or frozen",
    ),
];

#[tokio::test]
async fn each_known_login_refusal_is_named_in_readyz() {
    for (refusal, said, named) in REFUSALS {
        let mut cfg = EmulatorConfig::default();
        cfg.switches.web_login_refusal = refusal;
        let env = TestEnv::start(cfg, |_| web_mount("/w", "proxy", "")).await;
        let row = web_row(&env, |r| r["token"] == "failing").await;
        let error = row["token_error"].to_string();
        assert!(
            error.contains(named) && error.contains(said),
            "{refusal:?}: {row}"
        );
        assert_eq!(env.propfind("/w/", "1").await.0, 503);
        assert_eq!(env.emu.stats().calls(LIST), 0);
    }
    // A wrong password, too.
    let env = TestEnv::start(EmulatorConfig::default(), |_| {
        web_mount("/w", "proxy", "").replace("demo-password", "not-the-password")
    })
    .await;
    let row = web_row(&env, |r| r["token"] == "failing").await;
    assert!(
        row["token_error"]
            .to_string()
            .contains("wrong username or password"),
        "{row}"
    );
    assert!(!row.to_string().contains("not-the-password"), "{row}");
}

// ---- the real binary: `check` and `check --probe` ---------------------------------------------

fn write_config(dir: &std::path::Path, emu: &Emulator, keys: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "[server]\nstate_dir = \"{}\"\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\n\n\
         [[mounts]]\npath = \"/w\"\nbackend = \"web\"\nusername = \"{}\"\napi_base = \"{}\"\nlogin_base = \"{}\"\n{keys}\n",
        dir.join("state").display(),
        password_hash(),
        emu.web_user(),
        emu.host_url(pan123_emulator::Host::Web),
        emu.host_url(pan123_emulator::Host::Login),
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn run_check(config: &std::path::Path, probe: bool) -> (Option<i32>, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pan123-webdav"));
    cmd.args(["check", "-c"]).arg(config);
    if probe {
        cmd.arg("--probe");
    }
    let out = cmd.output().expect("check");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_explains_the_login_keys_and_probe_names_the_refusal() {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.web_login_refusal = WebLoginRefusal::Abroad;
    let emu = Emulator::start(cfg).await.expect("emulator");
    let dir = tempfile::tempdir().expect("tempdir");

    // A mix, and neither.
    let config = write_config(dir.path(), &emu, "password = \"pw\"\ntoken = \"eyJ.x.y\"");
    let (code, _, err) = run_check(&config, false);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("mounts[0].token: set together with password; a personal mount logs in with exactly one of"),
        "{err}"
    );
    let config = write_config(dir.path(), &emu, "");
    let (code, _, err) = run_check(&config, false);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("mounts[0].password: missing"), "{err}");
    assert!(err.contains("or token"), "{err}");

    // A pasted token is described, never printed.
    let token = emu.web_session_token();
    let config = write_config(dir.path(), &emu, &format!("token = \"{token}\""));
    let (code, out, err) = run_check(&config, false);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("pasted browser token"), "{out}");
    assert!(!out.contains(&token), "{out}");

    // A long password: 123 counts 16 characters; `check` warns and still accepts it.
    let config = write_config(dir.path(), &emu, "password = \"0123456789abcdefXYZ\"");
    let (code, out, err) = run_check(&config, false);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("warning: mount /w: the password is longer than 16 characters; 123's login silently truncates"),
        "{out}"
    );
    assert!(!out.contains("0123456789abcdefXYZ"), "{out}");

    // The probe logs in and names why 123 refused it.
    let config = write_config(
        dir.path(),
        &emu,
        &format!("password = \"{}\"", emu.web_password()),
    );
    let (code, out, _) = tokio::task::spawn_blocking(move || run_check(&config, true))
        .await
        .expect("join");
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("probe /w: FAILED") && out.contains("risk control: a login from abroad"),
        "{out}"
    );
}
