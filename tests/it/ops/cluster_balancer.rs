//! Two instances of a cluster behind a round-robin TCP balancer that alternates connections
//! between them (no stickiness), as clients meet them behind a load balancer (issue 19):
//! litmus passes every suite, and rclone copies, checks and syncs.

use std::path::Path;
use std::time::Duration;

use pan123_emulator::EmulatorConfig;

use crate::common::cluster::{Balancer, Instance};
use crate::common::redis::RedisServer;
use crate::common::tools::{ok, require, run};
use crate::common::{bytes_of, eventually, open_mount, TestEnv, PASSWORD, USER};

const CREATE: &str = "/upload/v2/file/create";

/// Two instances of one cluster (Open mount `/m` of `/lib`, `mount_extra` added) behind a
/// round-robin balancer.
async fn balanced(
    redis: &RedisServer,
    mount_extra: &str,
) -> (TestEnv, Instance, Instance, Balancer) {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = 64 * 1024;
    cfg.switches.complete_pending_polls = 1;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    let extra = mount_extra.to_string();
    let env = TestEnv::builder(cfg)
        .mounts(move |emu| {
            emu.mkdir_p("/lib");
            let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            open_mount("/m", "proxy", &format!("root_id = {id}\n{extra}"))
        })
        .server(&redis.cluster_section())
        .start()
        .await;
    let a = Instance::start(&env).await;
    let b = Instance::start(&env).await;
    let lb = Balancer::start(vec![a.addr, b.addr]).await;
    (env, a, b, lb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litmus_passes_every_suite_through_a_round_robin_of_two() {
    if !require("litmus", "litmus") {
        return;
    }
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (_env, _a, _b, lb) = balanced(&redis, "").await;
    let url = lb.url("/m/");
    let scratch = tempfile::tempdir().expect("scratch dir");
    let cwd = scratch.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("timeout")
            .current_dir(cwd)
            .args(["300", "litmus", "-k", &url, USER, PASSWORD])
            .env("TESTS", "basic copymove props locks http")
            .output()
    })
    .await
    .expect("join")
    .expect("run litmus");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    println!("{text}");
    let accepted = lb.accepted.load(std::sync::atomic::Ordering::Relaxed);
    println!("connections through the balancer: {accepted}");
    assert!(accepted >= 2, "both instances were used: {accepted}");
    let problems = crate::clients::litmus::problems(&text);
    assert!(
        problems.is_empty(),
        "litmus:\n{}\n\n{text}",
        problems.join("\n")
    );
}

/// rclone's remote `gw:` at `url` from environment variables.
struct Rclone {
    envs: Vec<(String, String)>,
    _dir: tempfile::TempDir,
    config_file: String,
}

impl Rclone {
    async fn new(url: String) -> Rclone {
        let out = run("rclone", &["obscure".into(), PASSWORD.into()], &[]).await;
        let obscured = String::from_utf8_lossy(&ok(&out, "rclone obscure"))
            .trim()
            .to_string();
        let envs = [
            ("RCLONE_CONFIG_GW_TYPE", "webdav".to_string()),
            ("RCLONE_CONFIG_GW_URL", url),
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
            _dir: dir,
            config_file,
        }
    }

    async fn ok(&self, args: &[&str]) -> Vec<u8> {
        let mut all: Vec<String> = vec![
            "--config".into(),
            self.config_file.clone(),
            "--low-level-retries".into(),
            "1".into(),
            "--retries".into(),
            "1".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        let out = run("rclone", &all, &self.envs).await;
        ok(&out, &format!("rclone {}", args.join(" ")))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rclone_copies_checks_and_syncs_through_a_round_robin_of_two() {
    if !require("rclone", "rclone") {
        return;
    }
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (env, _a, _b, lb) = balanced(&redis, "").await;
    let rc = Rclone::new(lb.url("/")).await;
    let local = tempfile::tempdir().expect("tempdir");
    let src = local.path().join("src");
    let files: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            let name = if i % 3 == 0 {
                format!("d{}/f{i}.bin", i % 2)
            } else {
                format!("f{i}.bin")
            };
            (name, bytes_of(1000 + i * 37_000, i as u8))
        })
        .collect();
    for (name, data) in &files {
        let path = src.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, data).expect("write");
    }
    let src_dir = src.display().to_string();

    // In: the files are pending on whichever instance took each PUT; check sees them (listed
    // by every instance with their MD5) while they are.
    rc.ok(&["copy", &src_dir, "gw:m/in"]).await;
    rc.ok(&["check", &src_dir, "gw:m/in"]).await;
    eventually("every upload lands", || {
        files
            .iter()
            .all(|(name, _)| env.emu.lookup(&format!("/lib/in/{name}")).is_some())
    })
    .await;
    // Landed: a second sync through either instance transfers nothing, by size and
    // modification time (rclone's default): the time rclone sent with each PUT (X-OC-Mtime)
    // is listed by both instances, whichever took the PUT.
    let creates = env.emu.stats().calls(CREATE);
    rc.ok(&["sync", &src_dir, "gw:m/in"]).await;
    assert_eq!(
        env.emu.stats().calls(CREATE),
        creates,
        "the sync transferred nothing"
    );
    for (name, data) in &files {
        let at = env.emu.lookup(&format!("/lib/in/{name}")).expect("landed");
        assert_eq!(at.md5, crate::common::cluster::md5_hex(data), "{name}");
    }

    // Out again through the round-robin: the same bytes.
    let out_dir = local.path().join("out").display().to_string();
    rc.ok(&["copy", "gw:m/in", &out_dir]).await;
    for (name, data) in &files {
        let got = std::fs::read(Path::new(&out_dir).join(name)).expect(name);
        assert_eq!(&got, data, "{name}");
    }
    rc.ok(&["check", &src_dir, "gw:m/in"]).await;
    let accepted = lb.accepted.load(std::sync::atomic::Ordering::Relaxed);
    assert!(accepted >= 2, "both instances were used: {accepted}");
}
