//! Hostile use of the local side stores (issue 14): locks, dead properties, client junk and
//! the files under `state_dir`. Every store stays bounded, answers with a clear status when a
//! cap is reached, and the mount keeps serving whatever a client sends.

use std::time::Duration;

use crate::common::*;
use pan123_emulator::{EmulatorConfig, Fault, FaultKind};

/// A writable Open mount at `/m` over `/lib` (holding `a.txt`), with more `[server]` keys, and
/// a second writing user `bob`.
async fn env(server_extra: &str) -> TestEnv {
    TestEnv::builder(EmulatorConfig::default()).mounts(|emu| {
            emu.put_file("/lib/a.txt", bytes_of(100, 1));
            let lib = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            open_mount("/m", "proxy", &format!("root_id = {lib}"))
        }).users("[[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nmounts = [\"*\"]\nwrite = true\n").server(server_extra).start()
    .await
}

fn lockinfo(scope: &str, owner: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:{scope}/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>{owner}</D:owner></D:lockinfo>"
    )
}

/// LOCK as `user`; the status and the lock token (empty when refused).
async fn lock(
    env: &TestEnv,
    user: &str,
    path: &str,
    scope: &str,
    depth: &str,
    timeout: &str,
    owner: &str,
) -> (u16, String, String) {
    let r = env
        .client
        .request(
            reqwest::Method::from_bytes(b"LOCK").expect("method"),
            env.url(path),
        )
        .basic_auth(user, Some(PASSWORD))
        .header("Depth", depth)
        .header("Timeout", timeout)
        .body(lockinfo(scope, owner))
        .send()
        .await
        .expect("lock");
    let status = r.status().as_u16();
    let token = header(&r, "lock-token");
    (status, token, r.text().await.unwrap_or_default())
}

async fn status_of(rb: reqwest::RequestBuilder) -> u16 {
    rb.send().await.expect("answered").status().as_u16()
}

/// LOCK then UNLOCK of the mount root once broke every later request on the mount (the lock
/// store panicked and stayed poisoned).
#[tokio::test]
async fn locking_and_unlocking_a_mount_root_keeps_the_mount_serving() {
    let env = env("").await;
    for depth in ["0", "infinity"] {
        let (status, token, _) =
            lock(&env, USER, "/m/", "exclusive", depth, "Second-60", "me").await;
        assert_eq!(status, 200, "LOCK /m/ Depth {depth}");
        assert!(!token.is_empty());
        let unlock = env.req("UNLOCK", "/m/").header("Lock-Token", &token);
        assert_eq!(status_of(unlock).await, 204, "UNLOCK /m/ Depth {depth}");
        let (status, _) = env.propfind("/m/", "1").await;
        assert_eq!(status, 207, "PROPFIND after UNLOCK of the root");
        let name = format!("/m/after-{depth}.txt");
        assert_eq!(status_of(env.req("PUT", &name).body("x")).await, 201, "PUT");
        let dir = format!("/m/dir-{depth}");
        assert_eq!(status_of(env.req("MKCOL", &dir)).await, 201, "MKCOL");
        assert_eq!(status_of(env.req("DELETE", &dir)).await, 204, "DELETE");
    }
    // A lock on the root held by someone else still protects the whole mount.
    let (status, token, _) = lock(
        &env,
        USER,
        "/m/",
        "exclusive",
        "infinity",
        "Second-60",
        "me",
    )
    .await;
    assert_eq!(status, 200);
    let as_bob = |m: &str, p: &str| {
        env.client
            .request(
                reqwest::Method::from_bytes(m.as_bytes()).expect("m"),
                env.url(p),
            )
            .basic_auth("bob", Some(PASSWORD))
    };
    assert_eq!(status_of(as_bob("PUT", "/m/bob.txt").body("b")).await, 423);
    let unlock = env.req("UNLOCK", "/m/").header("Lock-Token", &token);
    assert_eq!(status_of(unlock).await, 204);
    assert_eq!(status_of(as_bob("PUT", "/m/bob.txt").body("b")).await, 201);
}

