//! The gateway killed (SIGKILL) mid-upload and started again: the queued upload completes with
//! the right bytes. Runs the real binary, as an operator would.

use std::time::Duration;

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig, Fault, FaultKind};

fn write_config(
    path: &std::path::Path,
    emu: &Emulator,
    port: u16,
    state: &std::path::Path,
    root: u64,
) {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\nwrite = true\n\n[[mounts]]\npath = \"/m\"\nbackend = \"open\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\napi_base = \"{}\"\nroot_id = {root}\n",
        state.display(),
        password_hash(),
        emu.client_id(),
        emu.client_secret(),
        emu.base_url()
    );
    std::fs::write(path, text).expect("write config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_upload_resumes_after_restart() {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = 64 * 1024;
    cfg.switches.complete_pending_polls = 1;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    let emu = Emulator::start(cfg).await.expect("emulator");
    let root = emu.mkdir_p("/lib");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");

    // Slices crawl, so the upload is mid-way when the gateway dies.
    emu.inject(Fault {
        endpoint: "/upload/v2/file/slice".into(),
        kind: FaultKind::Latency {
            ms: 400,
            count: 1000,
        },
    });
    let port = free_port();
    write_config(&config, &emu, port, &state, root);
    let gw = GatewayProcess::spawn(&config, port, &[], None).await;
    let data = bytes_of(640 * 1024, 9);
    let r = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{port}/m/film.mkv"))
        .basic_auth(USER, Some(PASSWORD))
        .body(data.clone())
        .send()
        .await
        .expect("put");
    let status = r.status().as_u16();
    assert_eq!(status, 201, "{}", r.text().await.unwrap_or_default());
    eventually("a slice is in flight", || {
        emu.stats().calls("/upload/v2/file/slice") > 0
    })
    .await;
    drop(gw); // SIGKILL
    assert!(
        emu.lookup("/lib/film.mkv").is_none(),
        "not complete when killed"
    );

    emu.clear_faults();
    let port = free_port();
    write_config(&config, &emu, port, &state, root);
    let _gw = GatewayProcess::spawn(&config, port, &[], None).await;
    eventually("the upload resumes and completes", || {
        emu.read("/lib/film.mkv").is_some()
    })
    .await;
    assert_eq!(emu.read("/lib/film.mkv").expect("uploaded"), data);
    let names = emu.list_names("/lib").expect("listing");
    assert_eq!(
        names,
        vec!["film.mkv".to_string()],
        "no temporary files left"
    );
}

/// Several PUTs that finish together (their manifests share folder fsyncs, a group commit):
/// each is answered only once its manifest is durable, so a SIGKILL right after the answers
/// loses none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn puts_answered_together_all_survive_a_kill() {
    const PUTS: usize = 8;
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = 64 * 1024;
    cfg.switches.complete_pending_polls = 1;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    let emu = Emulator::start(cfg).await.expect("emulator");
    let root = emu.mkdir_p("/lib");
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state");
    let config = dir.path().join("config.toml");
    // No upload gets anywhere before the kill.
    emu.inject(Fault {
        endpoint: "/upload/v2/file/create".into(),
        kind: FaultKind::Hang { count: 1000 },
    });
    let port = free_port();
    write_config(&config, &emu, port, &state, root);
    let gw = GatewayProcess::spawn(&config, port, &[], None).await;
    let client = reqwest::Client::new();
    let puts = (0..PUTS).map(|i| {
        let client = client.clone();
        async move {
            client
                .put(format!("http://127.0.0.1:{port}/m/f{i}.bin"))
                .basic_auth(USER, Some(PASSWORD))
                .body(bytes_of(100_000 + i, i as u8))
                .send()
                .await
                .expect("put")
                .status()
                .as_u16()
        }
    });
    let statuses = futures_util::future::join_all(puts).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    drop(gw); // SIGKILL, right after the last answer

    emu.clear_faults();
    let port = free_port();
    write_config(&config, &emu, port, &state, root);
    let _gw = GatewayProcess::spawn(&config, port, &[], None).await;
    for i in 0..PUTS {
        let path = format!("/lib/f{i}.bin");
        eventually("every answered PUT lands after the restart", || {
            emu.read(&path).is_some()
        })
        .await;
        assert_eq!(
            emu.read(&path).expect("landed"),
            bytes_of(100_000 + i, i as u8)
        );
    }
}
