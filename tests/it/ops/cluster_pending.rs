//! Uploads pending on one instance of a cluster, seen by the others (issue 19): listed
//! everywhere with their size, read from the owner's spool over the internal signed route
//! while pending, and from 123 once landed; a DELETE or MOVE of one on another instance is
//! forwarded to the owner over the same route, signed for that operation only.

use std::time::Duration;

use pan123_emulator::{EmulatorConfig, Fault, FaultKind};

use crate::common::cluster::Instance;
use crate::common::redis::{RedisServer, SlowMessages};
use crate::common::{bytes_of, eventually, header, open_mount, TestEnv};
use pan123_webdav::cluster::{Cluster, PendingOp};

const SLICE: &str = "/upload/v2/file/slice";

/// Two instances on one Redis, an Open mount `/m` of the emulator's `/lib`, uploads in the
/// background with small slices (so a slow slice keeps an upload pending).
async fn two_instances(redis: &RedisServer) -> (TestEnv, Instance) {
    two_instances_on(&redis.cluster_section()).await
}

/// The same, with the `[cluster]` section given.
async fn two_instances_on(cluster: &str) -> (TestEnv, Instance) {
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
        .server(cluster)
        .start()
        .await;
    let peer = Instance::start(&env).await;
    (env, peer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_upload_is_listed_and_read_on_the_other_instance() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (env, peer) = two_instances(&redis).await;
    // Slices crawl: the upload stays pending (20 slices, a second each, 3 at a time).
    env.emu.inject(Fault {
        endpoint: SLICE.into(),
        kind: FaultKind::Latency {
            ms: 1000,
            count: 10_000,
        },
    });
    let data = bytes_of(20 * 64 * 1024, 7);
    assert_eq!(put(&env, "/m/film.bin", &data).await, 201);

    // At once on the other instance: listed with its size, its bytes from the owner.
    let res = peer
        .req("PROPFIND", "/m/")
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 207);
    let listed = res.text().await.expect("body");
    assert!(listed.contains("/m/film.bin"), "{listed}");
    assert!(
        listed.contains(&format!(
            "<D:getcontentlength>{}</D:getcontentlength>",
            data.len()
        )) || listed.contains(&format!(">{}</", data.len())),
        "{listed}"
    );
    let res = peer
        .req("PROPFIND", "/m/film.bin")
        .header("Depth", "0")
        .send()
        .await
        .expect("propfind file");
    assert_eq!(res.status().as_u16(), 207);
    let got = peer.req("GET", "/m/film.bin").send().await.expect("get");
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.expect("body").as_ref(), &data[..]);
    let got = peer
        .req("GET", "/m/film.bin")
        .header("Range", "bytes=100000-300000")
        .send()
        .await
        .expect("range");
    assert_eq!(got.status().as_u16(), 206);
    assert_eq!(
        header(&got, "content-range"),
        format!("bytes 100000-300000/{}", data.len())
    );
    assert_eq!(
        got.bytes().await.expect("body").as_ref(),
        &data[100_000..=300_000]
    );
    let head = peer.req("HEAD", "/m/film.bin").send().await.expect("head");
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(header(&head, "content-length"), data.len().to_string());
    assert!(
        env.emu.lookup("/lib/film.bin").is_none(),
        "still pending: those bytes came from the owner's spool"
    );
    // A COPY on the other instance takes the bytes from the owner's spool too.
    let res = peer
        .req("COPY", "/m/film.bin")
        .header("Destination", format!("{}/m/copy.bin", peer.base))
        .send()
        .await
        .expect("copy");
    assert_eq!(res.status().as_u16(), 201);

    // The internal route wants the cluster's signature.
    let dir = env.emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 30;
    let internal = format!(
        "{}/-/internal/pending?mount=%2Fm&dir={dir}&name=film.bin&expires={expires}",
        env.base
    );
    let unsigned = env.client.get(&internal).send().await.expect("unsigned");
    assert_eq!(unsigned.status().as_u16(), 403);
    let forged = env
        .client
        .get(&internal)
        .header(
            "x-pan123-internal-signature",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status().as_u16(), 403);

    // It lands: the other instance reads it from 123, listed once.
    env.emu.clear_faults();
    eventually("the upload lands", || {
        env.emu.read("/lib/film.bin").is_some()
    })
    .await;
    assert_eq!(env.emu.read("/lib/film.bin").expect("landed"), data);
    eventually("the copy lands", || env.emu.read("/lib/copy.bin").is_some()).await;
    assert_eq!(env.emu.read("/lib/copy.bin").expect("copy landed"), data);
    let cdn_before = env.emu.stats().calls("cdn");
    let mut served = false;
    for _ in 0..400 {
        let listed = peer
            .req("PROPFIND", "/m/")
            .header("Depth", "1")
            .send()
            .await
            .expect("propfind")
            .text()
            .await
            .expect("body");
        let got = peer.req("GET", "/m/film.bin").send().await.expect("get");
        if got.status().as_u16() == 200
            && listed.matches("/m/film.bin").count() == 1
            && env.emu.stats().calls("cdn") > cdn_before
        {
            assert_eq!(got.bytes().await.expect("body").as_ref(), &data[..]);
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        served,
        "after landing, the other instance serves it from 123"
    );
}

