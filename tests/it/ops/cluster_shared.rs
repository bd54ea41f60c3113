//! What instances of a cluster share beyond tokens and locks (issue 19): a cold listing fetched
//! from 123 once for all of them.

use std::time::Duration;

use pan123_emulator::EmulatorConfig;

use super::cluster::{lib_mount, Peer, LIST};
use crate::common::redis::RedisServer;
use crate::common::TestEnv;

const BIG: usize = 1000;

/// One instance (the environment's) whose `/lib` holds `big/` with `BIG` files.
async fn big_folder_env(redis: &RedisServer) -> TestEnv {
    TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            for i in 0..BIG {
                emu.put_file(&format!("/lib/big/f{i:04}.txt"), b"x".to_vec());
            }
            emu.put_file("/lib/top.txt", b"top".to_vec());
            lib_mount(emu, "")
        })
        .server(&redis.cluster_section())
        .start()
        .await
}

/// How many of the big folder's files a PROPFIND answer lists.
fn listed(body: &str) -> usize {
    body.matches("/m/big/f").count()
}

#[tokio::test]
async fn a_cold_folder_asked_of_three_instances_is_listed_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let env = big_folder_env(&redis).await;
    let peers = [Peer::start(&env).await, Peer::start(&env).await];
    // Tokens and the root first, so only the big folder's listing races.
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    for peer in &peers {
        assert_eq!(peer.propfind("/m/").await.0, 207);
    }
    env.emu.reset_stats();

    let mut requests = vec![env.req("PROPFIND", "/m/big/")];
    requests.extend(peers.iter().map(|p| p.req("PROPFIND", "/m/big/")));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|rb| {
            let rb = rb.header("Depth", "1");
            tokio::spawn(async move {
                let res = rb.send().await.expect("propfind");
                (res.status().as_u16(), res.text().await.unwrap_or_default())
            })
        })
        .collect();
    for t in tasks {
        let (status, body) = t.await.expect("join");
        assert_eq!(status, 207);
        assert_eq!(listed(&body), BIG, "every instance lists every entry");
    }
    let stats = env.emu.stats();
    assert_eq!(
        stats.calls(LIST),
        BIG.div_ceil(100) as u64,
        "ceil(n/100) list calls for the whole cluster"
    );
    assert_eq!(stats.refused(LIST), 0);
}

#[tokio::test]
async fn a_dead_lease_holder_is_outlived() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let env = big_folder_env(&redis).await;
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    env.emu.reset_stats();

    // An instance that took the folder's lease and died: nobody gives it back, it expires.
    let cluster = pan123_webdav::cluster::Cluster::start(&pan123_webdav::config::ClusterConfig {
        redis_url: redis.url().as_str().into(),
        instances: None,
        advertise_url: None,
    })
    .await
    .expect("cluster");
    let dir = env.emu.lookup("/lib/big").expect("big").id;
    let lease = cluster
        .lease(
            &pan123_webdav::cluster::listing_lease_name("m", dir),
            Duration::from_secs(2),
        )
        .await
        .expect("redis")
        .expect("free");
    std::mem::forget(lease);

    let (status, body) = env.propfind("/m/big/", "1").await;
    assert_eq!(status, 207);
    assert_eq!(listed(&body), BIG);
    assert_eq!(env.emu.stats().calls(LIST), BIG.div_ceil(100) as u64);
}

const LOGIN: &str = "/api/user/sign_in";

/// One instance with a personal (web) mount `/w` of the account's `/me`.
async fn web_env(redis: &RedisServer) -> TestEnv {
    TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            for i in 0..4 {
                emu.put_file(&format!("/me/d{i}/a.txt"), b"hello".to_vec());
            }
            let root = emu.lookup("/me").map(|e| e.id).unwrap_or(0);
            crate::common::web_mount("/w", "proxy", &format!("root_id = {root}\n"))
        })
        .server(&redis.cluster_section())
        .start()
        .await
}

