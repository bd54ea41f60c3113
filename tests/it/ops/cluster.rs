//! Several gateway instances against one 123 account through one real `redis-server`
//! (`[cluster]`, issue 19): one token for all, one rate budget, listings invalidated on every
//! instance by a write on any, and what happens while Redis is unavailable.

use std::time::Duration;

use pan123_emulator::EmulatorConfig;
use pan123_webdav::server::RunningServer;

use crate::common::redis::RedisServer;
use crate::common::{open_mount, TestEnv, PASSWORD, USER};

pub(super) const TOKEN: &str = "/api/v1/access_token";
pub(super) const LIST: &str = "/api/v2/file/list";

/// A second instance: the environment's config (with its `[cluster]`) on its own port and its
/// own `state_dir`, as every instance must have.
pub(super) struct Peer {
    gw: Option<RunningServer>,
    pub(super) base: String,
    state_dir: tempfile::TempDir,
    pub(super) client: reqwest::Client,
}

impl Peer {
    pub(super) async fn start(env: &TestEnv) -> Peer {
        let state_dir = tempfile::tempdir().expect("tempdir");
        let mut peer = Peer {
            gw: None,
            base: String::new(),
            state_dir,
            client: env.client.clone(),
        };
        peer.restart(env).await;
        peer
    }

    pub(super) async fn restart(&mut self, env: &TestEnv) {
        if let Some(gw) = self.gw.take() {
            gw.shutdown().await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (gw, base) = env.gateway_on(listener, self.state_dir.path()).await;
        self.gw = Some(gw);
        self.base = base;
    }

    pub(super) fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                format!("{}{path}", self.base),
            )
            .basic_auth(USER, Some(PASSWORD))
    }

    pub(super) async fn propfind(&self, path: &str) -> (u16, String) {
        let res = self
            .req("PROPFIND", path)
            .header("Depth", "1")
            .send()
            .await
            .expect("propfind");
        let status = res.status().as_u16();
        (status, res.text().await.unwrap_or_default())
    }
}

/// An Open mount of the emulator's `/lib` folder.
pub(super) fn lib_mount(emu: &pan123_emulator::Emulator, extra: &str) -> String {
    let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
    open_mount("/m", "proxy", &format!("root_id = {id}\n{extra}"))
}

