//! `delete = "trash" | "permanent"` (issue 21) on Open and web mounts, against the emulator:
//! a client's DELETE leaves the file in 123's recycle bin by default, and under `permanent`
//! deletes it from the recycle bin too (`file/delete` after `file/trash`).

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig};

async fn delete(env: &TestEnv, path: &str) -> u16 {
    env.req("DELETE", path)
        .send()
        .await
        .expect("delete")
        .status()
        .as_u16()
}

/// Two mounts of one account's folder `/d`: `/t` with the default, `/p` with
/// `delete = "permanent"`. Returns the ids of `/d/kept.txt` and `/d/gone.txt`.
async fn env_for(mount: fn(&str, &str, &str) -> String) -> (TestEnv, u64, u64) {
    let mut ids = (0, 0);
    let env = TestEnv::start(EmulatorConfig::default(), |emu: &Emulator| {
        let root = emu.mkdir_p("/d");
        ids = (
            emu.put_file("/d/kept.txt", "kept"),
            emu.put_file("/d/gone.txt", "gone"),
        );
        mount("/t", "proxy", &format!("root_id = {root}\n"))
            + &mount(
                "/p",
                "proxy",
                &format!("root_id = {root}\ndelete = \"permanent\"\n"),
            )
    })
    .await;
    (env, ids.0, ids.1)
}

/// The scenario, and the calls 123 saw: a trash for each DELETE, a recycle-bin delete only
/// under `permanent`.
async fn trash_by_default_and_permanent_on_request(
    mount: fn(&str, &str, &str) -> String,
    trash: &str,
    purge: &str,
) {
    let (env, kept, gone) = env_for(mount).await;
    // Listed first, so that the web mount knows the objects it sends back.
    assert_eq!(env.propfind("/t/", "1").await.0, 207);
    assert_eq!(env.propfind("/p/", "1").await.0, 207);
    env.emu.reset_stats();

    assert_eq!(delete(&env, "/t/kept.txt").await, 204);
    let e = env.emu.entry(kept).expect("still on 123");
    assert!(e.trashed, "in the recycle bin");
    let s = env.emu.stats();
    assert_eq!((s.calls(trash), s.calls(purge)), (1, 0), "{:?}", s.calls);

    assert_eq!(delete(&env, "/p/gone.txt").await, 204);
    assert!(
        env.emu.entry(gone).is_none(),
        "deleted from the recycle bin"
    );
    assert!(env.emu.lookup("/d/gone.txt").is_none());
    let s = env.emu.stats();
    assert_eq!((s.calls(trash), s.calls(purge)), (2, 1), "{:?}", s.calls);

    // Gone from both listings.
    let (_, body) = env.propfind("/t/", "1").await;
    assert!(
        !body.contains("kept.txt") && !body.contains("gone.txt"),
        "{body}"
    );
    let (_, body) = env.propfind("/p/", "1").await;
    assert!(
        !body.contains("kept.txt") && !body.contains("gone.txt"),
        "{body}"
    );
}

#[tokio::test]
async fn open_mount_trashes_by_default_and_deletes_for_good_when_permanent() {
    trash_by_default_and_permanent_on_request(
        open_mount,
        "/api/v1/file/trash",
        "/api/v1/file/delete",
    )
    .await;
}

#[tokio::test]
async fn web_mount_trashes_by_default_and_deletes_for_good_when_permanent() {
    trash_by_default_and_permanent_on_request(web_mount, "/b/api/file/trash", "/b/api/file/delete")
        .await;
}
