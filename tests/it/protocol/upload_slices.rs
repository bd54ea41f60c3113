//! `upload_slices` is each mount's own: two mounts with different values send that many
//! slices in parallel each, as the emulator sees them in flight.

use crate::common::*;
use pan123_emulator::{EmulatorConfig, Fault, FaultKind};

const SLICE: usize = 64 * 1024;

#[tokio::test]
async fn each_mount_sends_its_own_number_of_slices_in_parallel() {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = SLICE as u64;
    let env = TestEnv::start(cfg, |emu| {
        emu.put_file("/one/keep.txt", b"1".to_vec());
        emu.put_file("/four/keep.txt", b"4".to_vec());
        let one = emu.lookup("/one").map(|e| e.id).unwrap_or(0);
        let four = emu.lookup("/four").map(|e| e.id).unwrap_or(0);
        format!(
            "{}{}",
            open_mount(
                "/one",
                "proxy",
                &format!("root_id = {one}\nupload = \"sync\"\nupload_slices = 1")
            ),
            open_mount(
                "/four",
                "proxy",
                &format!("root_id = {four}\nupload = \"sync\"\nupload_slices = 4")
            ),
        )
    })
    .await;
    // Every slice waits a little before it is handled, so parallel slices overlap.
    env.emu.inject(Fault {
        endpoint: "/upload/v2/file/slice".into(),
        kind: FaultKind::Latency {
            ms: 150,
            count: 1000,
        },
    });
    for (seed, mount, want) in [(5, "/one", 1..=1), (6, "/four", 2..=4)] {
        // Content 123 does not have yet, so every slice is sent.
        let body = bytes_of(SLICE * 8, seed);
        env.emu.reset_stats();
        let path = format!("{mount}/big.bin");
        let r = env
            .req("PUT", &path)
            .body(body.clone())
            .send()
            .await
            .expect("put");
        assert!(r.status().is_success(), "{path}: {}", r.status());
        let stats = env.emu.stats();
        assert_eq!(stats.calls("/upload/v2/file/slice"), 8, "{path}");
        let parallel = stats.max_in_flight("/upload/v2/file/slice");
        assert!(
            want.contains(&parallel),
            "{path}: {parallel} slices in flight"
        );
        assert_eq!(env.emu.read(&path).as_deref(), Some(body.as_slice()));
    }
}