/// The public `/-/readyz` answer's `cluster.state`.
async fn cluster_state(client: &reqwest::Client, base: &str) -> String {
    let body: serde_json::Value = client
        .get(format!("{base}/-/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("readyz json");
    body.pointer("/cluster/state")
        .and_then(|s| s.as_str())
        .unwrap_or("absent")
        .to_string()
}

/// Polls `/-/readyz` (bounded) until it shows the cluster `state`.
async fn wait_for_state(env: &TestEnv, state: &str) {
    for _ in 0..600 {
        if cluster_state(&env.client, &env.base).await == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("readyz never showed the cluster {state}");
}

pub(super) async fn cluster_env(redis: &RedisServer, files: usize, extra: &str) -> TestEnv {
    let extra = extra.to_string();
    TestEnv::builder(EmulatorConfig::default())
        .mounts(move |emu| {
            for i in 0..files {
                emu.put_file(&format!("/lib/d{i}/f.txt"), b"x".to_vec());
            }
            emu.put_file("/lib/top.txt", b"top".to_vec());
            lib_mount(emu, &extra)
        })
        .server(&redis.cluster_section())
        .start()
        .await
}

#[tokio::test]
async fn three_instances_share_one_token_and_refresh_it_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut env = cluster_env(&redis, 8, "").await;
    let mut peers = vec![Peer::start(&env).await, Peer::start(&env).await];
    assert_eq!(cluster_state(&env.client, &env.base).await, "connected");
    for peer in &peers {
        assert_eq!(cluster_state(&peer.client, &peer.base).await, "connected");
    }
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    for peer in &peers {
        assert_eq!(peer.propfind("/m/").await.0, 207);
    }
    assert_eq!(
        env.emu.stats().calls(TOKEN),
        1,
        "one token for three instances"
    );

    // Every token dies at once: all instances, several requests each, one refresh.
    env.emu.expire_tokens();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let path = format!("/m/d{i}/");
        let mut requests = vec![env.req("PROPFIND", &path)];
        requests.extend(peers.iter().map(|p| p.req("PROPFIND", &path)));
        for rb in requests {
            let rb = rb.header("Depth", "1");
            tasks.push(tokio::spawn(async move {
                rb.send().await.map(|r| r.status().as_u16())
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("propfind"), 207);
    }
    assert_eq!(
        env.emu.stats().calls(TOKEN),
        2,
        "one refresh for the cluster"
    );

    // Restarting every instance issues no new token.
    env.start_gateway().await;
    for peer in &mut peers {
        peer.restart(&env).await;
    }
    assert_eq!(env.propfind("/m/d0/", "1").await.0, 207);
    for peer in &peers {
        assert_eq!(peer.propfind("/m/d1/").await.0, 207);
    }
    assert_eq!(
        env.emu.stats().calls(TOKEN),
        2,
        "a restart reuses the cluster's token"
    );
    assert_eq!(env.emu.stats().refused(TOKEN), 0);
}

#[tokio::test]
async fn three_instances_together_stay_within_one_budget() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // 16 cold folders on each of three instances, others on each (a folder wanted by two is
    // listed once for the cluster): 48 listings. Alone, each instance paces itself at 4 list
    // calls a second, within 123's 5; together, unshared, they would send 12.
    const FOLDERS: usize = 16;
    let env = cluster_env(&redis, 3 * FOLDERS, "").await;
    let peers = [Peer::start(&env).await, Peer::start(&env).await];
    // Tokens first, so only listings race.
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    for peer in &peers {
        assert_eq!(peer.propfind("/m/").await.0, 207);
    }
    env.emu.reset_stats();
    let mut tasks = Vec::new();
    for i in 0..FOLDERS {
        let on_a = env
            .req("PROPFIND", &format!("/m/d{i}/"))
            .header("Depth", "1");
        let on_b = peers[0]
            .req("PROPFIND", &format!("/m/d{}/", FOLDERS + i))
            .header("Depth", "1");
        let on_c = peers[1]
            .req("PROPFIND", &format!("/m/d{}/", 2 * FOLDERS + i))
            .header("Depth", "1");
        for rb in [on_a, on_b, on_c] {
            tasks.push(tokio::spawn(async move {
                rb.send().await.map(|r| r.status().as_u16())
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.expect("join").expect("propfind"), 207);
    }
    let stats = env.emu.stats();
    assert_eq!(stats.refused(LIST), 0, "no call was refused with 429");
    assert_eq!(
        stats.calls(LIST),
        3 * FOLDERS as u64,
        "one list call per folder, no retries"
    );
    // In every second, at most 123's 5 calls arrived (a 1,000 ms window from each arrival).
    let times = env.emu.call_times(LIST);
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|u| **u < t + 1000).count();
        assert!(
            in_window <= 5,
            "{in_window} list calls within a second of {t} ms: {times:?}"
        );
    }
}

#[tokio::test]
async fn a_write_on_one_instance_is_listed_at_once_on_the_other() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // A long cache: only an invalidation can make the other instance list again.
    let env = cluster_env(&redis, 1, "upload = \"sync\"\ncache_ttl = \"1h\"").await;
    let peer = Peer::start(&env).await;
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    let (status, before) = peer.propfind("/m/").await;
    assert_eq!(status, 207);
    assert!(!before.contains("new.txt"));

    let put = env
        .req("PUT", "/m/new.txt")
        .body(b"fresh bytes".to_vec())
        .send()
        .await
        .expect("put");
    assert!(put.status().is_success(), "PUT: {}", put.status());
    let (status, after) = peer.propfind("/m/").await;
    assert_eq!(status, 207);
    assert!(
        after.contains("new.txt"),
        "listed on the other instance: {after}"
    );
    let got = peer.req("GET", "/m/new.txt").send().await.expect("get");
    assert_eq!(got.status().as_u16(), 200);
    assert_eq!(got.bytes().await.expect("body").as_ref(), b"fresh bytes");

    // And the other way: a folder made on the second instance, listed on the first.
    let mkcol = peer.req("MKCOL", "/m/made/").send().await.expect("mkcol");
    assert_eq!(mkcol.status().as_u16(), 201);
    let (status, listed) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207);
    assert!(listed.contains("/m/made/"), "{listed}");
}

#[tokio::test]
async fn without_redis_reads_go_on_and_writes_wait() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let env = cluster_env(&redis, 2, "upload = \"sync\"").await;
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    redis.kill();
    wait_for_state(&env, "unavailable").await;

    // Reads: a cached listing, and one never listed before (paced on the local share).
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    assert_eq!(env.propfind("/m/d1/", "1").await.0, 207);
    let get = env.req("GET", "/m/top.txt").send().await.expect("get");
    assert_eq!(get.status().as_u16(), 200);
    assert_eq!(get.bytes().await.expect("body").as_ref(), b"top");

    // Writes, LOCK and PROPPATCH wait for Redis.
    let put = env
        .req("PUT", "/m/later.txt")
        .body(b"later".to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status().as_u16(), 503);
    let retry: u64 = crate::common::header(&put, "retry-after")
        .parse()
        .expect("Retry-After in seconds");
    assert!(retry >= 1);
    for method in ["LOCK", "PROPPATCH", "MKCOL", "DELETE"] {
        let res = env.req(method, "/m/top.txt").send().await.expect(method);
        assert_eq!(res.status().as_u16(), 503, "{method}");
    }
    assert!(env.emu.lookup("/lib/later.txt").is_none());

    // Redis is back: writes work again.
    redis.restart();
    wait_for_state(&env, "connected").await;
    let put = env
        .req("PUT", "/m/later.txt")
        .body(b"later".to_vec())
        .send()
        .await
        .expect("put");
    assert!(put.status().is_success(), "PUT: {}", put.status());
    assert_eq!(
        env.emu.read("/lib/later.txt").as_deref(),
        Some(&b"later"[..])
    );
}

const LOCK_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>alice on A</D:owner></D:lockinfo>"#;

#[tokio::test]
async fn a_lock_taken_on_one_instance_holds_on_the_other() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let env = cluster_env(&redis, 1, "upload = \"sync\"").await;
    let peer = Peer::start(&env).await;
    let lock = env
        .req("LOCK", "/m/top.txt")
        .header("Timeout", "Second-600")
        .body(LOCK_BODY)
        .send()
        .await
        .expect("lock");
    assert_eq!(lock.status().as_u16(), 200);
    let token = crate::common::header(&lock, "lock-token");
    assert!(token.starts_with("<urn:uuid:"), "{token}");

    // Without the token the other instance refuses the write; the lock shows there too.
    let put = peer
        .req("PUT", "/m/top.txt")
        .body(b"overwrite".to_vec())
        .send()
        .await
        .expect("put");
    assert_eq!(put.status().as_u16(), 423);
    let found = peer
        .req("PROPFIND", "/m/top.txt")
        .header("Depth", "0")
        .body(r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/></D:prop></D:propfind>"#)
        .send()
        .await
        .expect("propfind");
    let found = found.text().await.expect("body");
    assert!(
        found.contains(token.trim_matches(&['<', '>'][..])),
        "{found}"
    );
    assert!(env.emu.read("/lib/top.txt").as_deref() == Some(&b"top"[..]));

    // With it, the write passes on the other instance; UNLOCK there frees it for everyone.
    let put = peer
        .req("PUT", "/m/top.txt")
        .header("If", format!("({token})"))
        .body(b"by the holder".to_vec())
        .send()
        .await
        .expect("put");
    assert!(
        put.status().is_success(),
        "PUT with the token: {}",
        put.status()
    );
    let unlock = peer
        .req("UNLOCK", "/m/top.txt")
        .header("Lock-Token", &token)
        .send()
        .await
        .expect("unlock");
    assert_eq!(unlock.status().as_u16(), 204);
    let put = env
        .req("PUT", "/m/top.txt")
        .body(b"free again".to_vec())
        .send()
        .await
        .expect("put");
    assert!(
        put.status().is_success(),
        "PUT after UNLOCK: {}",
        put.status()
    );
    assert_eq!(
        env.emu.read("/lib/top.txt").as_deref(),
        Some(&b"free again"[..])
    );
}

#[tokio::test]
async fn a_rotating_refresh_token_is_handed_on_between_instances() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // The user's OAuth app: each refresh spends the refresh token and returns a new one. Each
    // step lists a folder not listed before on that instance, so the listing (and any refresh
    // it needs) is done before the answer.
    let env = TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            for i in 0..4 {
                emu.put_file(&format!("/d{i}/a.txt"), "hello");
            }
            let seed = emu.oauth_tokens().refresh_token;
            format!(
                "[[mounts]]\npath = \"/o\"\nbackend = \"open\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{seed}\"\napi_base = \"{{api}}\"\n",
                emu.oauth_client_id(),
                emu.oauth_client_secret(),
            )
        })
        .server(&redis.cluster_section())
        .start()
    .await;
    let peer = Peer::start(&env).await;
    assert_eq!(env.propfind("/o/", "1").await.0, 207);
    assert_eq!(peer.propfind("/o/").await.0, 207);
    assert_eq!(
        env.emu.oauth_rotations(),
        1,
        "the seed was exchanged once, for both"
    );

    // The second instance refreshes next, with the refresh token the first one got (its own
    // copy is the spent seed); the first then adopts the new access token.
    env.emu.expire_tokens();
    let (status, body) = peer.propfind("/o/d0/").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("a.txt"), "{body}");
    assert_eq!(env.emu.oauth_rotations(), 2);
    let (status, body) = env.propfind("/o/d1/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("a.txt"), "{body}");
    assert_eq!(
        env.emu.oauth_rotations(),
        2,
        "the first adopts the new access token"
    );

    // And the first one refreshes after that, with the refresh token the second one got.
    env.emu.expire_tokens();
    let (status, body) = env.propfind("/o/d2/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("a.txt"), "{body}");
    assert_eq!(env.emu.oauth_rotations(), 3);
    let (status, body) = peer.propfind("/o/d3/").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("a.txt"), "{body}");
    assert_eq!(env.emu.oauth_rotations(), 3);
}