/// A lock lasts as long as its Timeout asked (capped by `lock_timeout_max`), then expires.
#[tokio::test]
async fn lock_timeouts_are_honoured_and_capped() {
    let env = env("lock_timeout_max = \"2m\"").await;
    let (status, _, body) = lock(&env, USER, "/m/a.txt", "exclusive", "0", "Second-1", "me").await;
    assert_eq!(status, 200);
    assert!(body.contains("Second-1<"), "{body}");
    // Expired after its second: another user's write goes through (bounded wait, no timing
    // asserted).
    let mut answered = Vec::new();
    for _ in 0..120 {
        let put = env
            .client
            .put(env.url("/m/a.txt"))
            .basic_auth("bob", Some(PASSWORD))
            .body("overwritten by bob");
        let s = status_of(put).await;
        answered.push(s);
        if s != 423 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        answered.last().is_some_and(|s| (200..300).contains(s)),
        "the expired lock still refuses writes: {answered:?}"
    );
    // A shared lock asking for a day gets `lock_timeout_max`.
    let (status, _, body) = lock(&env, USER, "/m/b.txt", "shared", "0", "Second-86400", "me").await;
    assert_eq!(status, 201);
    assert!(body.contains("Second-120<"), "{body}");
    // A LOCK without Timeout keeps the default of 600 s (here within the cap).
    let r = env
        .req("LOCK", "/m/c.txt")
        .header("Depth", "0")
        .body(lockinfo("exclusive", "me"))
        .send()
        .await
        .expect("lock");
    assert_eq!(r.status().as_u16(), 201);
    assert!(r.text().await.unwrap_or_default().contains("Second-120<"));
}

/// Locks are capped per resource and per user, and a lock's owner is capped in size; the mount
/// answers 507 (caps) or 400 (owner) and keeps serving.
#[tokio::test]
async fn locks_are_capped_per_resource_user_and_owner_size() {
    let env = env("locks_per_user_max = 20").await;
    // Per resource: shared locks on one file.
    let mut statuses = Vec::new();
    for i in 0..20 {
        let (s, _, _) = lock(
            &env,
            "bob",
            "/m/a.txt",
            "shared",
            "0",
            "Second-600",
            &format!("o{i}"),
        )
        .await;
        statuses.push(s);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        16,
        "{statuses:?}"
    );
    assert!(statuses[16..].iter().all(|s| *s == 507), "{statuses:?}");
    // Per user: alice may hold 20 locks in this mount.
    let mut statuses = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..25 {
        let (s, token, _) = lock(
            &env,
            USER,
            &format!("/m/f{i}.txt"),
            "exclusive",
            "0",
            "Second-600",
            "me",
        )
        .await;
        statuses.push(s);
        tokens.push(token);
    }
    assert!(statuses[..20].iter().all(|s| *s == 201), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == 507), "{statuses:?}");
    // Releasing one frees a place.
    let unlock = env
        .req("UNLOCK", "/m/f0.txt")
        .header("Lock-Token", &tokens[0]);
    assert_eq!(status_of(unlock).await, 204);
    let (s, _, _) = lock(&env, USER, "/m/g.txt", "exclusive", "0", "Second-600", "me").await;
    assert_eq!(s, 201);
    // An owner over 4 KiB is refused; one under it is kept.
    let big = "x".repeat(5000);
    let (s, _, _) = lock(
        &env,
        "bob",
        "/m/h.txt",
        "exclusive",
        "0",
        "Second-600",
        &big,
    )
    .await;
    assert_eq!(s, 400);
    let fine = "y".repeat(3000);
    let (s, _, body) = lock(
        &env,
        "bob",
        "/m/h.txt",
        "exclusive",
        "0",
        "Second-600",
        &fine,
    )
    .await;
    assert_eq!(s, 201);
    assert!(body.contains(&fine));
    // The lock discovery of a file stays bounded (16 shared locks, small owners).
    let (status, body) = env.propfind("/m/a.txt", "0").await;
    assert_eq!(status, 207);
    assert_eq!(body.matches("<D:activelock>").count(), 16);
}

fn proppatch(name: &str, value: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:X=\"urn:x-test\"><D:set><D:prop><X:{name}>{value}</X:{name}></D:prop></D:set></D:propertyupdate>"
    )
}