#[tokio::test]
async fn three_instances_share_one_web_login() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut env = web_env(&redis).await;
    let mut peers = vec![Peer::start(&env).await, Peer::start(&env).await];
    // All three at once (their readiness probes log in too).
    let mut requests = vec![env.req("PROPFIND", "/w/")];
    requests.extend(peers.iter().map(|p| p.req("PROPFIND", "/w/")));
    let tasks: Vec<_> = requests
        .into_iter()
        .map(|rb| {
            let rb = rb.header("Depth", "1");
            tokio::spawn(async move { rb.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("propfind"), 207);
    }
    assert_eq!(env.emu.stats().calls(LOGIN), 1, "one login for three");

    // Restarting every instance logs in no more.
    env.start_gateway().await;
    for peer in &mut peers {
        peer.restart(&env).await;
    }
    assert_eq!(env.propfind("/w/d0/", "1").await.0, 207);
    for (i, peer) in peers.iter().enumerate() {
        assert_eq!(peer.propfind(&format!("/w/d{}/", i + 1)).await.0, 207);
    }
    assert_eq!(
        env.emu.stats().calls(LOGIN),
        1,
        "a restart reuses the session"
    );

    // The session dies: one login again for the cluster, whichever instance meets the 401.
    env.emu.expire_tokens();
    let (status, body) = peers[0].propfind("/w/d3/").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("a.txt"), "{body}");
    let (status, body) = env.propfind("/w/d2/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("a.txt"), "{body}");
    assert_eq!(
        env.emu.stats().calls(LOGIN),
        2,
        "one new login for the cluster"
    );
}

#[tokio::test]
async fn wrong_passwords_on_two_instances_add_up_to_one_lockout() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let env = big_folder_env(&redis).await;
    let peer = Peer::start(&env).await;
    let wrong = |base: &str| {
        env.client
            .request(
                reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
                format!("{base}/m/"),
            )
            .header("Depth", "0")
            .basic_auth(crate::common::USER, Some("not the password"))
    };
    // Ten wrong passwords lock a client out (server/lockout.rs); five on each instance.
    for base in [&env.base, &peer.base] {
        for _ in 0..4 {
            let res = wrong(base).send().await.expect("propfind");
            assert_eq!(res.status().as_u16(), 401);
        }
    }
    assert_eq!(
        wrong(&env.base)
            .send()
            .await
            .expect("propfind")
            .status()
            .as_u16(),
        401
    );
    assert_eq!(
        wrong(&peer.base)
            .send()
            .await
            .expect("propfind")
            .status()
            .as_u16(),
        429,
        "the tenth wrong password, counted across instances, locks the client out"
    );
    // Locked out on both, even with the right password.
    assert_eq!(env.propfind("/m/", "0").await.0, 429);
    assert_eq!(peer.propfind("/m/").await.0, 429);
}

#[tokio::test]
async fn junk_written_through_one_instance_is_seen_by_its_writer_on_another() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let env = TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            emu.put_file("/lib/top.txt", b"top".to_vec());
            lib_mount(emu, "")
        })
        .users("[[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nmounts = [\"*\"]\nwrite = true\n")
        .server(&redis.cluster_section())
        .start()
        .await;
    let peer = Peer::start(&env).await;
    let res = env
        .req("PUT", "/m/._top.txt")
        .body("alice's apple double")
        .send()
        .await
        .expect("put");
    assert_eq!(res.status().as_u16(), 201);
    let (status, body) = peer.propfind("/m/").await;
    assert_eq!(status, 207);
    assert!(
        body.contains("._top.txt"),
        "listed on the other instance: {body}"
    );
    let got = peer.req("GET", "/m/._top.txt").send().await.expect("get");
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.text().await.expect("body"), "alice's apple double");
    // Another user sees none of it, on either instance.
    for base in [&env.base, &peer.base] {
        let res = env
            .client
            .request(
                reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
                format!("{base}/m/"),
            )
            .header("Depth", "1")
            .basic_auth("bob", Some(crate::common::PASSWORD))
            .send()
            .await
            .expect("propfind");
        assert_eq!(res.status().as_u16(), 207);
        assert!(!res.text().await.expect("body").contains("._top.txt"));
    }
    // Deleted on the other instance: gone on the first too.
    let res = peer
        .req("DELETE", "/m/._top.txt")
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 204);
    let (_, body) = env.propfind("/m/", "1").await;
    assert!(!body.contains("._top.txt"), "{body}");
    assert!(
        env.emu.lookup("/lib/._top.txt").is_none(),
        "junk stays off 123"
    );
}