#[tokio::test]
async fn a_lease_dropped_by_a_cancelled_holder_is_given_back() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let config = pan123_webdav::config::ClusterConfig {
        redis_url: redis.url().as_str().into(),
        instances: None,
        advertise_url: None,
    };
    let cluster = pan123_webdav::cluster::Cluster::start(&config)
        .await
        .expect("cluster");
    assert!(cluster.available());
    let ttl = Duration::from_secs(600);
    let held = cluster
        .lease("test", ttl)
        .await
        .expect("redis")
        .expect("free");
    assert!(cluster.lease("test", ttl).await.expect("redis").is_none());
    // A holder cancelled mid-work drops its lease instead of releasing it: it is given back
    // long before its ten minutes are up.
    drop(held);
    for _ in 0..600 {
        // A loaded machine may miss one answer (the operation's timeout): ask again.
        if let Ok(Some(again)) = cluster.lease("test", ttl).await {
            cluster.release(again).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the dropped lease was never given back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_validates_the_cluster_and_probe_asks_redis() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let env = cluster_env(&redis, 1, "").await;
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    assert_eq!(env.emu.stats().calls(TOKEN), 1);
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_pan123-webdav");
    let mount = crate::common::fill_hosts(&lib_mount(&env.emu, ""), &env.emu, "http://127.0.0.1:1");
    let run = |name: &str, cluster: String, probe: bool| {
        let config = dir.path().join(name);
        // A state_dir of its own, with no token in it.
        let text = format!(
            "[server]\nstate_dir = \"{}\"\nsigning_key = \"{}\"\n\n{mount}\n{cluster}",
            dir.path().join(format!("state-{name}")).display(),
            crate::common::SIGNING_KEY,
        );
        std::fs::write(&config, text).expect("write config");
        tokio::task::spawn_blocking(move || {
            let mut cmd = std::process::Command::new(bin);
            cmd.arg("check");
            if probe {
                cmd.arg("--probe");
            }
            cmd.arg("-c").arg(&config).output().expect("check runs")
        })
    };

    // A bad URL: file, key and reason, and never the password in it.
    let out = run(
        "bad.toml",
        "[cluster]\nredis_url = \"http://:hunter2@127.0.0.1:6379\"\n".into(),
        false,
    )
    .await
    .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(stderr.contains("bad.toml"), "{stderr}");
    assert!(stderr.contains("cluster.redis_url"), "{stderr}");
    assert!(stderr.contains("scheme"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // --probe: Redis answers, and the mount is probed with the cluster's token (no new one).
    let out = run("good.toml", redis.cluster_section(), true)
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("probe [cluster]: OK, Redis answers"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("probe /m: OK")),
        "{stdout}"
    );
    assert_eq!(
        env.emu.stats().calls(TOKEN),
        1,
        "the probe used the cluster's token"
    );

    // Redis down: the probe fails, saying so.
    redis.kill();
    let out = run("down.toml", redis.cluster_section(), true)
        .await
        .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("probe [cluster]: FAILED: Redis is unavailable"),
        "{stdout}"
    );
}

#[tokio::test]
async fn warm_reads_cost_a_bounded_number_of_redis_round_trips() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let env = cluster_env(&redis, 2, "").await;
    // Warm: the folder listed, the link fetched.
    assert_eq!(env.propfind("/m/", "1").await.0, 207);
    let first = env.req("GET", "/m/top.txt").send().await.expect("GET");
    assert_eq!(first.status(), 200);
    assert_eq!(first.bytes().await.expect("body").as_ref(), b"top");

    const N: usize = 20;
    let count = |monitor: &crate::common::redis::Monitor| monitor.client_commands().len();
    let monitor = redis.monitor();
    for _ in 0..N {
        assert_eq!(env.propfind("/m/", "1").await.0, 207);
    }
    let after_propfind = count(&monitor);
    for _ in 0..N {
        let r = env.req("GET", "/m/top.txt").send().await.expect("GET");
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.expect("body").as_ref(), b"top");
    }
    // MONITOR lines arrive a moment after the commands.
    let seen = async {
        let mut last = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = count(&monitor);
            if now == last {
                return now;
            }
            last = now;
        }
    };
    let total = tokio::time::timeout(Duration::from_secs(10), seen)
        .await
        .expect("MONITOR settles");
    let commands = monitor.stop();
    // Background work (readiness pings, pending entries refreshed every 20 s) may add a few.
    let propfind = after_propfind as f64 / N as f64;
    let get = (total - after_propfind) as f64 / N as f64;
    println!("Redis round trips per warm request: PROPFIND Depth 1 {propfind:.2}, GET {get:.2}");
    assert!(
        propfind <= 5.5 && get <= 3.5,
        "warm reads cost {propfind:.2} (PROPFIND) and {get:.2} (GET) Redis round trips: {:#?}",
        &commands[..commands.len().min(20)]
    );
}
