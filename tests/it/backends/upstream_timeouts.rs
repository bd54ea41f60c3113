//! Slow upstreams of share, web and link mounts meet the configured timeouts: a listing whose
//! pages do not come is a 503 with Retry-After after bounded attempts, a CDN or direct host that
//! does not answer is a 504, and a body that stalls once started is a cut connection with right
//! bytes so far. Never a hang (a generous guard around every request).
//!
//! The timeouts are each gateway's own (handed to its clients at construction), so these tests
//! could share a binary with any other. The Open API mount's case is `tests/it/backends/timeouts.rs`; the
//! other faults are `tests/it/backends/upstream_faults.rs`.

use crate::common::web_api::*;
use crate::common::*;
use pan123_emulator::{EmulatorConfig, FaultKind};

const SHARE_KEY: &str = "slow-Key";
/// Short timeouts; no mount is re-probed more than once an hour, so the probes are the setup's
/// own.
const SERVER: &str = "upstream_first_byte_timeout = \"1s\"\nupstream_connect_timeout = \"1s\"\nupstream_idle_timeout = \"2s\"\nready_probe_interval = \"1h\"\n";
/// Far beyond the first-byte timeout.
const SLOW_MS: u64 = 4_000;
/// Attempts of one web API call that times out: the first and two retries.
const ATTEMPTS_5XX: u32 = 3;
const SIZE: usize = 50_000;

fn slow(count: u32) -> FaultKind {
    FaultKind::Latency { ms: SLOW_MS, count }
}

/// How many calls of `endpoint` a latency fault armed with `armed` calls has delayed so far.
fn delayed(env: &TestEnv, endpoint: &str, armed: u32) -> u32 {
    let left = env
        .emu
        .faults()
        .iter()
        .filter(|f| f.endpoint == endpoint)
        .map(|f| match f.kind {
            FaultKind::Latency { count, .. } => count,
            _ => 0,
        })
        .sum::<u32>();
    armed - left
}

/// A GET under the hang guard: status, Content-Length, the body as far as it came, and whether
/// it ended in an error (a cut connection).
async fn get(env: &TestEnv, path: &str) -> (u16, String, Vec<u8>, bool) {
    let mut res = guard(path, env.req("GET", path).send()).await.expect("get");
    let status = res.status().as_u16();
    let length = header(&res, "content-length");
    let mut body = Vec::new();
    let mut cut = false;
    loop {
        match guard(path, res.chunk()).await {
            Ok(Some(c)) => body.extend_from_slice(&c),
            Ok(None) => break,
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    (status, length, body, cut)
}

/// A share mount `/s` or a web mount `/w` (proxying) over `/lib`: two small folders and a file.
async fn env(kind: Kind) -> TestEnv {
    let env = TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            emu.put_file("/lib/d1/x1.txt", "one");
            emu.put_file("/lib/d2/x2.txt", "two");
            emu.put_file("/lib/a.bin", bytes_of(SIZE, 1));
            emu.put_file("/lib/b.bin", bytes_of(SIZE, 2));
            emu.add_share(SHARE_KEY, None, "/lib");
            let root = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            match kind {
                Kind::Share => share_mount("/s", "proxy", SHARE_KEY, None, ""),
                Kind::Web => web_mount("/w", "proxy", &format!("root_id = {root}\n")),
            }
        })
        .server(SERVER)
        .start()
        .await;
    settle(
        &env,
        match kind {
            Kind::Share => SHARE_LIST,
            Kind::Web => WEB_PROBE,
        },
        1,
    )
    .await;
    let (status, body) = guard("root", env.propfind(&format!("{}/", kind.mount()), "1")).await;
    assert_eq!(status, 207, "{body}");
    // A 502/503/504 prompts one readiness probe (a root listing) per `ready_probe_interval`:
    // spend it now, so it does not meet the test's faults.
    let before = env.emu.stats().calls(kind.list());
    inject(
        &env,
        kind.info(),
        FaultKind::Http {
            status: 503,
            count: 1000,
        },
    );
    let (status, ..) = get(&env, &format!("{}/b.bin", kind.mount())).await;
    assert_eq!(status, 503);
    env.emu.clear_faults();
    settle(&env, kind.list(), before + 1).await;
    env
}

