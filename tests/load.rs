//! A short load run: 200 concurrent clients mixing PROPFIND, Range GETs and PUTs against the
//! emulator, spread over one mount of every backend (Open, personal web, share, link; PUTs on
//! the writable ones). Every answer is exactly the one expected (PROPFIND 207 with every entry,
//! 206 with the asked bytes, PUT 201 and then the file on 123 with its bytes), no leaked file
//! descriptors, bounded memory. (The full-minute variant is a benchmark, not a test.)

// Shared with the main test binary (`it/`); this test runs alone in its process.
#[path = "it/common/mod.rs"]
mod common;

use std::time::Duration;

use common::*;
use pan123_emulator::EmulatorConfig;

const CLIENTS: usize = 200;
const REQUESTS_PER_CLIENT: usize = 6;
const FILES: usize = 20;
const SHARE_KEY: &str = "load-share";
/// Polls (every 500 ms) for the queued uploads to land: a bound, not a timing.
const UPLOAD_WAIT_POLLS: usize = 600;
/// One mount per backend, and whether it takes PUTs.
const MOUNTS: [(&str, bool); 4] = [("m", true), ("w", true), ("s", false), ("l", false)];

/// What a load request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Propfind,
    Get,
    Put,
}

/// Whether client `c` PUTs with its request `r`: a third of the requests on a writable mount,
/// but on the personal (web) mount only one client in five does, because every web upload
/// costs several web-API calls paced 700 ms apart, which would make the run minutes long
/// without adding load on the gateway.
fn puts(c: usize, r: usize) -> bool {
    let (mount, writable) = MOUNTS[c % MOUNTS.len()];
    writable && (c + r) % 3 == 2 && (mount != "w" || c % 20 == 1)
}

/// The body client `c` PUTs with its request `r`.
fn put_body(c: usize, r: usize) -> String {
    format!("client {c} request {r}")
}

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
    let env = TestEnv::builder(cfg)
        .mounts(|emu| {
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
        })
        .server("connections_per_ip = 1000")
        .start()
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
            // Each request's answer is known in advance; anything else is an error.
            let mut outcomes: Vec<(Kind, Result<(), String>)> = Vec::new();
            for r in 0..REQUESTS_PER_CLIENT {
                let i = (c + r) % FILES;
                let (mount, _) = MOUNTS[c % MOUNTS.len()];
                let file = format!("{base}/{mount}/d{}/f{i}.bin", i % 4);
                let kind = match (c + r) % 3 {
                    0 => Kind::Propfind,
                    _ if puts(c, r) => Kind::Put,
                    _ => Kind::Get,
                };
                let sent = match kind {
                    Kind::Propfind => {
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
                    Kind::Put => {
                        client
                            .put(format!("{base}/{mount}/up/c{c}-{r}.txt"))
                            .basic_auth(USER, Some(PASSWORD))
                            .body(put_body(c, r))
                            .send()
                            .await
                    }
                    Kind::Get => {
                        client
                            .get(&file)
                            .header("Range", format!("bytes={}-{}", r * 1000, r * 1000 + 4999))
                            .basic_auth(USER, Some(PASSWORD))
                            .send()
                            .await
                    }
                };
                let outcome = match sent {
                    Err(e) => Err(format!("{kind:?} /{mount}: {e}")),
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let body = res.bytes().await.unwrap_or_default();
                        match kind {
                            // The folder and every file in it: FILES / 4 of them.
                            Kind::Propfind if status == 207 => {
                                let n = responses(&String::from_utf8_lossy(&body));
                                if n == 1 + FILES / 4 {
                                    Ok(())
                                } else {
                                    Err(format!("PROPFIND /{mount}: {n} responses"))
                                }
                            }
                            // Exactly the asked range.
                            Kind::Get
                                if status == 206
                                    && body.as_ref()
                                        == &bytes_of(50_000, i as u8)
                                            [r * 1000..r * 1000 + 5000] =>
                            {
                                Ok(())
                            }
                            Kind::Put if status == 201 => Ok(()),
                            _ => Err(format!(
                                "{kind:?} /{mount}: {status} ({} bytes)",
                                body.len()
                            )),
                        }
                    }
                };
                outcomes.push((kind, outcome));
            }
            outcomes
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("join"));
    }
    assert_eq!(all.len(), CLIENTS * REQUESTS_PER_CLIENT);
    for kind in [Kind::Propfind, Kind::Get, Kind::Put] {
        let of_kind: Vec<&Result<(), String>> = all
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, o)| o)
            .collect();
        let failed: Vec<&String> = of_kind.iter().filter_map(|o| o.as_ref().err()).collect();
        eprintln!(
            "load: {kind:?}: {} sent, {} right",
            of_kind.len(),
            of_kind.len() - failed.len()
        );
        assert!(!of_kind.is_empty(), "no {kind:?} was sent");
        assert!(
            failed.is_empty(),
            "{} of {} {kind:?}s were wrong: {:?}",
            failed.len(),
            of_kind.len(),
            &failed[..failed.len().min(10)]
        );
    }
    // Every PUT lands on 123 with its bytes once the queue drains (bounded: the web mount's
    // uploads are paced with the rest of its web-API calls).
    let put_paths: Vec<(String, Vec<u8>)> = (0..CLIENTS)
        .flat_map(|c| (0..REQUESTS_PER_CLIENT).map(move |r| (c, r)))
        .filter(|&(c, r)| puts(c, r))
        .map(|(c, r)| (format!("/lib/up/c{c}-{r}.txt"), put_body(c, r).into_bytes()))
        .collect();
    let mut missing = put_paths.len();
    for _ in 0..UPLOAD_WAIT_POLLS {
        missing = put_paths
            .iter()
            .filter(|(path, want)| env.emu.read(path).as_deref() != Some(&want[..]))
            .count();
        if missing == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "load: {} PUTs, {missing} not on 123 with their bytes",
        put_paths.len()
    );
    assert_eq!(missing, 0, "uploads that never landed");
    // Connections close; descriptors come back (waited for, at most 10 s).
    drop(env);
    let mut fds_after = open_fds();
    for _ in 0..200 {
        if fds_after <= fds_before + 16 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        fds_after = open_fds();
    }
    assert!(
        fds_after <= fds_before + 16,
        "descriptors leaked: {fds_before} → {fds_after}"
    );
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 512 * 1024, "memory grew by {grown} KiB");
}
