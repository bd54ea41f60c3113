//! The real binary's `check` and `hash-password` commands, as an operator runs them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

const BIN: &str = env!("CARGO_BIN_EXE_pan123-webdav");

/// A cheap but real argon2id hash, for configs under test.
fn cheap_hash(password: &str) -> String {
    let params = Params::new(64, 1, 1, None).unwrap();
    let salt = SaltString::encode_b64(b"saltsaltsaltsalt").unwrap();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

fn user() -> String {
    format!(
        "[[users]]\nname = \"alice\"\npassword_hash = \"{}\"\n",
        cheap_hash("pw")
    )
}

fn mount(path: &str) -> String {
    format!(
        "[[mounts]]\npath = \"{path}\"\nbackend = \"open\"\nclient_id = \"id\"\nclient_secret = \"secret\"\n"
    )
}

/// A config file in its own temporary directory.
struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn write_config(text: &str) -> ConfigFile {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pan.toml");
    std::fs::write(&path, text).unwrap();
    ConfigFile { _dir: dir, path }
}

fn check(path: &Path) -> Output {
    Command::new(BIN)
        .args(["check", "-c"])
        .arg(path)
        .env_remove("PAN123_TEST_UNSET_SECRET")
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `check` on a bad config: it must fail with 2 and name the file on every stderr line;
/// returns stderr.
fn check_fails(config: &str) -> String {
    let file = write_config(config);
    let out = check(&file.path);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "stdout: {}", text(&out.stdout));
    let prefix = format!("{}: ", file.path.display());
    assert!(
        stderr.lines().all(|line| line.starts_with(&prefix)),
        "every line names the file: {stderr}"
    );
    stderr
}

#[test]
fn check_accepts_the_example_and_lists_what_it_sets_up() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let out = check(&example);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(stdout.contains(
        "mount /open: backend open, download auto, read-only no, cache_ttl 10m, api_base \
         https://open-api.123pan.com, client_id your-client-id"
    ));
    assert!(
        stdout.contains("user alice: mounts *, write yes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mount /me: backend web, download auto, read-only no,"),
        "personal-account mounts write: {stdout}"
    );
    assert!(
        stdout.contains("mount /share: backend share, download auto, read-only yes,"),
        "{stdout}"
    );
    assert!(
        stdout.contains("server: listen 127.0.0.1:8080, HTTP"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("your-client-secret"),
        "a secret was printed: {stdout}"
    );
    assert!(!stdout.contains("argon2"), "a hash was printed: {stdout}");
    assert!(
        stdout.contains("client \"VLC\": download proxy, junk kept locally yes\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "client \"Microsoft-WebDAV-MiniRedir\": download proxy, junk kept locally yes (built-in)"
        ),
        "{stdout}"
    );
}

#[test]
fn check_prints_every_mount() {
    let file = write_config(&format!(
        "{}{}download = \"proxy\"\nread_only = true\n{}",
        mount("/a"),
        mount("/b"),
        user()
    ));
    let out = check(&file.path);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(
        stdout.contains("mount /a: backend open, download auto, read-only no"),
        "{stdout}"
    );
    assert!(
        stdout.contains("mount /b: backend open, download proxy, read-only yes"),
        "{stdout}"
    );
}

#[test]
fn a_misspelt_key_is_named_with_the_valid_ones() {
    let config = format!(
        "{}{}",
        mount("/open").replace("client_id", "clinet_id"),
        user()
    );
    let stderr = check_fails(&config);
    assert!(
        stderr.contains(
            "mounts[0].clinet_id: unknown key (did you mean client_id?); valid keys for a mount \
             with backend = \"open\" are: path, backend, download, proxy_url, cache_ttl, \
             cache_ttl_by_depth, read_only, anonymous, traffic_budget, client_id, client_secret"
        ),
        "{stderr}"
    );
}

#[test]
fn proxy_url_without_a_signing_key() {
    let config = format!(
        "{}download = \"proxy-url\"\nproxy_url = \"https://dl.example.com\"\n{}",
        mount("/open"),
        user()
    );
    let stderr = check_fails(&config);
    assert!(
        stderr.contains(
            "mounts[0].download: \"proxy-url\" signs download URLs with server.signing_key, \
             which is not set; add signing_key to [server]"
        ),
        "{stderr}"
    );
}

#[test]
fn duplicate_mounts() {
    let stderr = check_fails(&format!("{}{}{}", mount("/open"), mount("/open"), user()));
    assert!(
        stderr.contains(
            "mounts[1].path: \"/open\" is already used by mounts[0]; give each mount its own path"
        ),
        "{stderr}"
    );
}

#[test]
fn nested_mount_paths() {
    let stderr = check_fails(&format!("{}{}", mount("/media/films"), user()));
    assert!(
        stderr.contains(
            "mounts[0].path: \"/media/films\" is nested; a mount is a single segment under the \
             root, like \"/media\""
        ),
        "{stderr}"
    );
}

#[test]
fn a_secret_from_an_unset_variable() {
    let config = format!("{}{}", mount("/open"), user()).replace(
        "client_secret = \"secret\"",
        "client_secret_env = \"PAN123_TEST_UNSET_SECRET\"",
    );
    let stderr = check_fails(&config);
    assert!(
        stderr.contains(
            "mounts[0].client_secret_env: the environment variable PAN123_TEST_UNSET_SECRET is \
             not set; export it before starting"
        ),
        "{stderr}"
    );

    // Set, it is used (and never printed).
    let file = write_config(&config);
    let out = Command::new(BIN)
        .args(["check", "-c"])
        .arg(&file.path)
        .env("PAN123_TEST_UNSET_SECRET", "from-the-environment")
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("from-the-environment"));
}

