//! SIGTERM: the gateway stops accepting, lets downloads in flight finish, keeps queued uploads
//! (of an Open and a personal web mount) for the next start, and exits cleanly.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig, Fault, FaultKind};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_keeps_the_queue() {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.cdn_rate_limit = Some(150_000);
    cfg.switches.slice_size = 64 * 1024;
    let emu = Emulator::start(cfg).await.expect("emulator");
    emu.put_file("/lib/film.mkv", bytes_of(450_000, 3));
    let lib = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
    // Uploads stall, so one is still queued at the stop.
    for endpoint in ["/upload/v2/file/create", "/b/api/file/upload_request"] {
        emu.inject(Fault {
            endpoint: endpoint.into(),
            kind: FaultKind::Latency {
                ms: 5_000,
                count: 100,
            },
        });
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\nwrite = true\n\n{}",
        dir.path().join("state").display(),
        password_hash(),
        fill_hosts(
            &format!(
                "{}{}",
                open_mount("/m", "proxy", &format!("root_id = {lib}")),
                web_mount("/w", "proxy", &format!("root_id = {lib}"))
            ),
            &emu,
            "http://localhost",
        ),
    );
    let path = dir.path().join("config.toml");
    std::fs::write(&path, config).expect("config");
    let mut gw = GatewayProcess::spawn(&path, port, &[], None).await;
    let base = gw.base.clone();
    let client = reqwest::Client::builder()
        .timeout(HANG_GUARD)
        .build()
        .expect("client");
    let r = client
        .put(format!("{base}/m/queued.txt"))
        .basic_auth(USER, Some(PASSWORD))
        .body(b"queued".to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 201);
    let r = client
        .put(format!("{base}/w/queued-web.txt"))
        .basic_auth(USER, Some(PASSWORD))
        .body(b"queued on the web mount".to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 201);
    let mut web_download = client
        .get(format!("{base}/w/film.mkv"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("get");
    assert_eq!(web_download.status().as_u16(), 200);
    let mut web_got = web_download
        .chunk()
        .await
        .expect("first bytes")
        .expect("some")
        .to_vec();
    let mut download = client
        .get(format!("{base}/m/film.mkv"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("get");
    assert_eq!(download.status().as_u16(), 200);
    let mut got = download
        .chunk()
        .await
        .expect("first bytes")
        .expect("some")
        .to_vec();

    let killed = Command::new("kill")
        .args(["-TERM", &gw.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    // While the downloads are still running, new connections are already refused. (A client
    // of its own without a pool: `client` may hold a kept-alive connection, which is served.)
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let mut refused = false;
    for _ in 0..100 {
        if fresh
            .request(reqwest::Method::OPTIONS, format!("{base}/"))
            .send()
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "still accepting new connections after SIGTERM");
    assert!(
        gw.child.try_wait().expect("wait").is_none(),
        "the gateway exited before its downloads finished"
    );
    while let Some(chunk) = download
        .chunk()
        .await
        .expect("the download in flight completes")
    {
        got.extend_from_slice(&chunk);
    }
    assert_eq!(
        got,
        bytes_of(450_000, 3),
        "every byte, after the stop signal"
    );
    while let Some(chunk) = web_download
        .chunk()
        .await
        .expect("the web download in flight completes")
    {
        web_got.extend_from_slice(&chunk);
    }
    assert_eq!(web_got, bytes_of(450_000, 3), "the web mount's too");
    let mut exited = None;
    for _ in 0..400 {
        if let Some(status) = gw.child.try_wait().expect("wait") {
            exited = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = exited.unwrap_or_else(|| {
        let _ = gw.child.kill();
        panic!("the gateway did not exit after SIGTERM");
    });
    assert!(status.success(), "clean exit: {status}");
    assert!(
        client
            .request(reqwest::Method::OPTIONS, format!("{base}/"))
            .send()
            .await
            .is_err(),
        "no longer accepting"
    );
    // The queued upload is still on disk for the next start.
    let manifests = std::fs::read_dir(dir.path().join("state").join("queue"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(manifests, 2, "both queued uploads' manifests are kept");
}
