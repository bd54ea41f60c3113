//! litmus, the WebDAV protocol test suite, against a writable Open mount on the emulator.
//! `.ci/run` installs it; with CI=true a missing litmus fails the run instead of skipping.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use pan123_emulator::EmulatorConfig;

/// Tests run and passed per suite: every test of each suite.
pub(crate) const EXPECTED: &[(&str, usize)] = &[
    ("basic", 16),
    ("copymove", 13),
    ("props", 30),
    ("locks", 41),
    ("http", 4),
];

/// Tests that pass only with a warning (or are skipped), as (suite, test number, name, why).
/// Anything else that warns, is skipped or fails fails this test.
const KNOWN_WARNINGS: &[(&str, u32, &str, &str)] = &[(
    "basic",
    9,
    "delete_fragment",
    "hyper's URI parser drops the `#fragment` before the gateway sees the request, so the \
         DELETE reaches the folder itself",
)];

/// One litmus test that warned, was skipped or failed: (suite, number, name, verdict line).
fn flagged(text: &str) -> Vec<(String, u32, String, String)> {
    let mut suite = String::new();
    let mut out: Vec<(String, u32, String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("-> running `") {
            suite = rest.split('\'').next().unwrap_or("").to_string();
            continue;
        }
        let trimmed = line.trim_start();
        let numbered = trimmed
            .split_once(". ")
            .and_then(|(n, rest)| n.parse::<u32>().ok().map(|n| (n, rest)));
        let Some((number, rest)) = numbered else {
            continue;
        };
        let name = rest.split('.').next().unwrap_or("").trim().to_string();
        for verdict in ["WARNING", "SKIPPED", "FAIL"] {
            if rest.contains(verdict) {
                out.push((suite.clone(), number, name.clone(), line.to_string()));
                break;
            }
        }
    }
    out.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litmus_passes_every_suite() {
    litmus_at("", "/m/").await;
}

/// The same suites with the gateway under `server.base_path`: every href, Destination and
/// lock URL carries the prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litmus_passes_every_suite_under_a_base_path() {
    litmus_at("base_path = \"/dav\"", "/dav/m/").await;
}

/// Runs litmus against the mount at `path` of a gateway with `server_extra` in `[server]`.
async fn litmus_at(server_extra: &str, path: &str) {
    if !tools::require("litmus", "litmus") {
        return;
    }
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = 64 * 1024;
    cfg.switches.complete_pending_polls = 1;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    let env = TestEnv::builder(cfg)
        .mounts(|emu| {
            emu.mkdir_p("/lib");
            let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            open_mount("/m", "proxy", &format!("root_id = {id}"))
        })
        .server(server_extra)
        .start()
        .await;
    let url = env.url(path);
    // litmus writes debug.log (megabytes) into its working directory: not the repository.
    let scratch = tempfile::tempdir().expect("scratch dir");
    let cwd = scratch.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("timeout")
            .current_dir(cwd)
            .args(["300", "litmus", "-k", &url, USER, PASSWORD])
            .env("TESTS", "basic copymove props locks http")
            .output()
    })
    .await
    .expect("join")
    .expect("run litmus");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    println!("{text}");
    let problems = problems(&text);
    assert!(
        problems.is_empty(),
        "litmus:\n{}\n\n{text}",
        problems.join("\n")
    );
}

/// What is wrong in a litmus run's output: a test that warned (unless known), was skipped or
/// failed, and a suite whose summary is not every test passed.
pub(crate) fn problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for (suite, number, name, line) in flagged(text) {
        let known = KNOWN_WARNINGS
            .iter()
            .any(|(s, n, t, _)| *s == suite && *n == number && *t == name)
            && !line.contains("FAIL");
        if !known {
            problems.push(format!("{suite} {number} {name}: {line}"));
        }
    }
    for (suite, count) in EXPECTED {
        let want = format!(
            "<- summary for `{suite}': of {count} tests run: {count} passed, 0 failed. 100.0%"
        );
        if !text.lines().any(|l| l.trim() == want) {
            problems.push(format!("{suite}: not all {count} tests ran and passed"));
        }
    }
    problems
}

#[test]
fn litmus_output_is_read_right() {
    let text = "-> running `props':\n 7. propget............... pass\n12. propget............... WARNING: Property 0 omitted\nWARNING: Property 1 omitted\n    ...................... pass (with 2 warnings)\n13. propreplace........... SKIPPED (no)\n-> running `locks':\n 3. lock_excl............. FAIL (x)\n";
    let got: Vec<(String, u32, String)> = flagged(text)
        .into_iter()
        .map(|(s, n, t, _)| (s, n, t))
        .collect();
    assert_eq!(
        got,
        vec![
            ("props".to_string(), 12, "propget".to_string()),
            ("props".to_string(), 13, "propreplace".to_string()),
            ("locks".to_string(), 3, "lock_excl".to_string()),
        ]
    );
}
