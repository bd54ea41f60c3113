//! A bounded fuzzing run over request parsing: methods, paths, `Depth`, `If`, `Timeout`,
//! `Destination`, `Overwrite`, `Range`, credentials and PROPFIND/PROPPATCH/LOCK bodies, mutated
//! from what real clients send. The gateway runs as its own process, so an abort (a stack
//! overflow) is seen as what it is. The run fails on any answer outside the documented statuses
//! (500 included: a panic caught at the request boundary still counts), on a connection closed
//! without an answer, on a request that hangs, and on a process that died or logged a panic.
//!
//! The seeds are fixed, so CI is repeatable; `FUZZ_SEED=n FUZZ_CASES=m cargo test --test
//! fuzz_requests` explores further.

use std::time::{Duration, Instant};

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Cases per seed in CI.
const DEFAULT_CASES: usize = 1500;
/// Seeds run in CI.
const DEFAULT_SEEDS: [u64; 2] = [14, 2026];
/// Requests in flight at once.
const PARALLEL: usize = 8;
/// One request's bound (the emulator answers at once; nothing here should wait on 123).
const REQUEST_GUARD: Duration = Duration::from_secs(30);
/// The whole run's bound: the run stops early (and says so) rather than overrun CI.
const RUN_GUARD: Duration = Duration::from_secs(240);

/// Every status README documents for some request. 500 is not among them.
const DOCUMENTED: &[u16] = &[
    200, 201, 204, 206, 207, 302, 304, 400, 401, 403, 404, 405, 408, 409, 412, 413, 414, 415, 416,
    423, 429, 431, 501, 502, 503, 504, 507,
];

