//! Visible skips. A test that cannot run (its tool is missing) records its name and the reason
//! in `target/skipped-tests.txt`; `.ci/run` prints that file after the run and fails when it is
//! not empty, so a skip never passes for a pass. Under CI=true the test also fails at once.
//!
//! One kind of check is different: one that needs a facility `.ci/run` cannot install, such as a
//! running container engine. It records itself in `target/not-available.txt`, which `.ci/run`
//! prints after every run (so the gap is in plain sight) without failing it.

use std::io::Write;

/// Where skips are recorded: `target/skipped-tests.txt` of this build.
pub fn skips_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("skipped-tests.txt"))
        .unwrap_or_else(|| "skipped-tests.txt".into())
}

/// Records that `test` did not run and why; under CI=true, fails instead.
#[track_caller]
pub fn skip(test: &str, reason: &str) {
    let line = format!("{test}: {reason}\n");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skips_file())
    {
        let _ = f.write_all(line.as_bytes());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test} cannot run under CI=true: {reason}"
    );
    eprintln!("SKIPPED {line}");
}

/// Where checks that need a facility this machine lacks are recorded.
pub fn not_available_file() -> std::path::PathBuf {
    skips_file().with_file_name("not-available.txt")
}

/// Records that `test` could not run because the machine lacks something `.ci/run` cannot
/// install (a running container engine); printed by `.ci/run`, not a failure.
pub fn not_available(test: &str, reason: &str) {
    let line = format!("{test}: {reason}\n");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(not_available_file())
    {
        let _ = f.write_all(line.as_bytes());
    }
    eprintln!("NOT AVAILABLE {line}");
}
