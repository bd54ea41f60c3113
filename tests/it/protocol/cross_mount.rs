//! COPY and MOVE between two mounts whose bytes pass through the gateway (123 does not make
//! the copy by instant reuse): the source is read through the same download path as a GET
//! through a proxy mount, so a CDN that refuses or answers wrong never leaves a corrupt file.

use crate::common::*;
use pan123_emulator::{EmulatorConfig, Fault, FaultKind};

const LEN: usize = 300_000;

/// Two Open mounts, `/a` and `/b`, with `create` asking for the bytes of known content
/// (`reuse_without_file_id`), so a copy between them is streamed through the gateway.
async fn env() -> TestEnv {
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/a/src.bin", bytes_of(LEN, 3));
        emu.put_file("/b/keep.txt", b"b".to_vec());
        let a = emu.lookup("/a").map(|e| e.id).unwrap_or(0);
        let b = emu.lookup("/b").map(|e| e.id).unwrap_or(0);
        format!(
            "{}{}",
            open_mount("/a", "proxy", &format!("root_id = {a}")),
            open_mount("/b", "proxy", &format!("root_id = {b}")),
        )
    })
    .await;
    env.emu.set_switches(|s| s.reuse_without_file_id = true);
    env
}

fn cdn(kind: FaultKind) -> Fault {
    Fault {
        endpoint: "cdn".into(),
        kind,
    }
}

async fn copy(env: &TestEnv, to: &str) -> u16 {
    env.req("COPY", "/a/src.bin")
        .header("Destination", env.url(to))
        .send()
        .await
        .expect("copy")
        .status()
        .as_u16()
}

/// Once the queue is idle, the emulator holds `path` with exactly the source's bytes.
async fn lands_exact(env: &TestEnv, path: &str) {
    let want = bytes_of(LEN, 3);
    eventually("the copy lands on 123", || {
        env.emu.read(path).is_some_and(|b| b == want)
    })
    .await;
    let got = env.req("GET", path).send().await;
    let body = got.expect("get").bytes().await.expect("body");
    assert!(
        body.as_ref() == want.as_slice(),
        "the copy reads back exactly"
    );
}

#[tokio::test]
async fn a_refused_link_is_refreshed_and_the_copy_is_exact() {
    let env = env().await;
    env.emu.inject(cdn(FaultKind::Http {
        status: 403,
        count: 1,
    }));
    assert_eq!(copy(&env, "/b/copy.bin").await, 201);
    // The refused answer cost one more CDN request and nothing else.
    assert_eq!(env.emu.stats().calls.get("cdn").copied(), Some(2));
    lands_exact(&env, "/b/copy.bin").await;
}

#[tokio::test]
async fn a_cdn_that_keeps_refusing_is_502_and_no_file() {
    let env = env().await;
    env.emu.inject(cdn(FaultKind::Http {
        status: 403,
        count: 2,
    }));
    assert_eq!(copy(&env, "/b/copy.bin").await, 502);
    let r = env.req("GET", "/b/copy.bin").send().await.expect("get");
    assert_eq!(r.status(), 404);
    assert!(env.emu.read("/b/copy.bin").is_none());
    // The source is untouched and a later copy works.
    assert_eq!(copy(&env, "/b/copy.bin").await, 201);
}

#[tokio::test]
async fn a_body_cut_short_is_502_and_no_file() {
    let env = env().await;
    env.emu.inject(cdn(FaultKind::CutAfter {
        bytes: 1000,
        count: 1,
    }));
    assert_eq!(copy(&env, "/b/copy.bin").await, 502);
    let r = env.req("GET", "/b/copy.bin").send().await.expect("get");
    assert_eq!(r.status(), 404);
    assert!(env.emu.read("/b/copy.bin").is_none());
}

#[tokio::test]
async fn a_cdn_error_is_retried_and_a_move_is_exact() {
    let env = env().await;
    env.emu.inject(cdn(FaultKind::Http {
        status: 503,
        count: 1,
    }));
    let r = env
        .req("MOVE", "/a/src.bin")
        .header("Destination", env.url("/b/moved.bin"))
        .send()
        .await
        .expect("move");
    assert_eq!(r.status(), 201);
    lands_exact(&env, "/b/moved.bin").await;
    assert!(env.emu.read("/a/src.bin").is_none());
}
