//! A short load run: 200 concurrent clients mixing PROPFIND, Range GETs and PUTs against the
//! emulator. No gateway-caused 5xx, no leaked file descriptors, bounded memory. (The full-minute
//! variant is a benchmark, not a test.)

mod common;

use std::time::Duration;

use common::*;
use pan123_emulator::EmulatorConfig;

const CLIENTS: usize = 200;
const REQUESTS_PER_CLIENT: usize = 6;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_clients_get_no_gateway_errors() {
    // The load is the gateway's; the emulator's QPS table would turn it into 503s by design.
    let mut cfg = EmulatorConfig {
        qps: false,
        ..EmulatorConfig::default()
    };
    cfg.switches.complete_poll_interval = Duration::ZERO;
    let env = TestEnv::start(cfg, |emu| {
        for i in 0..20 {
            emu.put_file(
                &format!("/lib/d{}/f{i}.bin", i % 4),
                bytes_of(50_000, i as u8),
            );
        }
        let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        open_mount("/m", "proxy", &format!("root_id = {id}"))
    })
    .await;
    // Warm up once so the comparison below measures the load, not first-use allocations.
    assert_eq!(env.propfind("/m/d0/", "1").await.0, 207);
    let fds_before = open_fds();
    let rss_before = rss_kib();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = env.client.clone();
        let base = env.base.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for r in 0..REQUESTS_PER_CLIENT {
                let i = (c + r) % 20;
                let res = match (c + r) % 3 {
                    0 => {
                        client
                            .request(
                                reqwest::Method::from_bytes(b"PROPFIND").expect("m"),
                                format!("{base}/m/d{}/", i % 4),
                            )
                            .header("Depth", "1")
                            .basic_auth(USER, Some(PASSWORD))
                            .send()
                            .await
                    }
                    1 => {
                        client
                            .get(format!("{base}/m/d{}/f{i}.bin", i % 4))
                            .header("Range", format!("bytes={}-{}", r * 1000, r * 1000 + 4999))
                            .basic_auth(USER, Some(PASSWORD))
                            .send()
                            .await
                    }
                    _ => {
                        client
                            .put(format!("{base}/m/up/c{c}-{r}.txt"))
                            .basic_auth(USER, Some(PASSWORD))
                            .body(format!("client {c} request {r}"))
                            .send()
                            .await
                    }
                };
                match res {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let _ = res.bytes().await;
                        statuses.push(status);
                    }
                    Err(e) => statuses.push(if e.is_timeout() { 1 } else { 0 }),
                }
            }
            statuses
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    let errors: Vec<u16> = all
        .iter()
        .copied()
        .filter(|s| *s >= 500 || *s < 100)
        .collect();
    // PUTs into /m/up need the folder first: they may answer 409, a client error, which is fine.
    assert!(
        errors.is_empty(),
        "{} of {} requests failed: {:?}",
        errors.len(),
        all.len(),
        &errors[..errors.len().min(20)]
    );
    assert_eq!(all.len(), CLIENTS * REQUESTS_PER_CLIENT);
    // Connections close; descriptors come back.
    drop(env);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fds_after = open_fds();
    assert!(
        fds_after <= fds_before + 16,
        "descriptors leaked: {fds_before} → {fds_after}"
    );
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 512 * 1024, "memory grew by {grown} KiB");
}
