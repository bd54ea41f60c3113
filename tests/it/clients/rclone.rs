//! rclone as a webdav remote (vendor `owncloud`), as the README's rclone section sets it up:
//! listings with sizes, times and MD5s, copies out and back in, `check` without downloads,
//! ranged reads through proxy and redirect mounts, and a no-op second sync.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::common::tools::{ok, require, run};
use crate::common::*;
use pan123_emulator::EmulatorConfig;

const CREATE: &str = "/upload/v2/file/create";
const DOWNLOAD_INFO: &str = "/api/v1/file/download_info";

/// Small slices and instant completion polls, so uploads are quick and multi-slice.
fn fast_cfg() -> EmulatorConfig {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = 64 * 1024;
    cfg.switches.complete_pending_polls = 1;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    cfg
}

/// The remote `gw:` from environment variables (no config file is read or written).
struct Rclone {
    envs: Vec<(String, String)>,
    _config: tempfile::TempDir,
    config_file: String,
}

impl Rclone {
    async fn new(env: &TestEnv) -> Rclone {
        let out = run("rclone", &["obscure".into(), PASSWORD.into()], &[]).await;
        let obscured = String::from_utf8_lossy(&ok(&out, "rclone obscure"))
            .trim()
            .to_string();
        let envs = [
            ("RCLONE_CONFIG_GW_TYPE", "webdav".to_string()),
            ("RCLONE_CONFIG_GW_URL", env.url("/")),
            ("RCLONE_CONFIG_GW_VENDOR", "owncloud".to_string()),
            ("RCLONE_CONFIG_GW_USER", USER.to_string()),
            ("RCLONE_CONFIG_GW_PASS", obscured),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let dir = tempfile::tempdir().expect("tempdir");
        let config_file = dir.path().join("rclone.conf").display().to_string();
        Rclone {
            envs,
            _config: dir,
            config_file,
        }
    }

    async fn run(&self, args: &[&str]) -> std::process::Output {
        let mut all: Vec<String> = vec![
            "--config".into(),
            self.config_file.clone(),
            "--low-level-retries".into(),
            "1".into(),
            "--retries".into(),
            "1".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        run("rclone", &all, &self.envs).await
    }

    async fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args).await;
        ok(&out, &format!("rclone {}", args.join(" ")))
    }
}

fn lib_mount(emu: &pan123_emulator::Emulator, path: &str, download: &str) -> String {
    let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
    open_mount(path, download, &format!("root_id = {id}"))
}