/// PUT of `data` at `path` on the gateway: the status.
async fn put(env: &TestEnv, path: &str, data: &[u8]) -> u16 {
    env.req("PUT", path)
        .body(data.to_vec())
        .send()
        .await
        .expect("put")
        .status()
        .as_u16()
}

/// MOVE of `from` to `to` on `instance` (with `Overwrite` when given): the status.
async fn move_on(instance: &Instance, from: &str, to: &str, overwrite: Option<&str>) -> u16 {
    let mut req = instance
        .req("MOVE", from)
        .header("Destination", format!("{}{to}", instance.base));
    if let Some(o) = overwrite {
        req = req.header("Overwrite", o);
    }
    req.send().await.expect("move").status().as_u16()
}

/// Slices wait this long each while an upload is to stay pending (20 slices, 3 at a time).
const SLOW_SLICE: FaultKind = FaultKind::Latency {
    ms: 3000,
    count: 10_000,
};

/// Keeps every upload pending until the faults are cleared.
fn hold_uploads(env: &TestEnv) {
    env.emu.inject(Fault {
        endpoint: SLICE.into(),
        kind: SLOW_SLICE,
    });
}

/// The file names a PROPFIND of `path` (Depth 1) on `base` lists, as hrefs.
async fn listed(client: &reqwest::Client, base: &str, path: &str) -> String {
    let res = client
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
            format!("{base}{path}"),
        )
        .basic_auth(crate::common::USER, Some(crate::common::PASSWORD))
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 207);
    res.text().await.expect("body")
}

