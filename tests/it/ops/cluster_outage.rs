//! Nothing is lost in a cluster (issue 19): Redis stopped and started while uploads run (reads
//! go on, writes answer 503 with Retry-After and then work again, every queued upload lands
//! with its MD5), and an instance killed (SIGKILL) mid-upload resumes it from its own
//! `state_dir` after a restart.

use std::time::Duration;

use pan123_emulator::{EmulatorConfig, Fault, FaultKind};

use crate::common::cluster::{md5_hex, Instance};
use crate::common::redis::RedisServer;
use crate::common::*;

const SLICE: &str = "/upload/v2/file/slice";

fn slow_slices() -> Fault {
    Fault {
        endpoint: SLICE.into(),
        kind: FaultKind::Latency {
            ms: 300,
            count: 100_000,
        },
    }
}

fn fast_cfg() -> EmulatorConfig {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = 64 * 1024;
    cfg.switches.complete_pending_polls = 1;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    cfg
}

/// `/-/readyz`'s `cluster.state` at `base`.
async fn cluster_state(client: &reqwest::Client, base: &str) -> String {
    let Ok(res) = client.get(format!("{base}/-/readyz")).send().await else {
        return "no answer".into();
    };
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    body.pointer("/cluster/state")
        .and_then(|s| s.as_str())
        .unwrap_or("absent")
        .to_string()
}

async fn wait_for_state(client: &reqwest::Client, base: &str, state: &str) {
    for _ in 0..600 {
        if cluster_state(client, base).await == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base}: readyz never showed the cluster {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_started_mid_run_loses_no_upload() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::builder(fast_cfg())
        .mounts(|emu| {
            emu.put_file("/lib/old.txt", b"old bytes".to_vec());
            let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            open_mount("/m", "proxy", &format!("root_id = {id}"))
        })
        .server(&redis.cluster_section())
        .start()
        .await;
    let peer = Instance::start(&env).await;
    env.emu.inject(slow_slices());

    // Uploads queued on both instances, still running when Redis goes.
    let mut files = Vec::new();
    for i in 0..6u8 {
        let name = format!("up{i}.bin");
        let data = bytes_of(5 * 64 * 1024 + usize::from(i) * 1000, i);
        let rb = if i % 2 == 0 {
            env.req("PUT", &format!("/m/{name}"))
        } else {
            peer.req("PUT", &format!("/m/{name}"))
        };
        let put = rb.body(data.clone()).send().await.expect("put");
        assert_eq!(put.status().as_u16(), 201, "{name}");
        files.push((name, data));
    }
    redis.kill();
    wait_for_state(&env.client, &env.base, "unavailable").await;
    wait_for_state(&peer.client, &peer.base, "unavailable").await;

    // Reads go on, on both.
    for base in [&env.base, &peer.base] {
        let res = env
            .client
            .request(
                reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
                format!("{base}/m/"),
            )
            .basic_auth(USER, Some(PASSWORD))
            .header("Depth", "1")
            .send()
            .await
            .expect("propfind");
        assert_eq!(res.status().as_u16(), 207, "{base}");
        let got = env
            .client
            .get(format!("{base}/m/old.txt"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("get");
        assert_eq!(got.status().as_u16(), 200);
        assert_eq!(got.bytes().await.expect("body").as_ref(), b"old bytes");
    }
    // Writes wait, with Retry-After.
    let put = peer
        .req("PUT", "/m/during.bin")
        .body(b"during".to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status().as_u16(), 503);
    assert!(header(&put, "retry-after").parse::<u64>().expect("seconds") >= 1);

    // Back: writes work again, and every upload lands with its bytes.
    redis.restart();
    wait_for_state(&env.client, &env.base, "connected").await;
    wait_for_state(&peer.client, &peer.base, "connected").await;
    let put = peer
        .req("PUT", "/m/after.bin")
        .body(b"after".to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status().as_u16(), 201);
    files.push(("after.bin".into(), b"after".to_vec()));
    env.emu.clear_faults();
    eventually("every upload lands", || {
        files
            .iter()
            .all(|(name, _)| env.emu.lookup(&format!("/lib/{name}")).is_some())
    })
    .await;
    for (name, data) in &files {
        let at = env.emu.lookup(&format!("/lib/{name}")).expect("landed");
        assert_eq!(at.md5, md5_hex(data), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_mid_upload_resumes_it_after_a_restart() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::builder(fast_cfg())
        .mounts(|emu| {
            emu.mkdir_p("/lib");
            let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            open_mount("/m", "proxy", &format!("root_id = {id}"))
        })
        .server(&redis.cluster_section())
        .start()
        .await;
    let root = env.emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    let write_config = |port: u16| {
        let text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\nwrite = true\n\n[[mounts]]\npath = \"/m\"\nbackend = \"open\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\napi_base = \"{}\"\nroot_id = {root}\n{}",
            state.display(),
            password_hash(),
            env.emu.client_id(),
            env.emu.client_secret(),
            env.emu.base_url(),
            redis.cluster_section(),
        );
        std::fs::write(&config, text).expect("write config");
    };

    env.emu.inject(slow_slices());
    let port = free_port();
    write_config(port);
    let gw = GatewayProcess::spawn(&config, port, &[], None).await;
    let data = bytes_of(10 * 64 * 1024, 5);
    let put = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/m/film.mkv"))
        .basic_auth(USER, Some(PASSWORD))
        .body(data.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status().as_u16(), 201);
    // The other instance lists it, pending there.
    let (status, listed) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207);
    assert!(listed.contains("/m/film.mkv"), "{listed}");
    eventually("a slice is in flight", || env.emu.stats().calls(SLICE) > 0).await;
    drop(gw); // SIGKILL
    assert!(
        env.emu.lookup("/lib/film.mkv").is_none(),
        "not complete when killed"
    );

    env.emu.clear_faults();
    let port = free_port();
    write_config(port);
    let _gw = GatewayProcess::spawn(&config, port, &[], None).await;
    eventually("the upload resumes and completes", || {
        env.emu.read("/lib/film.mkv").is_some()
    })
    .await;
    assert_eq!(env.emu.read("/lib/film.mkv").expect("uploaded"), data);
    assert_eq!(
        env.emu.list_names("/lib").expect("listing"),
        vec!["film.mkv".to_string()],
        "no temporary files left"
    );
    let mut read = false;
    for _ in 0..400 {
        let got = env.req("GET", "/m/film.mkv").send().await.expect("get");
        if got.status().as_u16() == 200 {
            assert_eq!(got.bytes().await.expect("body").as_ref(), &data[..]);
            read = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(read, "the other instance reads the landed file");
}
