//! litmus, the WebDAV protocol test suite, against a writable Open mount on the emulator.
//! `.ci/run` installs it; with CI=true a missing litmus fails the run instead of skipping.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use pan123_emulator::EmulatorConfig;

/// Tests that cannot pass against 123, with the reason. Empty: every test must pass.
const KNOWN_FAILURES: &[(&str, &str)] = &[];

fn litmus_available() -> bool {
    Command::new("litmus").arg("--help").output().is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn litmus_passes_every_suite() {
    if !litmus_available() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "litmus is not installed (apt-get install litmus)"
        );
        eprintln!("litmus not installed; skipping");
        return;
    }
    let mut cfg = EmulatorConfig::default();
    cfg.switches.slice_size = 64 * 1024;
    cfg.switches.complete_pending_polls = 1;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    let env = TestEnv::start(cfg, |emu| {
        emu.mkdir_p("/lib");
        let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        open_mount("/m", "proxy", &format!("root_id = {id}"))
    })
    .await;
    let url = env.url("/m/");
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
    let mut failures = Vec::new();
    for line in text.lines() {
        // " 7. delete_fragment....... FAIL (…)" or "WARNING" lines; FAIL lines matter.
        if let Some(idx) = line.find("FAIL") {
            let name = line[..idx]
                .trim()
                .trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ' ');
            let name = name.trim_end_matches('.').trim().to_string();
            if !KNOWN_FAILURES.iter().any(|(k, _)| *k == name) {
                failures.push(line.to_string());
            }
        }
    }
    let summaries: Vec<&str> = text.lines().filter(|l| l.contains("summary for")).collect();
    assert_eq!(summaries.len(), 5, "every suite ran:\n{text}");
    assert!(
        failures.is_empty(),
        "litmus failures:\n{}\n\n{text}",
        failures.join("\n")
    );
}
