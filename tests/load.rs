//! A short load run: 200 concurrent clients mixing PROPFIND, Range GETs and PUTs against the
//! emulator, spread over one mount of every backend (Open, personal web, share, link; PUTs on
//! the writable ones). No gateway-caused 5xx, no leaked file descriptors, bounded memory. (The
//! full-minute variant is a benchmark, not a test.)

mod common;

use std::time::Duration;

use common::*;
use pan123_emulator::EmulatorConfig;

const CLIENTS: usize = 200;
const REQUESTS_PER_CLIENT: usize = 6;
const FILES: usize = 20;
const SHARE_KEY: &str = "load-share";
/// Recorded instead of 206 when a range came back with the wrong bytes (counted as an error).
const WRONG_BYTES: u16 = 2;
/// One mount per backend, and whether it takes PUTs.
const MOUNTS: [(&str, bool); 4] = [("m", true), ("w", true), ("s", false), ("l", false)];

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
        direct_link_space: Some("/direct".into()),
        ..EmulatorConfig::default()
    };
    cfg.switches.complete_poll_interval = Duration::ZERO;
    // All 200 clients share one address (loopback): lift the per-address connection cap.
    let env = TestEnv::start_full(
        cfg,
        |emu| {
            for i in 0..FILES {
                let name = format!("d{}/f{i}.bin", i % 4);
                emu.put_file(&format!("/lib/{name}"), bytes_of(50_000, i as u8));
                emu.put_file(&format!("/direct/{name}"), bytes_of(50_000, i as u8));
            }
            emu.mkdir_p("/lib/up");
            emu.add_share(SHARE_KEY, None, "/lib");
            let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            let urls: String = (0..4)
                .map(|d| {
                    let files: String = (0..FILES)
                        .filter(|i| i % 4 == d)
                        .map(|i| {
                            format!(
                                "  50000:{}\n",
                                direct_url(emu, &format!("/direct/d{d}/f{i}.bin"))
                            )
                        })
                        .collect();
                    format!("d{d}:\n{files}")
                })
                .collect();
            format!(
                "{}{}{}{}",
                open_mount("/m", "proxy", &format!("root_id = {id}")),
                web_mount("/w", "proxy", &format!("root_id = {id}")),
                share_mount("/s", "proxy", SHARE_KEY, None, ""),
                link_mount("/l", "proxy", &urls, "")
            )
        },
        "",
        "connections_per_ip = 1000",
    )
    .await;
    // Warm up once so the comparison below measures the load, not first-use allocations (and
    // the web and share listings, paced at 700 ms a page, are cached).
    for (mount, _) in MOUNTS {
        for d in 0..4 {
            let (status, body) = env.propfind(&format!("/{mount}/d{d}/"), "1").await;
            assert_eq!(status, 207, "/{mount}/d{d}/: {body}");
        }
    }
    assert_eq!(env.propfind("/w/up/", "1").await.0, 207);
    assert_eq!(env.propfind("/m/up/", "1").await.0, 207);
    let fds_before = open_fds();
    let rss_before = rss_kib();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = env.client.clone();
        let base = env.base.clone();
        tasks.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for r in 0..REQUESTS_PER_CLIENT {
                let i = (c + r) % FILES;
                let (mount, writable) = MOUNTS[c % MOUNTS.len()];
                let file = format!("{base}/{mount}/d{}/f{i}.bin", i % 4);
                let res = match (c + r) % 3 {
                    0 => {
                        client
                            .request(
                                reqwest::Method::from_bytes(b"PROPFIND").expect("m"),
                                format!("{base}/{mount}/d{}/", i % 4),
                            )
                            .header("Depth", "1")
                            .basic_auth(USER, Some(PASSWORD))
                            .send()
                            .await
                    }
                    2 if writable => {
                        client
                            .put(format!("{base}/{mount}/up/c{c}-{r}.txt"))
                            .basic_auth(USER, Some(PASSWORD))
                            .body(format!("client {c} request {r}"))
                            .send()
                            .await
                    }
                    _ => {
                        client
                            .get(&file)
                            .header("Range", format!("bytes={}-{}", r * 1000, r * 1000 + 4999))
                            .basic_auth(USER, Some(PASSWORD))
                            .send()
                            .await
                    }
                };
                match res {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let body = res.bytes().await.unwrap_or_default();
                        // Never wrong bytes: a 206 carries exactly the asked range.
                        let wrong = status == 206
                            && body.as_ref()
                                != &bytes_of(50_000, i as u8)[r * 1000..r * 1000 + 5000];
                        statuses.push(if wrong { WRONG_BYTES } else { status });
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
    let puts = all.iter().filter(|s| **s == 201).count();
    assert!(puts > 0, "the PUTs were taken: {all:?}");
    assert!(all.contains(&206) && all.contains(&207), "{all:?}");
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
