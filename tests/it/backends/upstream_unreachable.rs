//! 123 unreachable (issue 14): hanging (accepting connections, never answering) or refusing
//! connections (nothing listening). Every request meets one overall upstream deadline
//! (`server.upstream_deadline`) across all its retries and answers 503/504 with Retry-After;
//! writes answer 502/503 like reads, never 500.
//!
//! Every test here uses the same `SERVER` keys. The first-byte timeout
//! stays at its default (30 s): the deadline, not the per-attempt timeout, is what bounds a
//! request. Statuses are asserted, never timings; each request prints how long it took, for the
//! issue's before/after figures.

use std::time::{Duration, Instant};

use crate::common::web_api::*;
use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig, FaultKind};

const SHARE_KEY: &str = "unreachable-Key";
const SERVER: &str = "upstream_deadline = \"2s\"\nready_probe_interval = \"1h\"\n";
/// Ten times the deadline: a request still unanswered after this hangs.
const REQUEST_GUARD: Duration = Duration::from_secs(20);

/// An Open mount `/m`, a web mount `/w` (both writable) and a share mount `/s`, all over
/// `/lib`, with their roots listed (and cached).
async fn env() -> TestEnv {
    let env = TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            for d in ["d1", "d2", "d3"] {
                emu.put_file(&format!("/lib/{d}/x.txt"), d);
            }
            for f in ["a", "b", "c", "e", "f", "g"] {
                emu.put_file(&format!("/lib/{f}.bin"), bytes_of(10_000, 1));
            }
            emu.add_share(SHARE_KEY, None, "/lib");
            let root = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            format!(
                "{}{}{}",
                open_mount("/m", "proxy", &format!("root_id = {root}")),
                web_mount("/w", "proxy", &format!("root_id = {root}\n")),
                share_mount("/s", "proxy", SHARE_KEY, None, ""),
            )
        })
        .server(SERVER)
        .start()
        .await;
    settle(&env, SHARE_LIST, 1).await;
    settle(&env, WEB_PROBE, 1).await;
    for mount in ["/m/", "/w/", "/s/"] {
        let (status, body) = guard("root", env.propfind(mount, "1")).await;
        assert_eq!(status, 207, "{mount}: {body}");
    }
    env
}

/// One request under `REQUEST_GUARD`: its status (0: no answer) and Retry-After. Prints how
/// long it took.
async fn ask(what: &str, rb: reqwest::RequestBuilder) -> (u16, String) {
    let started = Instant::now();
    let res = match tokio::time::timeout(REQUEST_GUARD, rb.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("{what}: {e} after {:.1}s", started.elapsed().as_secs_f64());
            return (0, String::new());
        }
        Err(_) => {
            eprintln!(
                "{what}: no answer after {:.1}s",
                started.elapsed().as_secs_f64()
            );
            return (0, String::new());
        }
    };
    eprintln!(
        "{what}: {} after {:.1}s",
        res.status().as_u16(),
        started.elapsed().as_secs_f64()
    );
    (res.status().as_u16(), header(&res, "retry-after"))
}

/// The reads and writes of the reproduction on one mount.
fn requests(env: &TestEnv, m: &str, writes: bool) -> Vec<(String, reqwest::RequestBuilder)> {
    let mut out = vec![
        (
            format!("PROPFIND {m}/d1/"),
            env.req("PROPFIND", &format!("{m}/d1/"))
                .header("Depth", "1"),
        ),
        (
            format!("range GET {m}/a.bin"),
            env.req("GET", &format!("{m}/a.bin"))
                .header("Range", "bytes=0-99"),
        ),
    ];
    if writes {
        out.push((
            format!("MKCOL {m}/new"),
            env.req("MKCOL", &format!("{m}/new")),
        ));
        out.push((
            format!("DELETE {m}/b.bin"),
            env.req("DELETE", &format!("{m}/b.bin")),
        ));
        out.push((
            format!("MOVE {m}/c.bin"),
            env.req("MOVE", &format!("{m}/c.bin"))
                .header("Destination", env.url(&format!("{m}/c2.bin"))),
        ));
    }
    out
}

#[tokio::test]
async fn a_hanging_upstream_is_503_within_the_deadline() {
    let env = env().await;
    env.emu.inject(pan123_emulator::Fault {
        endpoint: "*".into(),
        kind: FaultKind::Hang { count: 100_000 },
    });
    let mut all = requests(&env, "/m", true);
    all.extend(requests(&env, "/w", true));
    all.extend(requests(&env, "/s", false));
    let answers = futures_util::future::join_all(
        all.into_iter()
            .map(|(what, rb)| async { (ask(&what, rb).await, what) }),
    )
    .await;
    for ((status, retry), what) in answers {
        assert!(status == 503 || status == 504, "{what}: {status}");
        assert!(!retry.is_empty(), "{what}: Retry-After");
    }
    // Nothing was changed meanwhile, and 123 back is 123 back (a folder no request touched).
    env.emu.clear_faults();
    assert!(env.emu.lookup("/lib/b.bin").is_some());
    assert!(env.emu.lookup("/lib/new").is_none());
    let (status, body) = guard("d2", env.propfind("/m/d2/", "1")).await;
    assert_eq!(status, 207, "{body}");
    // A token refresh that hangs meets the same deadline (the token expired; only the token
    // endpoint hangs). Last: the listing fetch this starts keeps waiting for its token in the
    // background, bounded by the first-byte timeout, not by this request's deadline.
    env.emu.expire_tokens();
    env.emu.inject(pan123_emulator::Fault {
        endpoint: "/api/v1/access_token".into(),
        kind: FaultKind::Hang { count: 100_000 },
    });
    let (read, write) = tokio::join!(
        ask(
            "PROPFIND /m/d3/ (token refresh hangs)",
            env.req("PROPFIND", "/m/d3/").header("Depth", "1"),
        ),
        ask(
            "MKCOL /m/new2 (token refresh hangs)",
            env.req("MKCOL", "/m/new2")
        ),
    );
    for (status, retry) in [read, write] {
        assert!(status == 503 || status == 504, "token refresh: {status}");
        assert!(!retry.is_empty(), "token refresh: Retry-After");
    }
}

#[tokio::test]
async fn writes_to_a_refusing_upstream_are_502_or_503_like_reads() {
    let mut env = env().await;
    // 123 stops: its port refuses connections from now on.
    let stopped = std::mem::replace(
        &mut env.emu,
        Emulator::start(EmulatorConfig::default())
            .await
            .expect("a stand-in emulator"),
    );
    stopped.shutdown().await;
    let mut all = requests(&env, "/m", true);
    all.extend(requests(&env, "/w", true));
    let mut answers = Vec::new();
    for (what, rb) in all {
        answers.push((ask(&what, rb).await.0, what));
    }
    for (status, what) in answers {
        assert!(status == 502 || status == 503, "{what}: {status}");
    }
}
