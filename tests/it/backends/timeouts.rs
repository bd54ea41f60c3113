//! A slow upstream meets the configured timeouts: the client gets 504 or 503 in bounded time,
//! never a hang. The timeouts are the gateway's own (handed to its clients at construction), so
//! this test may share a binary with gateways of other timeouts.

use crate::common::*;
use pan123_emulator::{EmulatorConfig, Fault, FaultKind};

#[tokio::test]
async fn slow_upstreams_end_in_gateway_errors_not_hangs() {
    let env = TestEnv::builder(EmulatorConfig::default()).mounts(|emu| {
            emu.put_file("/lib/a.bin", bytes_of(10_000, 1));
            emu.put_file("/lib/d/x.txt", b"x".to_vec());
            let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            open_mount("/m", "proxy", &format!("root_id = {id}"))
        }).server("upstream_first_byte_timeout = \"1s\"\nupstream_connect_timeout = \"1s\"\nupstream_idle_timeout = \"2s\"").start()
    .await;
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    // The CDN takes 4 s to answer: past the first-byte timeout, 504.
    env.emu.inject(Fault {
        endpoint: "cdn".into(),
        kind: FaultKind::Latency {
            ms: 4_000,
            count: 10,
        },
    });
    let r = env.req("GET", "/m/a.bin").send().await.expect("get");
    assert_eq!(r.status().as_u16(), 504);
    env.emu.clear_faults();
    // The listing API takes 4 s per call: retried a bounded number of times, then 503.
    env.emu.inject(Fault {
        endpoint: "/api/v2/file/list".into(),
        kind: FaultKind::Latency {
            ms: 4_000,
            count: 10,
        },
    });
    let r = env
        .req("PROPFIND", "/m/d/")
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().get("retry-after").is_some());
    env.emu.clear_faults();
    assert_eq!(
        env.req("GET", "/m/a.bin")
            .send()
            .await
            .expect("get")
            .status()
            .as_u16(),
        200
    );
}