/// Bytes of every file below `dir`.
fn bytes_below(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(items) = std::fs::read_dir(dir) {
        for item in items.flatten() {
            let path = item.path();
            if path.is_dir() {
                total += bytes_below(&path);
            } else {
                total += item.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

/// Dead properties are capped per mount and per user (507 beyond), stored compactly on disk,
/// and survive a restart.
#[tokio::test]
async fn dead_properties_are_capped_and_stored_compactly() {
    let mut env = env("props_max_bytes = \"1MiB\"\nprops_per_user_max_bytes = \"600KiB\"").await;
    let value = "v".repeat(60_000);
    let as_user = |user: &str, i: usize| {
        env.client
            .request(
                reqwest::Method::from_bytes(b"PROPPATCH").expect("m"),
                env.url("/m/a.txt"),
            )
            .basic_auth(user, Some(PASSWORD))
            .body(proppatch(&format!("p{user}{i}"), &value))
    };
    let mut alice = Vec::new();
    for i in 0..15 {
        alice.push(status_of(as_user(USER, i)).await);
    }
    // 600 KiB per user: ten 60 KB values fit, the eleventh does not.
    assert!(alice[..10].iter().all(|s| *s == 207), "{alice:?}");
    assert!(alice[10..].iter().all(|s| *s == 507), "{alice:?}");
    // Bob has his own share, until the mount's 1 MiB is full.
    let mut bob = Vec::new();
    for i in 0..15 {
        bob.push(status_of(as_user("bob", i)).await);
    }
    assert!(bob[..5].iter().all(|s| *s == 207), "{bob:?}");
    assert!(bob[7..].iter().all(|s| *s == 507), "{bob:?}");
    let stored = bob.iter().chain(&alice).filter(|s| **s == 207).count() as u64;
    // On disk: about the bytes stored, not four times as many.
    let on_disk = bytes_below(&env.state_dir.path().join("props"));
    assert!(
        on_disk < stored * 60_000 * 3 / 2,
        "{on_disk} bytes on disk for {stored} values of 60 KB"
    );
    // Removing frees room.
    let remove = "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:X=\"urn:x-test\"><D:remove><D:prop><X:palice0/></D:prop></D:remove></D:propertyupdate>";
    let r = env.req("PROPPATCH", "/m/a.txt").body(remove);
    assert_eq!(status_of(r).await, 207);
    assert_eq!(status_of(as_user(USER, 20)).await, 207);
    // Kept across a restart.
    env.start_gateway().await;
    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propfind xmlns:D=\"DAV:\" xmlns:X=\"urn:x-test\"><D:prop><X:palice20/><X:palice0/></D:prop></D:propfind>";
    let r = env
        .req("PROPFIND", "/m/a.txt")
        .header("Depth", "0")
        .body(body)
        .send()
        .await
        .expect("propfind");
    assert_eq!(r.status().as_u16(), 207);
    let text = r.text().await.unwrap_or_default();
    assert!(text.contains(&value), "the property survived the restart");
    // The removed one stayed removed: asked for, it is answered 404 (RFC 4918), with no value.
    let removed = text
        .split_once("palice0")
        .and_then(|(_, rest)| rest.split_once("</D:propstat>"))
        .map(|(propstat, _)| propstat)
        .unwrap_or_default();
    assert!(
        removed.contains("404 Not Found") && !removed.contains("vvv"),
        "the removed one stayed removed: {removed}"
    );
}

/// Client junk is capped in count per mount and per user: the oldest files go, a listing
/// stays bounded.
#[tokio::test]
async fn client_junk_is_capped_in_count() {
    let env = env("junk_max_files = 60\njunk_per_user_max_files = 40").await;
    for i in 0..100 {
        let r = env.req("PUT", &format!("/m/._f{i}")).body(Vec::new());
        assert_eq!(status_of(r).await, 201, "junk {i}");
    }
    let (status, body) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207);
    let listed = body.matches("._f").count();
    assert!(listed <= 40 * 2, "{listed} junk names listed");
    assert!(body.contains("._f99<"), "the newest is kept");
    assert_eq!(
        status_of(env.req("GET", "/m/._f0")).await,
        404,
        "the oldest went"
    );
    assert_eq!(status_of(env.req("GET", "/m/._f99")).await, 200);
    // Bob's junk counts against the mount: 60 files in all.
    let as_bob = |p: String| {
        env.client
            .put(env.url(&p))
            .basic_auth("bob", Some(PASSWORD))
            .body(Vec::new())
    };
    for i in 0..40 {
        assert_eq!(status_of(as_bob(format!("/m/._b{i}"))).await, 201);
    }
    let kept = |user: &str| {
        let env = &env;
        let user = user.to_string();
        async move {
            let r = env
                .client
                .request(
                    reqwest::Method::from_bytes(b"PROPFIND").expect("m"),
                    env.url("/m/"),
                )
                .basic_auth(&user, Some(PASSWORD))
                .header("Depth", "1")
                .send()
                .await
                .expect("propfind");
            r.text()
                .await
                .unwrap_or_default()
                .matches("<D:href>/m/._")
                .count()
        }
    };
    let (a, b) = (kept(USER).await, kept("bob").await);
    assert_eq!(b, 40);
    assert!(a + b <= 60, "alice {a} + bob {b}");
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
