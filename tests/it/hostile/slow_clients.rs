//! Slow, silent and greedy clients (issue 14): connections that send their headers a byte at a
//! time, stall mid-header, say nothing, or sit idle between requests are closed; an upload
//! body that stalls or trickles is cut with 408 and its spool space is released; one address
//! cannot hold more than `connections_per_ip` connections.
//!
//! The limits are configured small (`SERVER`) so the cases are quick; the assertions are about
//! behaviour ("the server closed the connection", "408", "201 once the stalled PUT is cut"),
//! never about how long something took, under generous hang guards. Each case prints how long
//! the close took, for the before/after figures.

use std::time::{Duration, Instant};

use crate::common::*;
use pan123_emulator::EmulatorConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Small limits so the cases run in seconds; the defaults are minutes.
const SERVER: &str = "header_timeout = \"1s\"\nkeepalive_timeout = \"2s\"\nbody_idle_timeout = \"1s\"\nspool_max = \"1MiB\"\nready_probe_interval = \"1h\"\n";
/// Far beyond every limit above: a connection still open after this is a failure.
const CLOSE_GUARD: Duration = Duration::from_secs(20);

async fn start(server: &str) -> TestEnv {
    TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            emu.put_file("/lib/a.txt", b"hello".to_vec());
            let lib = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            open_mount("/m", "proxy", &format!("root_id = {lib}"))
        })
        .server(server)
        .start()
        .await
}

fn auth() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
}

