//! Real third-party clients (rclone, ffmpeg, curl, ...) driven as child processes. `.ci/run`
//! installs them; locally a missing one skips its test, with CI=true it fails the run.

use std::process::{Command, Output};

/// Every client runs under `timeout`, so a hung client fails its test instead of the run.
pub const TOOL_TIMEOUT_SECS: &str = "120";

/// Whether `program` can be run. A missing program is a visible skip of the calling test
/// (`super::skips`), and under CI=true a failure naming its package.
#[track_caller]
pub fn require(program: &str, package: &str) -> bool {
    if Command::new(program).arg("--help").output().is_ok() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    super::skips::skip(
        &format!("{} {test}", env!("CARGO_CRATE_NAME")),
        &format!("{program} is not installed (apt-get install {package})"),
    );
    false
}

/// Runs `program args…` with extra environment variables, off the async runtime.
pub async fn run(program: &str, args: &[String], envs: &[(String, String)]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.arg(TOOL_TIMEOUT_SECS).arg(program).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let what = format!("{program} {}", args.join(" "));
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("running {what}: {e}"))
}

/// Panics with the client's output unless it exited 0; returns stdout.
#[track_caller]
pub fn ok(out: &Output, what: &str) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout.clone()
}