/// Listing pages that take longer than the first-byte timeout: three attempts, then 503 with
/// Retry-After; the folder lists once 123 is quick again. A CDN that does not answer: 504.
async fn slow_listing_and_cdn(kind: Kind) {
    let env = env(kind).await;
    let m = kind.mount();
    inject(&env, kind.list(), slow(100));
    let res = guard(
        "slow listing",
        env.req("PROPFIND", &format!("{m}/d1/"))
            .header("Depth", "1")
            .send(),
    )
    .await
    .expect("propfind");
    assert_eq!(res.status().as_u16(), 503, "{kind:?}");
    assert!(!header(&res, "retry-after").is_empty(), "{kind:?}");
    let body = res.text().await.unwrap_or_default();
    assert!(!body.contains("x1.txt"), "{kind:?}: {body}");
    assert_eq!(delayed(&env, kind.list(), 100), ATTEMPTS_5XX, "{kind:?}");
    env.emu.clear_faults();
    let (status, body) = guard("listing", env.propfind(&format!("{m}/d1/"), "1")).await;
    assert_eq!(status, 207, "{kind:?}: {body}");
    assert!(body.contains("x1.txt"), "{kind:?}: {body}");

    // The CDN takes 4 s to answer: 504, not retried (the client may retry).
    inject(&env, "cdn", slow(100));
    let (status, _, body, _) = get(&env, &format!("{m}/a.bin")).await;
    assert_eq!(status, 504, "{kind:?}");
    assert!(body.len() < 1000, "{kind:?}: an error page");
    assert_eq!(delayed(&env, "cdn", 100), 1, "{kind:?}");
    env.emu.clear_faults();
    let (status, _, body, cut) = get(&env, &format!("{m}/a.bin")).await;
    assert_eq!((status, cut), (200, false), "{kind:?}");
    assert!(body == bytes_of(SIZE, 1), "{kind:?}: right bytes");
}

#[tokio::test]
async fn slow_listing_is_503_and_a_slow_cdn_is_504() {
    tokio::join!(
        slow_listing_and_cdn(Kind::Share),
        slow_listing_and_cdn(Kind::Web)
    );
}

/// A body that stalls after its headers (1 KiB every 3.4 s, past the 2 s idle timeout): the
/// client gets the promised Content-Length and a cut connection, every byte so far right.
async fn stalled_body(env: &TestEnv, path: &str, file: &[u8]) {
    let (status, length, body, cut) = get(env, path).await;
    assert_eq!(status, 200, "{path}");
    assert_eq!(length, file.len().to_string(), "{path}");
    assert!(cut, "{path}: the stall must end in a cut");
    assert!(body.len() < file.len(), "{path}");
    assert!(body == file[..body.len()], "{path}: right bytes");
}

#[tokio::test]
async fn a_stalled_cdn_body_is_a_cut_connection() {
    let run = |kind: Kind| async move {
        let env = env(kind).await;
        env.emu.set_switches(|s| s.cdn_rate_limit = Some(300));
        stalled_body(&env, &format!("{}/a.bin", kind.mount()), &bytes_of(SIZE, 1)).await;
    };
    tokio::join!(run(Kind::Share), run(Kind::Web));
}

/// A link mount's direct host: slow to answer is 504; a stalled body is a cut connection.
#[tokio::test]
async fn a_slow_or_stalled_direct_host() {
    let cfg = EmulatorConfig {
        direct_link_space: Some("/direct".into()),
        ..Default::default()
    };
    let env = TestEnv::builder(cfg)
        .mounts(|emu| {
            emu.put_file("/direct/a.bin", bytes_of(SIZE, 1));
            let urls = format!("{SIZE}:{}\n", direct_url(emu, "/direct/a.bin"));
            link_mount("/l", "proxy", &urls, "")
        })
        .server(SERVER)
        .start()
        .await;
    inject(&env, "direct", slow(100));
    let (status, _, body, _) = get(&env, "/l/a.bin").await;
    assert_eq!(status, 504);
    assert!(body.len() < 1000, "an error page");
    assert_eq!(delayed(&env, "direct", 100), 1);
    env.emu.clear_faults();
    env.emu.set_switches(|s| s.cdn_rate_limit = Some(300));
    stalled_body(&env, "/l/a.bin", &bytes_of(SIZE, 1)).await;
    env.emu.set_switches(|s| s.cdn_rate_limit = None);
    let (status, _, body, cut) = get(&env, "/l/a.bin").await;
    assert_eq!((status, cut), (200, false));
    assert!(body == bytes_of(SIZE, 1), "right bytes");
}