const BOB_PASSWORD: &str = "bob's read-only password";

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn pick<'a, T: ?Sized>(rng: &mut StdRng, items: &'a [&'a T]) -> &'a T {
    items[rng.gen_range(0..items.len())]
}

/// A path: a known one, mutated by appending, encoding, or inserting hostile segments.
fn path(rng: &mut StdRng) -> String {
    let base = pick(
        rng,
        &[
            "/",
            "/m",
            "/m/",
            "/m/a.txt",
            "/m/dir/",
            "/m/dir/b.bin",
            "/m/new.txt",
            "/m/dir/new/",
            "/ro/",
            "/ro/r.txt",
            "/anon/",
            "/anon/p.txt",
            "/-/d/m/a.txt",
            "/-/readyz",
            "/-/metrics",
            "/m/._a.txt",
            "/m/.DS_Store",
            "/m/Thumbs.db",
            "/nope/",
        ],
    )
    .to_string();
    match rng.gen_range(0..10) {
        0 => format!(
            "{base}{}",
            pick(
                rng,
                &[
                    "..",
                    "%2e%2e",
                    "%2F",
                    "%00",
                    "%ff",
                    "\\",
                    "%5c",
                    "./",
                    "//",
                    "%",
                    "%zz",
                    "?x=1",
                    "#f",
                    "%E4%B8%AD",
                    "a b",
                    "*",
                    ";",
                    "%2e",
                    "%c0%ae"
                ]
            )
        ),
        1 => format!("{base}{}", "a".repeat(rng.gen_range(200..3000))),
        2 => format!("{base}{}", "x/".repeat(rng.gen_range(10..400))),
        3 => format!(
            "{base}{}",
            (0..rng.gen_range(1..20))
                .map(|_| format!("%{:02x}", rng.gen::<u8>()))
                .collect::<String>()
        ),
        _ => base,
    }
}

fn depth(rng: &mut StdRng) -> Option<String> {
    Some(
        pick(
            rng,
            &[
                "0",
                "1",
                "infinity",
                "Infinity",
                "2",
                "-1",
                "",
                "1,1",
                "1 ",
                "noroot",
                "0\t",
                "99999999999999999999",
            ],
        )
        .to_string(),
    )
}

fn timeout(rng: &mut StdRng) -> Option<String> {
    Some(match rng.gen_range(0..6) {
        0 => format!("Second-{}", rng.gen::<u32>()),
        1 => "Second-18446744073709551616".into(),
        2 => format!("Infinite, Second-{}", rng.gen_range(0..10)),
        3 => pick(
            rng,
            &[
                "Second-",
                "Second--5",
                "Infinite",
                "",
                "garbage",
                "Second-1.5",
            ],
        )
        .into(),
        4 => "Second-2".into(),
        _ => format!("Second-{}", rng.gen_range(0..4_000_000_000u64)),
    })
}

fn if_header(rng: &mut StdRng) -> Option<String> {
    Some(match rng.gen_range(0..8) {
        0 => "(<opaquelocktoken:00000000-0000-0000-0000-000000000000>)".into(),
        1 => "(Not <urn:uuid:1>) ([\"etag\"])".into(),
        2 => "</m/a.txt> (<opaquelocktoken:x> [W/\"e\"])".into(),
        3 => "(".repeat(rng.gen_range(1..2000)),
        4 => format!("({})", "<a>".repeat(rng.gen_range(1..500))),
        5 => "<http://evil/> (<x>)".into(),
        6 => "([\"unterminated)".into(),
        _ => (0..rng.gen_range(1..64))
            .map(|_| pick(rng, &["(", ")", "<", ">", "[", "]", "Not", " ", "\"", "x"]))
            .collect(),
    })
}

fn destination(rng: &mut StdRng, base: &str) -> Option<String> {
    let host = base.trim_start_matches("http://");
    let rel = path(rng);
    Some(match rng.gen_range(0..7) {
        0 => format!("{base}{rel}"),
        1 => rel,
        2 => format!("http://evil.example.com{rel}"),
        3 => format!("http://user:pw@{host}{rel}"),
        4 => pick(
            rng,
            &[
                "",
                "/",
                "http://",
                "http:///",
                "ftp://x/m/a",
                "m/a",
                "http://[::1",
            ],
        )
        .into(),
        5 => format!("https://{host}/m"),
        _ => format!("{base}/m/copy-{}.txt", rng.gen_range(0..20)),
    })
}

fn range(rng: &mut StdRng) -> Option<String> {
    Some(match rng.gen_range(0..7) {
        0 => format!(
            "bytes={}-{}",
            rng.gen_range(0..2000),
            rng.gen_range(0..2000)
        ),
        1 => format!("bytes=-{}", rng.gen::<u64>()),
        2 => format!("bytes={}-", rng.gen::<u64>()),
        3 => "bytes=0-0,1-1,2-2,3-3,4-4,5-5".into(),
        4 => format!("bytes={}", "0-1,".repeat(rng.gen_range(1..2000))),
        5 => pick(
            rng,
            &[
                "bytes=",
                "bytes=-",
                "items=0-1",
                "bytes=5-1",
                "bytes=18446744073709551616-",
            ],
        )
        .into(),
        _ => "bytes=0-99".into(),
    })
}

/// An XML body, from client-like templates, then maybe mutated.
fn xml_body(rng: &mut StdRng, method: &str) -> Vec<u8> {
    let depth_bomb = |rng: &mut StdRng| {
        let n = rng.gen_range(50..5000);
        format!("{}{}", "<x>".repeat(n), "</x>".repeat(n))
    };
    let inner = match rng.gen_range(0..6) {
        0 => depth_bomb(rng),
        1 => "<D:getcontentlength/><D:resourcetype/><D:getlastmodified/>".into(),
        2 => format!(
            "<Z:p xmlns:Z=\"urn:z\">{}</Z:p>",
            "v".repeat(rng.gen_range(0..70_000))
        ),
        3 => "<D:x/>".repeat(rng.gen_range(100..9000)),
        4 => "<Z:p xmlns:Z=\"urn:z\"><![CDATA[<x>]]>&amp;&#x1F600;&unknown;</Z:p>".into(),
        _ => "<oc:checksums xmlns:oc=\"http://owncloud.org/ns\"/>".into(),
    };
    let text = match method {
        "PROPFIND" => match rng.gen_range(0..4) {
            0 => "<D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>".into(),
            1 => "<D:propfind xmlns:D=\"DAV:\"><D:propname/></D:propfind>".into(),
            _ => format!("<D:propfind xmlns:D=\"DAV:\"><D:prop>{inner}</D:prop></D:propfind>"),
        },
        "PROPPATCH" => format!(
            "<D:propertyupdate xmlns:D=\"DAV:\"><D:{op}><D:prop>{inner}</D:prop></D:{op}></D:propertyupdate>",
            op = pick(rng, &["set", "remove"])
        ),
        _ => format!(
            "<D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:{scope}/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>{inner}</D:owner></D:lockinfo>",
            scope = pick(rng, &["exclusive", "shared", "bogus"])
        ),
    };
    let mut bytes = format!("<?xml version=\"1.0\" encoding=\"utf-8\"?>{text}").into_bytes();
    match rng.gen_range(0..8) {
        0 => bytes.truncate(rng.gen_range(0..bytes.len())),
        1 => {
            for _ in 0..rng.gen_range(1..8) {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = rng.gen();
            }
        }
        2 => bytes = (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect(),
        _ => {}
    }
    bytes
}

/// One request's bytes.
fn request(rng: &mut StdRng, base: &str) -> Vec<u8> {
    let method = match rng.gen_range(0..30) {
        0 => "X".repeat(rng.gen_range(1..300)),
        1 => pick(
            rng,
            &["get", "TRACE", "POST", "PATCH", "SEARCH", "CONNECT", "BREW"],
        )
        .into(),
        _ => pick(
            rng,
            &[
                "GET",
                "HEAD",
                "OPTIONS",
                "PROPFIND",
                "PROPFIND",
                "PROPPATCH",
                "MKCOL",
                "PUT",
                "DELETE",
                "COPY",
                "MOVE",
                "LOCK",
                "LOCK",
                "UNLOCK",
            ],
        )
        .into(),
    };
    let target = path(rng);
    let mut headers: Vec<(String, String)> =
        vec![("Host".into(), base.trim_start_matches("http://").into())];
    match rng.gen_range(0..10) {
        0 => {}
        1 => {
            // Wrong credentials, from an address of their own (the lockout is per address).
            headers.push(("Authorization".into(), basic("alice", "wrong")));
            headers.push((
                "X-Forwarded-For".into(),
                format!(
                    "10.{}.{}.{}",
                    rng.gen::<u8>(),
                    rng.gen::<u8>(),
                    rng.gen::<u8>()
                ),
            ));
        }
        2 | 3 => headers.push(("Authorization".into(), basic("bob", BOB_PASSWORD))),
        _ => headers.push(("Authorization".into(), basic(USER, PASSWORD))),
    }
    let mut maybe = |rng: &mut StdRng, name: &str, value: Option<String>, chance: f64| {
        if rng.gen_bool(chance) {
            if let Some(v) = value {
                headers.push((name.into(), v));
            }
        }
    };
    let d = depth(rng);
    maybe(rng, "Depth", d, 0.5);
    let t = timeout(rng);
    maybe(rng, "Timeout", t, if method == "LOCK" { 0.7 } else { 0.1 });
    let i = if_header(rng);
    maybe(rng, "If", i, 0.2);
    let dest = destination(rng, base);
    maybe(
        rng,
        "Destination",
        dest,
        if matches!(method.as_str(), "COPY" | "MOVE") {
            0.9
        } else {
            0.05
        },
    );
    let o = Some(pick(rng, &["T", "F", "t", "x", ""]).to_string());
    maybe(rng, "Overwrite", o, 0.3);
    let r = range(rng);
    maybe(rng, "Range", r, if method == "GET" { 0.5 } else { 0.05 });
    let lt = Some(
        pick(
            rng,
            &["<opaquelocktoken:x>", "<urn:uuid:1>", "", "<", "nonsense"],
        )
        .to_string(),
    );
    maybe(
        rng,
        "Lock-Token",
        lt,
        if method == "UNLOCK" { 0.9 } else { 0.02 },
    );
    let ua = Some(
        pick(
            rng,
            &[
                "Microsoft-WebDAV-MiniRedir/10.0.19045",
                "WebDAVFS/3.0.0",
                "rclone/v1.60",
                "Lavf/60",
                "Kodi/20",
            ],
        )
        .to_string(),
    );
    maybe(rng, "User-Agent", ua, 0.5);
    let mtime = Some(format!("{}", rng.gen::<i64>()));
    maybe(rng, "X-OC-Mtime", mtime, 0.05);
    let body: Vec<u8> = match method.as_str() {
        "PROPFIND" | "PROPPATCH" | "LOCK" if rng.gen_bool(0.8) => xml_body(rng, &method),
        "PUT" => (0..rng.gen_range(0..3000)).map(|_| rng.gen()).collect(),
        "MKCOL" if rng.gen_bool(0.1) => b"<x/>".to_vec(),
        _ => Vec::new(),
    };
    let mut out = format!("{method} {target} HTTP/1.1\r\n");
    for (k, v) in &headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&body);
    bytes
}

/// Sends `bytes` on a new connection; the status code of the answer, or why there is none.
async fn send(addr: &str, bytes: &[u8]) -> Result<u16, String> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        // The server may answer (400, 413) before it has read the whole body.
        let _ = s.write_all(bytes).await;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let text = String::from_utf8_lossy(&head[..head.len().min(64)]).to_string();
        text.strip_prefix("HTTP/1.1 ")
            .and_then(|t| t.get(..3))
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| format!("no answer (read {} bytes)", head.len()))
    };
    tokio::time::timeout(REQUEST_GUARD, exchange)
        .await
        .map_err(|_| "no answer in time".to_string())?
}

