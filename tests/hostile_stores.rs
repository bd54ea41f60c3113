//! Hostile use of the local side stores (issue 14): locks, dead properties, client junk and
//! the files under `state_dir`. Every store stays bounded, answers with a clear status when a
//! cap is reached, and the mount keeps serving whatever a client sends.

mod common;

use common::*;
use pan123_emulator::{EmulatorConfig, Fault, FaultKind};

async fn status_of(rb: reqwest::RequestBuilder) -> u16 {
    rb.send().await.expect("answered").status().as_u16()
}

fn proppatch(name: &str, value: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:X=\"urn:x-test\"><D:set><D:prop><X:{name}>{value}</X:{name}></D:prop></D:set></D:propertyupdate>"
    )
}

#[cfg(unix)]
fn loose_modes(dir: &std::path::Path, out: &mut Vec<String>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(items) = std::fs::read_dir(dir) else {
        return;
    };
    for item in items.flatten() {
        let path = item.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        let want = if meta.is_dir() { 0o700 } else { 0o600 };
        if mode != want {
            out.push(format!("{} {mode:o}", path.display()));
        }
        if meta.is_dir() {
            loose_modes(&path, out);
        }
    }
}

/// Everything the gateway writes under `state_dir` is the service user's alone (0600 files,
/// 0700 folders), whatever the umask: spool files, queue manifests, dead properties, tokens.
#[cfg(unix)]
#[tokio::test]
async fn state_dir_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    // The umask this process runs with lets a plain create make group/other-readable files
    // (022 is usual); the check below is only meaningful then.
    let probe = tempfile::tempdir().expect("tempdir");
    std::fs::write(probe.path().join("p"), b"p").expect("probe");
    let probe_mode = std::fs::metadata(probe.path().join("p"))
        .expect("probe")
        .permissions()
        .mode();
    let env = TestEnv::start(EmulatorConfig::default(), |emu| {
        emu.put_file("/lib/a.txt", bytes_of(100, 1));
        let lib = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
        open_mount(
            "/m",
            "proxy",
            &format!("root_id = {lib}\nupload = \"background\""),
        )
    })
    .await;
    // Hold the upload back so its spool file and manifest are on disk when we look.
    env.emu.inject(Fault {
        endpoint: "/upload/v2/file/create".into(),
        kind: FaultKind::Http {
            status: 500,
            count: 10_000,
        },
    });
    let r = env.req("PUT", "/m/new.txt").body(bytes_of(5000, 2));
    assert_eq!(status_of(r).await, 201);
    let r = env
        .req("PROPPATCH", "/m/a.txt")
        .body(proppatch("color", "red"));
    assert_eq!(status_of(r).await, 207);
    let state = env.state_dir.path();
    for sub in ["tokens", "props", "queue", "spool"] {
        assert!(state.join(sub).is_dir(), "{sub} was written");
    }
    let mut loose = Vec::new();
    loose_modes(state, &mut loose);
    assert!(
        loose.is_empty(),
        "umask probe {:o}; loose modes: {loose:#?}",
        probe_mode & 0o777
    );
}