/// `method` on the owner's internal route for pending file `name` of folder `dir` of mount `m`,
/// signed for `signed_for` (a MOVE names a destination: `signed_for`'s, or another).
async fn internal(
    env: &TestEnv,
    cluster: &Cluster,
    method: &str,
    signed_for: &PendingOp,
    dir: u64,
    name: &str,
) -> u16 {
    let (expires, signature) = cluster
        .sign_pending(signed_for, "m", dir, name)
        .await
        .expect("signed");
    let mut url = format!(
        "{}/-/internal/pending?mount=m&dir={dir}&name={name}&expires={expires}",
        env.base
    );
    if method == "MOVE" {
        let (to_dir, to_name) = match signed_for {
            PendingOp::Move { dir, name } => (*dir, name.as_str()),
            _ => (dir, "elsewhere.bin"),
        };
        url.push_str(&format!("&to_dir={to_dir}&to_name={to_name}"));
    }
    env.client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
            url,
        )
        .header("x-pan123-internal-signature", signature)
        .send()
        .await
        .expect("internal")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_on_the_other_instance_cancels_the_pending_upload() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (env, peer) = two_instances(&redis).await;
    hold_uploads(&env);
    let data = bytes_of(20 * 64 * 1024, 3);
    assert_eq!(put(&env, "/m/film.bin", &data).await, 201);
    let dir = env.emu.lookup("/lib").map(|e| e.id).unwrap_or(0);

    // A signature is for one operation: a GET's reads the bytes and cancels nothing, a
    // DELETE's reads nothing; neither moves the file.
    let third = redis.client().await;
    let moved = PendingOp::Move {
        dir,
        name: "b.bin".into(),
    };
    let cases = [
        ("GET", &PendingOp::Read, 200),
        ("DELETE", &PendingOp::Read, 403),
        ("MOVE", &PendingOp::Read, 403),
        ("GET", &PendingOp::Delete, 403),
        ("MOVE", &PendingOp::Delete, 403),
        ("DELETE", &moved, 403),
    ];
    for (method, signed_for, want) in cases {
        assert_eq!(
            internal(&env, &third, method, signed_for, dir, "film.bin").await,
            want,
            "{method} with a signature for {signed_for:?}"
        );
    }
    let unsigned = env
        .client
        .delete(format!(
            "{}/-/internal/pending?mount=m&dir={dir}&name=film.bin&expires=99999999999",
            env.base
        ))
        .send()
        .await
        .expect("unsigned");
    assert_eq!(unsigned.status().as_u16(), 403);
    assert!(listed(&env.client, &env.base, "/m/")
        .await
        .contains("/m/film.bin"));
    assert!(listed(&peer.client, &peer.base, "/m/")
        .await
        .contains("/m/film.bin"));

    // The other instance forwards a client's DELETE to the owner: gone on both at once.
    let res = peer
        .req("DELETE", "/m/film.bin")
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 204);
    for (client, base) in [(&env.client, &env.base), (&peer.client, &peer.base)] {
        let names = listed(client, base, "/m/").await;
        assert!(!names.contains("film.bin"), "{names}");
    }
    let gone = peer.req("GET", "/m/film.bin").send().await.expect("get");
    assert_eq!(gone.status().as_u16(), 404);
    let again = peer
        .req("DELETE", "/m/film.bin")
        .send()
        .await
        .expect("delete again");
    assert_eq!(again.status().as_u16(), 404);

    // It never lands: an upload queued after it lands, and it is not there.
    env.emu.clear_faults();
    assert_eq!(put(&env, "/m/after.bin", &bytes_of(100_000, 4)).await, 201);
    eventually("the later upload lands", || {
        env.emu.read("/lib/after.bin").is_some()
    })
    .await;
    assert!(env.emu.lookup("/lib/film.bin").is_none());

    // An owner that cannot be reached: the write waits (503 with Retry-After), as before.
    let ghost = redis.client().await;
    ghost.set_advertise_url(&format!("http://127.0.0.1:{}", crate::common::free_port()));
    ghost
        .publish_pending(
            "m",
            dir,
            &[(
                "ghost.bin".to_string(),
                5,
                "5a105e8b9d40e1329780d62ea2265d8a".to_string(),
                std::time::SystemTime::now(),
            )],
        )
        .await
        .expect("published");
    assert!(listed(&peer.client, &peer.base, "/m/")
        .await
        .contains("/m/ghost.bin"));
    for (method, dest) in [("DELETE", None), ("MOVE", Some("/m/ghost2.bin"))] {
        let mut req = peer.req(method, "/m/ghost.bin");
        if let Some(dest) = dest {
            req = req.header("Destination", format!("{}{dest}", peer.base));
        }
        let res = req
            .send()
            .await
            .expect("write on an unreachable owner's file");
        assert_eq!(res.status().as_u16(), 503, "{method}");
        assert!(!header(&res, "retry-after").is_empty(), "{method}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_on_the_other_instance_moves_the_pending_upload() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (env, peer) = two_instances(&redis).await;
    let res = peer.req("MKCOL", "/m/sub").send().await.expect("mkcol");
    assert_eq!(res.status().as_u16(), 201);
    hold_uploads(&env);
    let film = bytes_of(20 * 64 * 1024, 5);
    let other = bytes_of(18 * 64 * 1024, 6);
    for (name, data) in [("film.bin", &film), ("other.bin", &other)] {
        assert_eq!(put(&env, &format!("/m/{name}"), data).await, 201);
    }

    // Moved into another folder and renamed, through the other instance: 201, as on the owner.
    assert_eq!(
        move_on(&peer, "/m/film.bin", "/m/sub/moved.bin", None).await,
        201
    );
    // Onto a name taken, without Overwrite: 412, and nothing moves.
    assert_eq!(
        move_on(&peer, "/m/other.bin", "/m/sub/moved.bin", Some("F")).await,
        412
    );
    // Renamed in its folder.
    assert_eq!(
        move_on(&peer, "/m/other.bin", "/m/other2.bin", None).await,
        201
    );

    // Both instances list the result at once.
    for (client, base) in [(&env.client, &env.base), (&peer.client, &peer.base)] {
        let root = listed(client, base, "/m/").await;
        assert!(root.contains("/m/other2.bin"), "{root}");
        assert!(!root.contains("/m/film.bin"), "{root}");
        assert!(!root.contains("/m/other.bin"), "{root}");
        let sub = listed(client, base, "/m/sub/").await;
        assert!(sub.contains("/m/sub/moved.bin"), "{sub}");
    }
    let got = peer
        .req("GET", "/m/sub/moved.bin")
        .send()
        .await
        .expect("get");
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.expect("body").as_ref(), &film[..]);
    assert!(
        env.emu.lookup("/lib/sub/moved.bin").is_none(),
        "still pending"
    );

    // They land at their new names with their bytes, never at the old ones.
    env.emu.clear_faults();
    eventually("the moved upload lands", || {
        env.emu.read("/lib/sub/moved.bin").is_some()
    })
    .await;
    eventually("the renamed upload lands", || {
        env.emu.read("/lib/other2.bin").is_some()
    })
    .await;
    assert_eq!(env.emu.read("/lib/sub/moved.bin").expect("moved"), film);
    assert_eq!(env.emu.read("/lib/other2.bin").expect("renamed"), other);
    assert!(env.emu.lookup("/lib/film.bin").is_none());
    assert!(env.emu.lookup("/lib/other.bin").is_none());
}