/// A deep tree under /lib with awkward names and known times: path -> (size, mtime).
fn fill_tree(emu: &pan123_emulator::Emulator) -> BTreeMap<String, (u64, i64)> {
    let files = [
        ("top.txt", 10u64),
        ("a/one.bin", 70_000),
        ("a/b/two words.txt", 3),
        ("a/b/c/d/deep 电影.mkv", 200_000),
        // Outside a/, which is copied back in: an empty PUT stays a local placeholder for a
        // while (Explorer's create sequence), so it would reach 123 only later.
        ("x-y/empty.dat", 0),
        ("x-y/z.txt", 1),
    ];
    let mut want = BTreeMap::new();
    for (i, (path, size)) in files.iter().enumerate() {
        emu.put_generated_file(&format!("/lib/{path}"), *size, i as u64);
        let t = 1_600_000_000 + i as i64 * 86_401;
        emu.set_modified(&format!("/lib/{path}"), t);
        want.insert(path.to_string(), (*size, t));
    }
    want
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lsjson_of_a_deep_tree_matches_the_emulator() {
    if !require("rclone", "rclone") {
        return;
    }
    let mut want = BTreeMap::new();
    let env = TestEnv::start(fast_cfg(), |emu| {
        emu.mkdir_p("/lib");
        want = fill_tree(emu);
        lib_mount(emu, "/m", "proxy")
    })
    .await;
    let rc = Rclone::new(&env).await;
    let out = rc
        .ok(&["lsjson", "-R", "--hash", "--files-only", "gw:m"])
        .await;
    let items: Vec<serde_json::Value> = serde_json::from_slice(&out).expect("lsjson output");
    let mut got = BTreeMap::new();
    for item in &items {
        let path = item["Path"].as_str().unwrap_or_default().to_string();
        let size = item["Size"].as_u64().unwrap_or(u64::MAX);
        let time = item["ModTime"].as_str().unwrap_or_default();
        let time = chrono::DateTime::parse_from_rfc3339(time)
            .unwrap_or_else(|e| panic!("ModTime {time}: {e}"))
            .timestamp();
        let md5 = item["Hashes"]["md5"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let emu_md5 = env
            .emu
            .lookup(&format!("/lib/{path}"))
            .map(|e| e.md5)
            .unwrap_or_default();
        assert_eq!(md5, emu_md5, "{path}: MD5 from oc:checksums");
        got.insert(path, (size, time));
    }
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_out_and_back_in_then_check_and_sync_without_transfers() {
    if !require("rclone", "rclone") {
        return;
    }
    let mut want = BTreeMap::new();
    let env = TestEnv::start(fast_cfg(), |emu| {
        emu.mkdir_p("/lib");
        want = fill_tree(emu);
        lib_mount(emu, "/m", "proxy")
    })
    .await;
    let rc = Rclone::new(&env).await;
    let local = tempfile::tempdir().expect("tempdir");
    let local_dir = local.path().join("out").display().to_string();

    // Out: every file arrives with its bytes and its time.
    rc.ok(&["copy", "gw:m/a", &local_dir]).await;
    for (path, (size, mtime)) in want.iter().filter(|(p, _)| p.starts_with("a/")) {
        let file = Path::new(&local_dir).join(&path[2..]);
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(bytes.len() as u64, *size, "{path}");
        assert_eq!(Some(bytes), env.emu.read(&format!("/lib/{path}")), "{path}");
        let modified = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .expect("mtime")
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs() as i64;
        assert_eq!(modified, *mtime, "{path}: modification time");
    }

    // Back in, to another folder: the uploads reach 123 with the same bytes.
    rc.ok(&["copy", &local_dir, "gw:m/back"]).await;
    let names: Vec<String> = want
        .keys()
        .filter_map(|p| p.strip_prefix("a/"))
        .map(str::to_string)
        .collect();
    for name in &names {
        let emu = &env.emu;
        eventually(&format!("/lib/back/{name} uploaded"), || {
            emu.lookup(&format!("/lib/back/{name}")).is_some()
        })
        .await;
        assert_eq!(
            env.emu.read(&format!("/lib/back/{name}")),
            env.emu.read(&format!("/lib/a/{name}")),
            "{name}"
        );
    }

    // check compares MD5s from oc:checksums: no download links, no bytes.
    env.emu.reset_stats();
    rc.ok(&["check", &local_dir, "gw:m/back"]).await;
    let stats = env.emu.stats();
    assert_eq!(stats.calls(DOWNLOAD_INFO), 0, "check downloaded: {stats:?}");
    assert_eq!(stats.bytes_served, 0, "check downloaded: {stats:?}");

    // A second sync of the unchanged tree transfers nothing.
    env.emu.reset_stats();
    let out = rc
        .run(&["sync", "-v", "--stats-one-line", &local_dir, "gw:m/back"])
        .await;
    ok(&out, "rclone sync");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains(": Copied"), "sync copied again:\n{log}");
    assert_eq!(env.emu.stats().calls(CREATE), 0, "sync uploaded:\n{log}");
    assert_eq!(env.emu.stats().bytes_served, 0, "sync downloaded:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cat_with_offset_and_count_is_exact_through_proxy_and_redirect() {
    if !require("rclone", "rclone") {
        return;
    }
    let env = TestEnv::start(fast_cfg(), |emu| {
        emu.mkdir_p("/lib");
        emu.put_file("/lib/film.bin", bytes_of(300_000, 9));
        format!(
            "{}{}{}",
            lib_mount(emu, "/p", "proxy"),
            lib_mount(emu, "/r", "redirect"),
            lib_mount(emu, "/u", "proxy-url")
        )
    })
    .await;
    let rc = Rclone::new(&env).await;
    let body = bytes_of(300_000, 9);
    for mount in ["p", "r", "u"] {
        for (offset, count) in [(0usize, 1usize), (123_457, 65_536), (299_990, 10)] {
            let out = rc
                .ok(&[
                    "cat",
                    "--offset",
                    &offset.to_string(),
                    "--count",
                    &count.to_string(),
                    &format!("gw:{mount}/film.bin"),
                ])
                .await;
            assert!(
                out == body[offset..offset + count],
                "/{mount}: {count} bytes at {offset} differ (got {} bytes)",
                out.len()
            );
        }
    }
}
