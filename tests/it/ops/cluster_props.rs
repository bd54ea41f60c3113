//! Dead properties and client modification times are the cluster's (issue 19): set through one
//! instance, seen through another at once (the one-pass writer and dav-server alike), removed
//! and moved through either, kept across restarts of every instance; while Redis is away a
//! PROPPATCH waits (503 with Retry-After) and PROPFIND answers from each instance's copy, which
//! seeds Redis again when it comes back empty.

use std::time::Duration;

use pan123_emulator::EmulatorConfig;

use super::cluster::{lib_mount, Peer};
use crate::common::cluster::Instance;
use crate::common::redis::RedisServer;
use crate::common::{eventually, header, TestEnv};

/// 2020-09-13 12:26:40 UTC, as a client sends it in X-OC-Mtime.
const MTIME: &str = "1600000000";
const MTIME_HTTP: &str = "Sun, 13 Sep 2020 12:26:40 GMT";

const SET_COLOR: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:test"><D:set><D:prop><x:color>red</x:color></D:prop></D:set></D:propertyupdate>"#;
const REMOVE_COLOR: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:x="urn:test"><D:remove><D:prop><x:color/></D:prop></D:remove></D:propertyupdate>"#;
const ASK: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:x="urn:test"><D:prop><D:getlastmodified/><x:color/></D:prop></D:propfind>"#;

/// What a PROPFIND (Depth 0, `ASK`) of `path` at `base` shows: the status, whether the color is
/// red and whether the client's modification time is listed. `reference` asks dav-server.
async fn shown(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    reference: bool,
) -> (u16, bool, bool) {
    let mut rb = client
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
            format!("{base}{path}"),
        )
        .basic_auth(crate::common::USER, Some(crate::common::PASSWORD))
        .header("Depth", "0")
        .body(ASK);
    if reference {
        rb = rb.header("X-Propfind-Writer", "dav-server");
    }
    let res = rb.send().await.expect("propfind");
    let status = res.status().as_u16();
    let body = res.text().await.unwrap_or_default();
    let red = body.contains(">red</");
    let mtime = body.contains(MTIME_HTTP);
    (status, red, mtime)
}

/// Both writers at `base` show `path` with (or without) the color and the modification time.
async fn both_writers_show(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    red: bool,
    mtime: bool,
) {
    for reference in [false, true] {
        assert_eq!(
            shown(client, base, path, reference).await,
            (207, red, mtime),
            "{base}{path} (dav-server: {reference})"
        );
    }
}

async fn proppatch(rb: reqwest::RequestBuilder, body: &str) -> reqwest::Response {
    rb.body(body.to_string()).send().await.expect("proppatch")
}

