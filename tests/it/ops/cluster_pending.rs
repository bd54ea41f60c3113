//! Uploads pending on one instance of a cluster, seen by the others (issue 19): listed
//! everywhere with their size, read from the owner's spool over the internal signed route
//! while pending, and from 123 once landed.

use std::time::Duration;

use pan123_emulator::{EmulatorConfig, Fault, FaultKind};

use crate::common::cluster::Instance;
use crate::common::redis::{RedisServer, SlowMessages};
use crate::common::{bytes_of, eventually, open_mount, TestEnv};

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
    let put = env
        .req("PUT", "/m/film.bin")
        .body(data.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status().as_u16(), 201);

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
        crate::common::header(&got, "content-range"),
        format!("bytes 100000-300000/{}", data.len())
    );
    assert_eq!(
        got.bytes().await.expect("body").as_ref(),
        &data[100_000..=300_000]
    );
    let head = peer.req("HEAD", "/m/film.bin").send().await.expect("head");
    assert_eq!(head.status().as_u16(), 200);
    assert_eq!(
        crate::common::header(&head, "content-length"),
        data.len().to_string()
    );
    assert!(
        env.emu.lookup("/lib/film.bin").is_none(),
        "still pending: those bytes came from the owner's spool"
    );
    // A COPY on the other instance takes the bytes from the owner's spool too; a DELETE
    // waits for the upload to land (only the owner can cancel it).
    let res = peer
        .req("COPY", "/m/film.bin")
        .header("Destination", format!("{}/m/copy.bin", peer.base))
        .send()
        .await
        .expect("copy");
    assert_eq!(res.status().as_u16(), 201);
    let res = peer
        .req("DELETE", "/m/film.bin")
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 503);
    assert!(!crate::common::header(&res, "retry-after").is_empty());

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
    env.emu.inject(Fault {
        endpoint: SLICE.into(),
        kind: FaultKind::Latency {
            ms: 300,
            count: 10_000,
        },
    });
    let data = bytes_of(4 * 64 * 1024, 9);
    let put = env
        .req("PUT", "/m/film.bin")
        .body(data.clone())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status().as_u16(), 201);
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