/// PROPFIND Depth 1 of `/m/` on `instance`: the body.
async fn listing_of(instance: &Instance) -> String {
    let res = instance
        .req("PROPFIND", "/m/")
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind");
    assert_eq!(res.status().as_u16(), 207);
    res.text().await.expect("body")
}

/// The other instances' listings never lag behind a write, however late its invalidation
/// reaches them: pub/sub messages are held back 4 s here, and every write on the gateway
/// (an upload landing in the background, a DELETE, a MKCOL) shows on the other instance at
/// once. A listing request reads the folder's cluster-wide generation with the pending
/// uploads (one Redis call) and lists the folder again when its cached copy is older.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_show_on_the_other_instance_before_their_invalidation_arrives() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let slow = SlowMessages::start(&redis, Duration::from_secs(4)).await;
    let (env, peer) = two_instances_on(&slow.cluster_section()).await;
    env.emu.put_file("/lib/old.bin", bytes_of(1000, 3));
    // The other instance has the folder cached.
    let listed = listing_of(&peer).await;
    assert!(listed.contains("/m/old.bin"), "{listed}");

    // A DELETE and a MKCOL on the gateway: at once on the other instance.
    let res = env
        .req("DELETE", "/m/old.bin")
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 204);
    let listed = listing_of(&peer).await;
    assert!(
        !listed.contains("/m/old.bin"),
        "deleted, still listed: {listed}"
    );
    let res = env.req("MKCOL", "/m/new/").send().await.expect("mkcol");
    assert_eq!(res.status().as_u16(), 201);
    let listed = listing_of(&peer).await;
    assert!(listed.contains("/m/new/"), "made, not listed: {listed}");

    // An upload held pending, then landing: listed on the other instance at every moment.
    hold_uploads(&env);
    let data = bytes_of(4 * 64 * 1024, 9);
    assert_eq!(put(&env, "/m/film.bin", &data).await, 201);
    let listed = listing_of(&peer).await;
    assert!(
        listed.contains("/m/film.bin"),
        "pending, not listed: {listed}"
    );
    env.emu.clear_faults();
    let mut landed_at = None;
    let mut rounds = 0;
    // Until 2 s after it landed (the invalidation is 4 s late), at most 60 s in all.
    let started = std::time::Instant::now();
    while landed_at.is_none_or(|at: std::time::Instant| at.elapsed() < Duration::from_secs(2))
        && started.elapsed() < Duration::from_secs(60)
    {
        let landed = env.emu.read("/lib/film.bin").is_some();
        let listed = listing_of(&peer).await;
        assert!(
            listed.contains("/m/film.bin"),
            "missing from the other instance's listing (landed: {landed}, round {rounds}): {listed}"
        );
        if landed && landed_at.is_none() {
            landed_at = Some(std::time::Instant::now());
        }
        rounds += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(landed_at.is_some(), "the upload never landed");
    assert_eq!(env.emu.read("/lib/film.bin").expect("landed"), data);
    drop(slow);
}