#[test]
fn every_problem_is_listed() {
    let config = format!(
        "[server]\nlisten = \"anywhere\"\n{}{}",
        mount("/a/b"),
        user().replace("name = \"alice\"", "name = \"\"")
    );
    let stderr = check_fails(&config);
    assert_eq!(stderr.lines().count(), 3, "{stderr}");
    for key in ["server.listen: ", "mounts[0].path: ", "users[0].name: "] {
        assert!(stderr.contains(key), "{key} missing from {stderr}");
    }
}

#[test]
fn syntax_errors_have_a_position() {
    let stderr = check_fails("[server]\nlisten = \"127.0.0.1:8080\n");
    assert!(stderr.contains(": line 2, column "), "{stderr}");
    assert!(stderr.contains("invalid TOML"), "{stderr}");
}

#[test]
fn a_missing_file() {
    let out = check(Path::new("/nonexistent/pan123.toml"));
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("/nonexistent/pan123.toml: cannot read the file:"));
}

#[test]
fn serve_refuses_a_bad_config_before_starting() {
    let file = write_config(&user());
    let out = Command::new(BIN)
        .args(["serve", "-c"])
        .arg(&file.path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("mounts: no mounts are defined"));
}

fn hash_password(stdin: &[u8]) -> Output {
    let mut child = Command::new(BIN)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn hash_password_prints_a_verifiable_argon2id_hash() {
    let out = hash_password(b"correct horse: battery\n");
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let phc = stdout.trim_end();
    assert!(phc.starts_with("$argon2id$"), "{phc}");
    assert_eq!(stdout.lines().count(), 1);
    let hash = PasswordHash::new(phc).unwrap();
    Argon2::default()
        .verify_password(b"correct horse: battery", &hash)
        .expect("the hash verifies the password without its newline");
    assert!(Argon2::default()
        .verify_password(b"correct horse: battery\n", &hash)
        .is_err());

    // The hash is accepted by the config as it is printed.
    let config = format!(
        "{}{}",
        mount("/open"),
        user().replace(&cheap_hash("pw"), phc)
    );
    let file = write_config(&config);
    assert!(check(&file.path).status.success());
}

#[test]
fn hash_password_refuses_an_empty_password() {
    let out = hash_password(b"\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("empty"));
    assert!(out.stdout.is_empty());
}

#[test]
fn check_names_a_bad_delete_mode_and_shows_the_good_one() {
    let stderr = check_fails(&format!(
        "{}delete = \"forever\"\n{}",
        mount("/open"),
        user()
    ));
    assert!(
        stderr.contains("mounts[0].delete: \"forever\" is not a delete mode; use \"trash\""),
        "{stderr}"
    );
    // Share mounts are read-only: no `delete` there.
    let stderr = check_fails(&format!(
        "[[mounts]]\npath = \"/s\"\nbackend = \"share\"\nshare_key = \"abc\"\ndelete = \"permanent\"\n{}",
        user()
    ));
    assert!(
        stderr.contains("mounts[0].delete: not a key of backend \"share\""),
        "{stderr}"
    );
    let file = write_config(&format!(
        "{}delete = \"permanent\"\n{}",
        mount("/open"),
        user()
    ));
    let out = check(&file.path);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    assert!(stdout.contains(", delete permanent\n"), "{stdout}");
}