/// `/-/readyz`'s `cluster.state` at `base` becomes `state` (bounded).
async fn wait_for_state(client: &reqwest::Client, base: &str, state: &str) {
    for _ in 0..600 {
        if let Ok(res) = client.get(format!("{base}/-/readyz")).send().await {
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            if body.pointer("/cluster/state").and_then(|s| s.as_str()) == Some(state) {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{base}: readyz never showed the cluster {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_properties_and_client_mtimes_are_the_clusters() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let mut env = TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            emu.put_file("/lib/top.txt", b"top".to_vec());
            lib_mount(emu, "")
        })
        .server(&redis.cluster_section())
        .start()
        .await;
    let mut peer = Peer::start(&env).await;
    let client = env.client.clone();

    // A: a file with a client modification time, and a dead property on it.
    let res = env
        .req("PUT", "/m/f.txt")
        .header("X-OC-Mtime", MTIME)
        .body("bytes with a client mtime")
        .send()
        .await
        .expect("put");
    assert!(res.status().is_success(), "{}", res.status());
    let res = proppatch(env.req("PROPPATCH", "/m/f.txt"), SET_COLOR).await;
    assert_eq!(res.status().as_u16(), 207);
    eventually("f.txt lands", || env.emu.lookup("/lib/f.txt").is_some()).await;

    // B shows both at once, whichever writer answers.
    both_writers_show(&client, &peer.base, "/m/f.txt", true, true).await;
    // Removed on B: gone on A.
    let res = proppatch(peer.req("PROPPATCH", "/m/f.txt"), REMOVE_COLOR).await;
    assert_eq!(res.status().as_u16(), 207);
    both_writers_show(&client, &env.base, "/m/f.txt", false, true).await;
    // Set again on B, moved on A: both follow the file on B.
    let res = proppatch(peer.req("PROPPATCH", "/m/f.txt"), SET_COLOR).await;
    assert_eq!(res.status().as_u16(), 207);
    let res = env
        .req("MOVE", "/m/f.txt")
        .header("Destination", env.url("/m/g.txt"))
        .send()
        .await
        .expect("move");
    assert_eq!(res.status().as_u16(), 201);
    both_writers_show(&client, &peer.base, "/m/g.txt", true, true).await;
    // Copied on B: the copy carries the property, on A too.
    let res = peer
        .req("COPY", "/m/g.txt")
        .header("Destination", format!("{}/m/h.txt", peer.base))
        .send()
        .await
        .expect("copy");
    assert_eq!(res.status().as_u16(), 201);
    assert!(shown(&client, &env.base, "/m/h.txt", false).await.1);

    // Every instance restarted: still there.
    env.start_gateway().await;
    peer.restart(&env).await;
    for base in [&env.base, &peer.base] {
        both_writers_show(&client, base, "/m/g.txt", true, true).await;
    }
    // Deleted on A: gone for B (a new file of that name starts bare).
    let res = env.req("DELETE", "/m/h.txt").send().await.expect("delete");
    assert_eq!(res.status().as_u16(), 204);
    let res = peer
        .req("PUT", "/m/h.txt")
        .body("new")
        .send()
        .await
        .expect("put");
    assert!(res.status().is_success());
    assert_eq!(
        shown(&client, &peer.base, "/m/h.txt", true).await,
        (207, false, false)
    );

    // Redis away: PROPPATCH waits, PROPFIND answers from this instance's copy.
    redis.kill();
    wait_for_state(&client, &env.base, "unavailable").await;
    let res = proppatch(env.req("PROPPATCH", "/m/g.txt"), REMOVE_COLOR).await;
    assert_eq!(res.status().as_u16(), 503);
    assert!(header(&res, "retry-after").parse::<u64>().expect("seconds") >= 1);
    both_writers_show(&client, &env.base, "/m/g.txt", true, true).await;

    // Redis back, empty: the instances' copies seed it, so a new instance sees them too.
    redis.restart();
    wait_for_state(&client, &env.base, "connected").await;
    both_writers_show(&client, &env.base, "/m/g.txt", true, true).await;
    let fresh = Instance::start(&env).await;
    both_writers_show(&client, &fresh.base, "/m/g.txt", true, true).await;
    let res = proppatch(fresh.req("PROPPATCH", "/m/g.txt"), REMOVE_COLOR).await;
    assert_eq!(res.status().as_u16(), 207);
    both_writers_show(&client, &peer.base, "/m/g.txt", false, true).await;
}

/// Two instances setting different properties of one file at the same moment (each stored
/// before it saw the other's) both keep theirs: a PROPPATCH stores only the properties it
/// changed, merged into the node in Redis; a DELETE still replaces the node whole. Driven on
/// the stores themselves, as the race cannot be timed through HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_proppatches_of_one_file_keep_both() {
    use pan123_webdav::cluster::SharedProps;
    use pan123_webdav::dav::props::{Budget, PropStore};
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let prop = |name: &str, value: &str| {
        dav_server::fs::DavProp::new(name.into(), "x".into(), "urn:test".into(), value.into())
    };
    let instance = || async {
        let store = PropStore::open(None, Budget::UNLIMITED);
        store.share();
        let shared = SharedProps::new(redis.client().await, "/m");
        shared.pull(&store).await.expect("pull");
        (store, shared)
    };
    let (a, shared_a) = instance().await;
    let (b, shared_b) = instance().await;
    let mtime = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);

    // Both change /f before either stores: a its color and the client mtime, b its size.
    a.patch("/f", "u", vec![(true, prop("color", "red"))])
        .expect("patch a");
    a.set_mtime("/f", mtime, Some("abc"));
    b.patch("/f", "u", vec![(true, prop("size", "big"))])
        .expect("patch b");
    shared_a.push(&a).await.expect("push a");
    shared_b.push(&b).await.expect("push b");

    let (c, _shared_c) = instance().await;
    shared_a.pull(&a).await.expect("pull a");
    shared_b.pull(&b).await.expect("pull b");
    for (name, store) in [("a third instance", &c), ("a", &a), ("b", &b)] {
        assert!(
            store.get("/f", &prop("color", "")).is_some(),
            "{name} lost a's color"
        );
        assert!(
            store.get("/f", &prop("size", "")).is_some(),
            "{name} lost b's size"
        );
        assert_eq!(store.mtime("/f", Some("abc")), Some(mtime), "{name}");
    }

    // A removal of one property leaves the other's; a DELETE takes the node whole.
    b.patch("/f", "u", vec![(false, prop("color", ""))])
        .expect("remove");
    shared_b.push(&b).await.expect("push");
    shared_a.pull(&a).await.expect("pull");
    assert!(a.get("/f", &prop("color", "")).is_none());
    assert!(a.get("/f", &prop("size", "")).is_some());
    a.remove("/f");
    shared_a.push(&a).await.expect("push");
    let (d, _shared_d) = instance().await;
    assert!(d.get("/f", &prop("size", "")).is_none());
    assert_eq!(d.mtime("/f", Some("abc")), None);
}
