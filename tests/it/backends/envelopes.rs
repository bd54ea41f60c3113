//! Answers that are not what they seem (docs/123.md, open §11, "the envelope"): a JSON body
//! without `code`, a non-2xx status with a JSON envelope (a gateway in front of 123 answering
//! 429 or 502, even with `code: 0`), a slice or part answered with another 2xx than 200. Each is
//! an error, never a success: a MOVE, rename, DELETE or PUT that did not happen at 123 answers
//! an error status, and the folder lists as before, through Open and web mounts.
//!
//! Also here: a web signature refused for the clock (docs/123.md, web §7), in both shapes the
//! `web_signature_failure` switch gives, is an error naming the clock, never an empty folder.

use std::time::Duration;

use crate::common::*;
use pan123_emulator::{EmulatorConfig, Fault, FaultKind, WebSignatureFailure};

/// The writable backends, and the endpoints each uses for the same job.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Open,
    Web,
}

impl Kind {
    fn mount(self, emu: &pan123_emulator::Emulator) -> String {
        let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        let extra = format!("root_id = {id}\nupload = \"sync\"\n");
        match self {
            Kind::Open => open_mount("/m", "proxy", &extra),
            Kind::Web => web_mount("/m", "proxy", &extra),
        }
    }

    fn move_ep(self) -> &'static str {
        match self {
            Kind::Open => "/api/v1/file/move",
            Kind::Web => "/b/api/file/mod_pid",
        }
    }

    fn rename_ep(self) -> &'static str {
        match self {
            Kind::Open => "/api/v1/file/name",
            Kind::Web => "/b/api/file/rename",
        }
    }

    fn trash_ep(self) -> &'static str {
        match self {
            Kind::Open => "/api/v1/file/trash",
            Kind::Web => "/b/api/file/trash",
        }
    }

    fn part_ep(self) -> &'static str {
        match self {
            Kind::Open => "/upload/v2/file/slice",
            Kind::Web => "s3",
        }
    }
}

/// One bad answer, armed for good (`count` large) so no retry can get past it.
#[derive(Clone, Copy, Debug)]
enum Bad {
    /// HTTP 200, JSON without `code`.
    NoCode,
    /// HTTP 502 with `code: 0`.
    Gateway502,
    /// HTTP 429 with `code: 0`.
    Gateway429,
    /// HTTP 202 with `code: 0`: a 2xx that is not 200.
    Accepted202,
}

impl Bad {
    const ALL: [Bad; 4] = [
        Bad::NoCode,
        Bad::Gateway502,
        Bad::Gateway429,
        Bad::Accepted202,
    ];

    fn fault(self) -> FaultKind {
        let count = 10_000;
        match self {
            Bad::NoCode => FaultKind::NoCode { count },
            Bad::Gateway502 => FaultKind::HttpJson {
                status: 502,
                code: 0,
                count,
            },
            Bad::Gateway429 => FaultKind::HttpJson {
                status: 429,
                code: 0,
                count,
            },
            Bad::Accepted202 => FaultKind::HttpJson {
                status: 202,
                code: 0,
                count,
            },
        }
    }

    /// What the client gets: an outage or rate limit is 503 (come back later), an answer that
    /// cannot be read as success is 502.
    fn status(self) -> u16 {
        match self {
            Bad::NoCode | Bad::Accepted202 => 502,
            Bad::Gateway502 | Bad::Gateway429 => 503,
        }
    }

    /// Attempts of one API call: a wrong answer is final; an outage is retried twice (these
    /// writes are safe to resend); rate limiting is retried four times.
    fn attempts(self) -> u64 {
        match self {
            Bad::NoCode | Bad::Accepted202 => 1,
            Bad::Gateway502 => 3,
            Bad::Gateway429 => 5,
        }
    }

    /// Attempts of the one slice (Open) or part (web) of a small upload. A slice is an API
    /// call (resent three times after an outage, four after rate limiting); a part is a PUT to
    /// the presigned host, tried three times after an outage or a 429. A part answered HTTP 200
    /// without `code` looks stored (an S3 answer has no envelope), so that upload fails at
    /// `upload_complete` instead: the part is missing.
    fn part_attempts(self, kind: Kind) -> u64 {
        match (self, kind) {
            (Bad::NoCode | Bad::Accepted202, _) => 1,
            (Bad::Gateway502, Kind::Open) => 4,
            (Bad::Gateway429, Kind::Open) => 5,
            (Bad::Gateway502 | Bad::Gateway429, Kind::Web) => 3,
        }
    }
}

/// Small slices and instant completion polls, as in `tests/it/protocol/writes.rs`.
fn fast_cfg() -> EmulatorConfig {
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = 64 * 1024;
    cfg.switches.complete_pending_polls = 1;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    cfg
}

const NAMES: [&str; 4] = ["a.txt", "b.txt", "c.txt", "sub"];

async fn env(kind: Kind) -> TestEnv {
    TestEnv::start(fast_cfg(), move |emu| {
        emu.put_file("/lib/a.txt", b"a".to_vec());
        emu.put_file("/lib/b.txt", b"b".to_vec());
        emu.put_file("/lib/c.txt", b"c".to_vec());
        emu.mkdir_p("/lib/sub");
        kind.mount(emu)
    })
    .await
}

fn attempts(env: &TestEnv, endpoint: &str) -> u64 {
    let stats = env.emu.stats();
    stats.calls(endpoint) + stats.refused(endpoint)
}