async fn connect(env: &TestEnv) -> TcpStream {
    TcpStream::connect(env.base.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection (EOF or reset) and returns what it sent;
/// fails the test if it is still open after `CLOSE_GUARD`. Prints how long it took since
/// `started` (when the client began).
async fn closed<R>(what: &str, s: &mut R, started: Instant) -> Vec<u8>
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: each turn reads something or ends; the whole is under the guard.
    let outcome = tokio::time::timeout(CLOSE_GUARD, async {
        for _ in 0..10_000 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "{what}: still open after {}s",
        CLOSE_GUARD.as_secs()
    );
    eprintln!(
        "{what}: closed after {:.1}s",
        started.elapsed().as_secs_f64()
    );
    got
}

/// The status code of the first response in `bytes` (0 when there is none).
fn status_of(bytes: &[u8]) -> u16 {
    String::from_utf8_lossy(bytes)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed() {
    let env = start(SERVER).await;
    let request = format!(
        "GET /m/a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\r\n",
        auth()
    );

    // Says nothing at all.
    let silent = async {
        let started = Instant::now();
        let mut s = connect(&env).await;
        closed("silent", &mut s, started).await;
    };
    // Sends the first bytes of a request line, then stalls.
    let stalled = async {
        let started = Instant::now();
        let mut s = connect(&env).await;
        s.write_all(b"GET /m/a.t").await.expect("write");
        closed("stalled mid-header", &mut s, started).await;
    };
    // Sends its headers one byte every 300 ms: each byte is "progress", the whole is not.
    let dripping = async {
        let mut s = connect(&env).await;
        let started = Instant::now();
        for b in request.as_bytes() {
            if s.write_all(&[*b]).await.is_err() || started.elapsed() > CLOSE_GUARD {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let got = closed("header byte every 300 ms", &mut s, started).await;
        assert_eq!(status_of(&got), 0, "no answer to a request never completed");
    };
    // Gets an answer, then keeps the connection open without asking anything else.
    let idle = async {
        let mut s = connect(&env).await;
        s.write_all(request.as_bytes()).await.expect("write");
        let started = Instant::now();
        let got = closed("idle keep-alive", &mut s, started).await;
        assert_eq!(status_of(&got), 200, "{}", String::from_utf8_lossy(&got));
        assert!(got.ends_with(b"hello"), "the whole answer came first");
    };
    // HTTP/2 (prior knowledge): the preface, then nothing.
    let h2_silent = async {
        let started = Instant::now();
        let mut s = connect(&env).await;
        s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .expect("write");
        closed("HTTP/2 preface only", &mut s, started).await;
    };
    tokio::join!(silent, stalled, dripping, idle, h2_silent);

    // A client that keeps asking is never cut: requests spaced under the idle limit.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(HANG_GUARD)
        .build()
        .expect("client");
    for _ in 0..3 {
        let r = client
            .get(env.url("/m/a.txt"))
            .basic_auth(USER, Some(PASSWORD))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.bytes().await.expect("body").as_ref(), b"hello");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A PUT whose body stops: answered 408, and the spool space it held is free again (before,
/// every other PUT answered 507 for as long as the stalled one stayed connected).
#[tokio::test]
async fn a_stalled_upload_is_cut_with_408_and_frees_the_spool() {
    // Room to see the spool full before the body is cut.
    let env =
        start(&SERVER.replace("body_idle_timeout = \"1s\"", "body_idle_timeout = \"3s\"")).await;
    let announced = 900_000usize;
    let mut s = connect(&env).await;
    let head = format!(
        "PUT /m/big.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nContent-Length: {announced}\r\n\r\n",
        auth()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    s.write_all(&bytes_of(800_000, 3))
        .await
        .expect("most of the body");
    let stalled_at = Instant::now();
    // The stalled body holds 800 kB of the 1 MiB spool: another upload does not fit now.
    let spool = env.gw.as_ref().expect("gateway").state.uploads.spool();
    eventually("the stalled body is spooled", || spool.used() >= 800_000).await;
    let r = env
        .req("PUT", "/m/other.bin")
        .body(bytes_of(300_000, 4))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 507);
    let got = closed("stalled PUT body", &mut s, stalled_at).await;
    assert_eq!(status_of(&got), 408, "{}", String::from_utf8_lossy(&got));
    // Its space is free again.
    eventually("the cut body's space is released", || spool.used() == 0).await;
    let r = env
        .req("PUT", "/m/other.bin")
        .body(bytes_of(300_000, 4))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status().as_u16(), 201);
    assert!(
        env.emu.lookup("/lib/big.bin").is_none(),
        "nothing of the cut body is kept"
    );
}

/// A chunked PUT that sends one byte every 300 ms (less than 1 KiB per `body_idle_timeout`):
/// cut with 408, not kept open for as long as the client likes.
#[tokio::test]
async fn a_trickling_upload_is_cut_with_408() {
    let env = start(SERVER).await;
    let mut s = connect(&env).await;
    let head = format!(
        "PUT /m/drip.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        auth()
    );
    s.write_all(head.as_bytes()).await.expect("head");
    let (mut rd, mut wr) = s.into_split();
    let drip = tokio::spawn(async move {
        let started = Instant::now();
        while started.elapsed() < CLOSE_GUARD {
            if wr.write_all(b"1\r\nx\r\n").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let started = Instant::now();
    let got = closed("chunked PUT, a byte every 300 ms", &mut rd, started).await;
    drip.abort();
    assert_eq!(status_of(&got), 408, "{}", String::from_utf8_lossy(&got));
}

/// One address holds at most `connections_per_ip` connections; more are closed at once, and
/// a slot is free again when a connection ends. Behind a trusted reverse proxy (all clients
/// share its address) the cap does not apply.
#[tokio::test]
async fn connections_per_address_are_capped() {
    let env = start("connections_per_ip = 3\nready_probe_interval = \"1h\"\n").await;
    let request = format!(
        "GET /m/a.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\n\r\n",
        auth()
    );
    // Three connections, each with an answered request (so each is known to be accepted).
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = connect(&env).await;
        s.write_all(request.as_bytes()).await.expect("write");
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(HANG_GUARD, s.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert_eq!(status_of(&buf[..n]), 200);
        held.push(s);
    }
    // The fourth is closed without an answer.
    let mut fourth = connect(&env).await;
    let started = Instant::now();
    let _ = fourth.write_all(request.as_bytes()).await;
    let got = closed("fourth connection", &mut fourth, started).await;
    assert_eq!(status_of(&got), 0, "{}", String::from_utf8_lossy(&got));
    // One ends: a new connection is served again (the count drops once the server sees it).
    drop(held.pop());
    let mut served = false;
    for _ in 0..100 {
        let mut s = connect(&env).await;
        let _ = s.write_all(request.as_bytes()).await;
        let mut buf = [0u8; 1024];
        if let Ok(Ok(n)) = tokio::time::timeout(HANG_GUARD, s.read(&mut buf)).await {
            if status_of(&buf[..n]) == 200 {
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "a freed slot was never given to a new connection");

    // Behind a trusted proxy every client has the proxy's address: no cap.
    let env = start("connections_per_ip = 3\ntrusted_proxies = [\"127.0.0.1\"]\nready_probe_interval = \"1h\"\n").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut s = connect(&env).await;
        s.write_all(request.as_bytes()).await.expect("write");
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(HANG_GUARD, s.read(&mut buf))
            .await
            .expect("answer in time")
            .expect("read");
        assert_eq!(status_of(&buf[..n]), 200);
        held.push(s);
    }
}