fn fixtures(emu: &Emulator) -> (u64, u64, u64) {
    emu.put_file("/lib/a.txt", bytes_of(2000, 1));
    emu.put_file("/lib/dir/b.bin", bytes_of(5000, 2));
    emu.put_file("/ro/r.txt", bytes_of(100, 3));
    emu.put_file("/pub/p.txt", bytes_of(100, 4));
    let id = |p: &str| emu.lookup(p).map(|e| e.id).unwrap_or(0);
    (id("/lib"), id("/ro"), id("/pub"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_requests_get_documented_answers_and_never_crash_the_gateway() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    let (lib, ro, public) = fixtures(&emu);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let bob_hash = {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        argon2::Argon2::default()
            .hash_password(BOB_PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
            .expect("hash")
            .to_string()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mounts = format!(
        "{}{}{}",
        open_mount("/m", "proxy", &format!("root_id = {lib}")),
        open_mount(
            "/ro",
            "redirect",
            &format!("root_id = {ro}\nread_only = true")
        ),
        open_mount(
            "/anon",
            "proxy-url",
            &format!("root_id = {public}\nanonymous = true")
        ),
    );
    let mounts = fill_hosts(&mounts, &emu, &base);
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nstate_dir = \"{}\"\nsigning_key = \"{SIGNING_KEY}\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\nwrite = true\n\n[[users]]\nname = \"bob\"\npassword_hash = \"{bob_hash}\"\n\n{mounts}",
        dir.path().join("state").display(),
        password_hash(),
    );
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, config).expect("config");
    let log_path = dir.path().join("gateway.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut gw =
        GatewayProcess::spawn(&config_path, port, &[("RUST_BACKTRACE", "0")], Some(log)).await;
    let addr = format!("127.0.0.1:{port}");

    let cases: usize = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seeds: Vec<u64> = match std::env::var("FUZZ_SEED").ok().and_then(|v| v.parse().ok()) {
        Some(seed) => vec![seed],
        None => DEFAULT_SEEDS.to_vec(),
    };
    let started = Instant::now();
    let mut sent = 0usize;
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    let mut failures = Vec::new();
    'seeds: for seed in &seeds {
        let mut rng = StdRng::seed_from_u64(*seed);
        let requests: Vec<Vec<u8>> = (0..cases).map(|_| request(&mut rng, &base)).collect();
        for (batch_no, batch) in requests.chunks(PARALLEL).enumerate() {
            if started.elapsed() > RUN_GUARD {
                eprintln!("fuzz: the run's time bound was reached after {sent} requests");
                break 'seeds;
            }
            let answers =
                futures_util::future::join_all(batch.iter().map(|b| send(&addr, b))).await;
            for (i, (bytes, answer)) in batch.iter().zip(answers).enumerate() {
                sent += 1;
                let case = batch_no * PARALLEL + i;
                let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).to_string();
                match answer {
                    Ok(code) if DOCUMENTED.contains(&code) => {
                        *by_status.entry(code).or_default() += 1
                    }
                    Ok(code) => failures.push(format!(
                        "seed {seed} case {case}: answered {code}:\n{shown}"
                    )),
                    Err(why) => failures.push(format!("seed {seed} case {case}: {why}:\n{shown}")),
                }
            }
            if let Ok(Some(status)) = gw.child.try_wait() {
                failures.push(format!(
                    "seed {seed}: the gateway exited ({status}) near case {}",
                    batch_no * PARALLEL
                ));
                break 'seeds;
            }
        }
    }
    eprintln!("fuzz: {sent} requests, seeds {seeds:?}, answers by status {by_status:?}");
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    for line in log.lines().filter(|l| l.contains("panicked")) {
        failures.push(format!("the log shows a panic: {line}"));
    }
    assert!(
        failures.is_empty(),
        "{} problems; the first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    // Still serving, and every mount still works for a normal client.
    let client = reqwest::Client::builder()
        .timeout(HANG_GUARD)
        .build()
        .expect("client");
    let r = client
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
            format!("{base}/m/"),
        )
        .header("Depth", "1")
        .header("Authorization", basic(USER, PASSWORD))
        .send()
        .await
        .expect("propfind after fuzzing");
    assert_eq!(r.status(), 207);
    // A fuzzed LOCK may still hold the mount's root (it is alice's): the write below submits
    // the tokens the root's lockdiscovery shows, as a client holding them would.
    let discovery = client
        .request(reqwest::Method::from_bytes(b"PROPFIND").expect("method"), format!("{base}/m/"))
        .header("Depth", "0")
        .header("Authorization", basic(USER, PASSWORD))
        .body("<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:lockdiscovery/></D:prop></D:propfind>")
        .send()
        .await
        .expect("lockdiscovery after fuzzing")
        .text()
        .await
        .unwrap_or_default();
    let tokens: String = discovery
        .split("<D:locktoken><D:href>")
        .skip(1)
        .filter_map(|rest| rest.split('<').next())
        .map(|t| format!("(<{}>)", t.trim()))
        .collect::<Vec<_>>()
        .join(" ");
    let mut put = client
        .put(format!("{base}/m/after-fuzz.txt"))
        .header("Authorization", basic(USER, PASSWORD))
        .body("ok");
    if !tokens.is_empty() {
        put = put.header("If", tokens.clone());
    }
    let r = put.send().await.expect("put after fuzzing");
    assert!(
        r.status().is_success(),
        "PUT after fuzzing: {} (tokens {tokens:?})",
        r.status()
    );
    let r = client
        .get(format!("{base}/-/metrics"))
        .send()
        .await
        .expect("metrics");
    let metrics = r.text().await.expect("metrics body");
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("pan123_request_panics_total") && !l.ends_with(" 0")),
        "a handler panicked:\n{}",
        metrics
            .lines()
            .filter(|l| l.contains("panics"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