async fn send(env: &TestEnv, method: &str, path: &str, dest: Option<&str>) -> u16 {
    let mut req = env.req(method, path);
    if let Some(dest) = dest {
        req = req.header("Destination", env.url(dest));
    }
    if method == "PUT" {
        // One slice (`fast_cfg`) and one part, so the attempts are one call's.
        req = req.body(bytes_of(50_000, 7));
    }
    req.send().await.expect(method).status().as_u16()
}

/// Nothing changed: at 123, and in the gateway's listing.
async fn assert_unchanged(env: &TestEnv, what: &str) {
    let mut names = env.emu.list_names("/lib").expect("listing");
    names.sort();
    assert_eq!(names, NAMES, "{what}: 123's folder changed");
    let (status, body) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207, "{what}: {body}");
    assert_eq!(responses(&body), 1 + NAMES.len(), "{what}: {body}");
    for name in NAMES {
        assert!(body.contains(name), "{what}: {name} missing: {body}");
    }
    assert!(!body.contains("new.bin"), "{what}: {body}");
}

/// Every write under every bad answer: an error status, bounded attempts, nothing changed.
async fn writes_under_bad_answers(kind: Kind) {
    let env = env(kind).await;
    // Listed once, so each write needs only its own call.
    let (status, _) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207);
    for bad in Bad::ALL {
        let ops: [(&str, &str, Option<&str>, &str); 4] = [
            ("MOVE", "/m/a.txt", Some("/m/sub/a.txt"), kind.move_ep()),
            ("MOVE", "/m/b.txt", Some("/m/b2.txt"), kind.rename_ep()),
            ("DELETE", "/m/c.txt", None, kind.trash_ep()),
            ("PUT", "/m/new.bin", None, kind.part_ep()),
        ];
        for (method, path, dest, endpoint) in ops {
            let what = format!("{kind:?} {bad:?} {method} {path}");
            env.emu.reset_stats();
            env.emu.inject(Fault {
                endpoint: endpoint.into(),
                kind: bad.fault(),
            });
            let status = guard(&what, send(&env, method, path, dest)).await;
            env.emu.clear_faults();
            assert_eq!(status, bad.status(), "{what}");
            let want = if method == "PUT" {
                bad.part_attempts(kind)
            } else {
                bad.attempts()
            };
            assert_eq!(attempts(&env, endpoint), want, "{what}");
            assert_unchanged(&env, &what).await;
        }
    }
}

/// A hang guard around one request.
async fn guard<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), fut)
        .await
        .unwrap_or_else(|_| panic!("hung: {what}"))
}

#[tokio::test]
async fn bad_envelopes_are_errors_and_change_nothing() {
    tokio::join!(
        writes_under_bad_answers(Kind::Open),
        writes_under_bad_answers(Kind::Web)
    );
}

/// The same under the other readings of 123 (`crate::common::profiles`), e.g. with 123's own errors
/// carrying matching statuses (`error_status = mirror`): the same statuses and attempts.
mod other_readings {
    use super::*;
    use crate::common::profiles::{use_profile, Profile};

    #[tokio::test]
    async fn openlist_reading() {
        use_profile(Profile::OpenListReading);
        tokio::join!(
            writes_under_bad_answers(Kind::Open),
            writes_under_bad_answers(Kind::Web)
        );
    }

    #[tokio::test]
    async fn sdk_reading() {
        use_profile(Profile::SdkReading);
        tokio::join!(
            writes_under_bad_answers(Kind::Open),
            writes_under_bad_answers(Kind::Web)
        );
    }
}

/// Under each reading of a refused signature, a listing with the emulator's clock an hour
/// ahead (outside any skew 123 allows) is a 502 naming the clock, after one attempt, for share
/// and personal mounts alike; with the clock right again it lists.
#[tokio::test]
async fn a_refused_web_signature_names_the_clock() {
    for failure in [WebSignatureFailure::Code, WebSignatureFailure::StatusInfo] {
        let env = TestEnv::start(EmulatorConfig::default(), |emu| {
            emu.put_file("/lib/d/x.txt", b"x".to_vec());
            emu.add_share("sig-Key", None, "/lib");
            let root = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            format!(
                "{}{}",
                share_mount("/s", "proxy", "sig-Key", None, ""),
                web_mount("/w", "proxy", &format!("root_id = {root}\n")),
            )
        })
        .await;
        env.emu.set_switches(|s| s.web_signature_failure = failure);
        env.emu.set_clock_offset(3600);
        for (mount, list) in [("/s", "/b/api/share/get"), ("/w", "/b/api/file/list/new")] {
            let what = format!("{failure:?} {mount}");
            env.emu.reset_stats();
            let res = env
                .req("PROPFIND", &format!("{mount}/d/"))
                .header("Depth", "1")
                .send()
                .await
                .expect("propfind");
            let status = res.status().as_u16();
            let body = res.text().await.unwrap_or_default();
            assert_eq!(status, 502, "{what}: {body}");
            assert!(body.contains("clock"), "{what}: {body}");
            assert!(!body.contains("multistatus"), "{what}: {body}");
            // The listing is not retried; the 502 prompts one readiness probe of the mount
            // (a listing of its root), which the clock refuses too.
            for _ in 0..400 {
                if env.emu.stats().calls(list) >= 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(
                env.emu.stats().calls(list),
                2,
                "{what}: one attempt, one probe"
            );
        }
        env.emu.set_clock_offset(0);
        for mount in ["/s", "/w"] {
            let (status, body) = env.propfind(&format!("{mount}/d/"), "1").await;
            assert_eq!(status, 207, "{failure:?} {mount}: {body}");
            assert!(body.contains("x.txt"), "{failure:?} {mount}: {body}");
        }
    }
}
