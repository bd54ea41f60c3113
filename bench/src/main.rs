//! Benchmarks of the gateway against references measured in the same run (issue 10).
//!
//! `pan123-bench run OUT.md` runs every measure three times and writes the report. The gateway
//! under test is the product's own binary: `pan123-gateway`, built by this package from the
//! gateway's `src/main.rs` next to `pan123-bench`, is `pan123-webdav` under another name, so its
//! memory is what a user's process holds, not the bench's code and the emulator's as well. This binary is the bare hyper 302
//! server (`pan123-bench redirect-server PORT URL`) and still answers `serve -c CONFIG`, so each
//! runs as its own process and one release build serves them all.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::StreamExt;
use pan123_emulator::{Emulator, EmulatorConfig};
use pan123_webdav::dav::propfind_body;
use rand::Rng;

/// The gateway's binary (and its process name), built by this package from `../src/main.rs`:
/// `pan123-webdav` under another name (see Cargo.toml).
const GATEWAY: &str = "pan123-gateway";
const USER: &str = "alice";
const PASSWORD: &str = "bench-password";
const RUNS: usize = 3;
const LIST_N: usize = 10_000;
const SEEKS: usize = 200;
const STREAMS: usize = 100;
/// Measure 5: the CDN rate of each of the 100 streams (16 Mbit/s, a high-bitrate film; 200 MB/s
/// in all, which this machine carries), and the overload variant (800 MB/s in all).
const STREAM_RATE: u64 = 2_000_000;
const STREAM_RATE_BURST: u64 = 8_000_000;
const CAP: u64 = 40_000_000;
/// Measure 8: concurrent clients and how long they run.
const LOAD_CLIENTS: usize = 200;
const LOAD_SECS: u64 = 30;
/// Measure 8: bytes of each Range GET, of each load file, and the most of a PUT.
const LOAD_GET: u64 = 2 << 20;
const LOAD_FILE: u64 = 4 << 20;
const LOAD_PUT_MAX: u64 = 3_000_000;

/// Measure 4: the request bodies of the listing rows, as the real clients send them (the same
/// constants the tests compare with dav-server), with each client's User-Agent (dav-server and
/// the gateway answer Windows and Finder a little differently).
const LIST_BODIES: [(&str, Option<&str>, &str); 5] = [
    ("none", None, "pan123-bench"),
    ("allprop", Some(propfind_body::ALLPROP), "pan123-bench"),
    ("rclone's", Some(propfind_body::RCLONE), "rclone/v1.60.1"),
    (
        "Finder's",
        Some(propfind_body::FINDER),
        "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (x86_64)",
    ),
    (
        "Windows Explorer's",
        Some(propfind_body::WINDOWS),
        "Microsoft-WebDAV-MiniRedir/10.0.19045",
    ),
];
/// The heading of BENCHMARKS.md's hand-written section: `run` keeps it and what follows.
const HAND_WRITTEN: &str = "## Findings (written by hand)";

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let count = || args.get(2).and_then(|n| n.parse().ok()).unwrap_or(3);
    match args.get(1).map(String::as_str) {
        Some("serve") => pan123_webdav::cli::run(),
        Some("freshness") => match args.get(2).map(Path::new) {
            Some(path) => exit_code(freshness(path)),
            None => {
                eprintln!("usage: pan123-bench freshness BENCHMARKS.md");
                std::process::ExitCode::FAILURE
            }
        },
        Some("redirect-server") => block_on(redirect_server(&args[2], &args[3])),
        // For profiling: measure 3 alone (a gateway, wrk against it and the bare server).
        Some("redirect-loop") => block_on(redirect_loop()),
        // For profiling: a gateway process and 30 warm PROPFINDs of 10,000 entries.
        Some("list-loop") => block_on(list_loop()),
        // For profiling: a gateway process and the 100-stream memory measure, N times.
        Some("mem-loop") => block_on(mem_loop(count())),
        // For profiling: measure 1b alone (uncapped proxy vs direct), N rounds.
        Some("throughput-loop") => block_on(throughput_loop(count())),
        // For profiling: a gateway process and the mixed load once (BENCH_LOAD_SECS).
        Some("load-loop") => block_on(load_loop()),
        // A 64 MiB PUT at 16 MiB and at 1 MiB slices, timed until complete.
        Some("upload-loop") => block_on(upload_loop()),
        Some("run") => {
            let out = PathBuf::from(args.get(2).cloned().unwrap_or("BENCHMARKS.md".into()));
            block_on(run_all(&out))
        }
        _ => {
            eprintln!(
                "usage: pan123-bench run OUT.md | serve -c CONFIG | redirect-server PORT URL | upload-loop | throughput-loop [N]"
            );
            std::process::ExitCode::from(2)
        }
    }
}

/// Runs one subcommand on a fresh runtime, as its exit code.
fn block_on(work: impl std::future::Future<Output = Result<()>>) -> std::process::ExitCode {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    exit_code(rt.block_on(work))
}

/// Success, or the error printed and failure.
fn exit_code(result: Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The reference for the redirect rate: hyper answering a fixed 302, nothing else.
async fn redirect_server(port: &str, location: &str) -> Result<()> {
    use hyper::service::service_fn;
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let location: &'static str = Box::leak(location.to_string().into_boxed_str());
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let svc = service_fn(move |_req| async move {
                Ok::<_, std::convert::Infallible>(
                    hyper::Response::builder()
                        .status(302)
                        .header("location", location)
                        .header("cache-control", "no-store")
                        .body(http_body_util::Empty::<bytes::Bytes>::new())
                        .expect("response"),
                )
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

// ---------------------------------------------------------------- helpers

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn median(v: &[f64]) -> f64 {
    pct(v, 50.0)
}

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    if s.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[idx.min(s.len() - 1)]
}

/// utime + stime of a process in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // fields after ")": state=0, ..., utime=11, stime=12
    let ticks: f64 = f.get(11).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / clk_tck()
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `VmRSS`/`VmHWM` line of /proc/<pid>/status, in MiB.
fn status_mib(pid: u32, key: &str) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// A child process, killed when dropped.
struct Proc(Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A gateway under a profiler (`BENCH_GATEWAY_WRAP`), in a process group of its own: dropped,
/// the gateway (the group's `pan123-gateway` process) gets SIGTERM, so it stops and the profiler
/// (whose own pipeline must live on to write its data) sees it go; SIGKILL to the whole group
/// after 10 s if anything is left.
struct WrappedProc(Child);
impl Drop for WrappedProc {
    fn drop(&mut self) {
        let group = self.0.id();
        let signal = |sig: &str, target: String| {
            let _ = Command::new("kill")
                .args([sig, "--", &target])
                .stderr(Stdio::null())
                .status();
        };
        for pid in group_members(group, GATEWAY) {
            signal("-TERM", pid.to_string());
        }
        for _ in 0..100 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        signal("-KILL", format!("-{group}"));
        let _ = self.0.wait();
    }
}

/// The processes of process group `group` whose command name is `comm` (from /proc).
fn group_members(group: u32, comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid pgrp ...
            let Some((name, rest)) = stat.split_once(" (").and_then(|(_, r)| r.rsplit_once(") "))
            else {
                return false;
            };
            let pgrp = rest
                .split_whitespace()
                .nth(2)
                .and_then(|g| g.parse::<u32>().ok());
            name == comm && pgrp == Some(group)
        })
        .collect()
}

async fn wait_http(client: &reqwest::Client, url: &str) -> Result<()> {
    for _ in 0..400 {
        if client
            .request(reqwest::Method::OPTIONS, url)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("{url} did not answer")
}

/// Reads a response to the end; returns (time to first byte, bytes).
async fn drain(start: Instant, res: reqwest::Response) -> Result<(Duration, u64)> {
    let mut ttfb = None;
    let mut n = 0u64;
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if ttfb.is_none() {
            ttfb = Some(start.elapsed());
        }
        n += chunk.len() as u64;
    }
    Ok((ttfb.unwrap_or_else(|| start.elapsed()), n))
}

struct Api {
    base: String,
    token: String,
    client: reqwest::Client,
}

impl Api {
    async fn new(emu: &Emulator, client: &reqwest::Client) -> Result<Api> {
        let base = emu.base_url();
        let v: serde_json::Value = client
            .post(format!("{base}/api/v1/access_token"))
            .header("Platform", "open_platform")
            .json(&serde_json::json!({"clientID": emu.client_id(), "clientSecret": emu.client_secret()}))
            .send()
            .await?
            .json()
            .await?;
        let token = v["data"]["accessToken"]
            .as_str()
            .ok_or_else(|| anyhow!("no token: {v}"))?
            .to_string();
        Ok(Api {
            base,
            token,
            client: client.clone(),
        })
    }

    async fn call(&self, make: impl Fn() -> reqwest::RequestBuilder) -> Result<serde_json::Value> {
        for _ in 0..50 {
            let v: serde_json::Value = make()
                .header("Platform", "open_platform")
                .bearer_auth(&self.token)
                .send()
                .await?
                .json()
                .await?;
            if v["code"] == 429 || v["code"] == 20103 {
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
            if v["code"] != 0 {
                bail!("api: {v}");
            }
            return Ok(v["data"].clone());
        }
        bail!("api: still limited")
    }

    async fn download_url(&self, id: u64) -> Result<String> {
        let d = self
            .call(|| {
                self.client.get(format!(
                    "{}/api/v1/file/download_info?fileId={id}",
                    self.base
                ))
            })
            .await?;
        Ok(d["downloadUrl"].as_str().unwrap_or_default().to_string())
    }
}

fn md5_hex(b: &[u8]) -> String {
    use md5::{Digest, Md5};
    let d = Md5::digest(b);
    d.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------- the environment

struct Env {
    emu: Emulator,
    client: reqwest::Client,
    hash: String,
    /// This binary (the bare 302 server).
    exe: PathBuf,
    /// The gateway: `pan123-gateway` (the product's `main.rs`), built next to this binary.
    gateway_exe: PathBuf,
    work: tempfile::TempDir,
    big_id: u64,
    size: u64,
}

/// The gateway process: plain, or under a profiler (stopped gently, see `WrappedProc`).
enum GatewayProc {
    Plain(Proc),
    Wrapped(WrappedProc),
}

struct Gateway {
    proc: GatewayProc,
    base: String,
    _state: tempfile::TempDir,
}

impl Gateway {
    fn pid(&self) -> u32 {
        match &self.proc {
            GatewayProc::Plain(p) => p.0.id(),
            GatewayProc::Wrapped(p) => p.0.id(),
        }
    }
}

impl Env {
    async fn gateway(&self) -> Result<Gateway> {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let state = tempfile::tempdir_in(self.work.path())?;
        let api = self.emu.base_url();
        let (id, secret) = (self.emu.client_id(), self.emu.client_secret());
        let mut text = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nsigning_key = \"bench-signing-key-0123456789abcdef\"\nstate_dir = \"{}\"\n# Every client is on loopback: lift the per-address cap (default 64).\nconnections_per_ip = 1000\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\nmounts = [\"*\"]\nwrite = true\n",
            state.path().display(),
            self.hash
        );
        for (path, download) in [("/open", "proxy"), ("/redir", "redirect")] {
            text.push_str(&format!(
                "\n[[mounts]]\npath = \"{path}\"\nbackend = \"open\"\nclient_id = \"{id}\"\nclient_secret = \"{secret}\"\napi_base = \"{api}\"\ndownload = \"{download}\"\nproxy_url = \"{base}\"\ncache_ttl = \"1h\"\n"
            ));
        }
        let cfg = state.path().join("config.toml");
        std::fs::write(&cfg, text)?;
        let log = std::fs::File::create(self.work.path().join(format!("gateway-{port}.log")))?;
        // BENCH_GATEWAY_WRAP="heaptrack -o /tmp/ht" runs the gateway under a profiler.
        let wrap = std::env::var("BENCH_GATEWAY_WRAP").unwrap_or_default();
        let mut wrap = wrap.split_whitespace();
        let wrapped = wrap.clone().next().is_some();
        let mut cmd = match wrap.next() {
            Some(tool) => {
                let mut c = Command::new(tool);
                c.args(wrap).arg(&self.gateway_exe);
                std::os::unix::process::CommandExt::process_group(&mut c, 0);
                c
            }
            None => Command::new(&self.gateway_exe),
        };
        let child = cmd
            .args(["serve", "-c"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("spawn gateway")?;
        let gw = Gateway {
            proc: if wrapped {
                GatewayProc::Wrapped(WrappedProc(child))
            } else {
                GatewayProc::Plain(Proc(child))
            },
            base,
            _state: state,
        };
        wait_http(&self.client, &format!("{}/", gw.base)).await?;
        Ok(gw)
    }

    fn req(&self, gw: &Gateway, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                format!("{}{path}", gw.base),
            )
            .basic_auth(USER, Some(PASSWORD))
    }

    fn api_calls(&self) -> u64 {
        let s = self.emu.stats();
        s.calls
            .iter()
            .filter(|(k, _)| k.starts_with('/'))
            .map(|(_, v)| *v)
            .sum()
    }
}

// ---------------------------------------------------------------- measures

#[derive(Default, Clone)]
struct Run {
    tp_capped_proxy: f64,
    tp_capped_direct: f64,
    tp_proxy: f64,
    tp_direct: f64,
    cpu_per_gib: f64,
    seek_med_proxy: f64,
    seek_p99_proxy: f64,
    seek_med_direct: f64,
    seek_p99_direct: f64,
    /// Warm PROPFIND seconds per `LIST_BODIES` entry.
    list_warm: [f64; 5],
    list_rclone: [f64; 5],
    list_dufs: [f64; 5],
    list_cold_s: f64,
    list_cold_calls: u64,
    rss_idle: f64,
    rss_peak: f64,
    rss_took: f64,
    rss_peak_burst: f64,
    rss_took_burst: f64,
    redirect_gw: f64,
    redirect_bare: f64,
    up_complete: f64,
    up_answer: f64,
    up_floor: f64,
    up_local: f64,
    eco_player: u64,
    eco_rclone: u64,
    load: Load,
}

/// Measure 8: the mixed load's totals.
#[derive(Default, Clone)]
struct Load {
    secs: f64,
    requests: u64,
    /// 5xx answers and failed requests (connection errors, timeouts).
    errors: u64,
    /// 4xx answers (none are expected).
    client_errors: u64,
    p50_ms: f64,
    p99_ms: f64,
    /// Median latency of PROPFIND, GET and PUT.
    p50_kind: [f64; 3],
    /// 99th percentile latency of PROPFIND, GET and PUT.
    p99_kind: [f64; 3],
    /// The gateway's peak RSS during the load (MiB).
    rss_peak: f64,
}

async fn throughput(env: &Env, url: reqwest::RequestBuilder) -> Result<f64> {
    let t = Instant::now();
    let res = url.send().await?.error_for_status()?;
    let (_, n) = drain(t, res).await?;
    if n != env.size {
        bail!("short body: {n} of {}", env.size);
    }
    Ok(n as f64 / t.elapsed().as_secs_f64() / 1e6)
}

async fn seeks(env: &Env, make: impl Fn() -> reqwest::RequestBuilder) -> Result<(f64, f64)> {
    let mut v = Vec::new();
    for _ in 0..SEEKS {
        let off = rand::thread_rng().gen_range(0..env.size - 65536);
        let t = Instant::now();
        let res = make()
            .header("Range", format!("bytes={off}-{}", off + 65535))
            .send()
            .await?;
        if res.status() != 206 {
            bail!("seek: {}", res.status());
        }
        let (ttfb, _) = drain(t, res).await?;
        v.push(ttfb.as_secs_f64() * 1e3);
    }
    Ok((median(&v), pct(&v, 99.0)))
}

/// One PROPFIND Depth 1 with `body` (none when `None`) and `ua`, timed to its last byte.
async fn propfind_time(
    client: &reqwest::Client,
    url: &str,
    auth: bool,
    body: Option<&str>,
    ua: &str,
) -> Result<f64> {
    propfind_n(client, url, auth, body, ua, LIST_N).await
}

/// As `propfind_time`, for a folder of `entries` entries (checked).
async fn propfind_n(
    client: &reqwest::Client,
    url: &str,
    auth: bool,
    body: Option<&str>,
    ua: &str,
    entries: usize,
) -> Result<f64> {
    let t = Instant::now();
    let mut rb = client
        .request(reqwest::Method::from_bytes(b"PROPFIND")?, url)
        .header("Depth", "1")
        .header("User-Agent", ua);
    if let Some(b) = body {
        rb = rb
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(b.to_string());
    }
    if auth {
        rb = rb.basic_auth(USER, Some(PASSWORD));
    }
    let res = rb.send().await?;
    if res.status() != 207 {
        bail!("PROPFIND {url}: {}", res.status());
    }
    let body = res.text().await?;
    let n = body.matches("response>").count() / 2;
    if n < entries {
        bail!("PROPFIND {url}: {n} entries");
    }
    Ok(t.elapsed().as_secs_f64())
}

/// The median of 5 warm PROPFINDs (after one warm-up) with each of `LIST_BODIES`.
async fn warm_list(client: &reqwest::Client, url: &str, auth: bool) -> Result<[f64; 5]> {
    let mut out = [f64::NAN; 5];
    for (i, (_, body, ua)) in LIST_BODIES.iter().enumerate() {
        propfind_time(client, url, auth, *body, ua).await?;
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(propfind_time(client, url, auth, *body, ua).await?);
        }
        out[i] = median(&v);
    }
    Ok(out)
}

fn wrk(url: &str, auth: Option<&str>) -> Result<f64> {
    let mut cmd = Command::new("timeout");
    cmd.args(["30", "wrk", "-t2", "-c64", "-d5s"]);
    if let Some(a) = auth {
        cmd.args(["-H", &format!("Authorization: {a}")]);
    }
    let out = cmd.arg(url).output().context("wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("Non-2xx") {
        // 302 is non-2xx for wrk; that is what we want. Anything else would show as errors.
    }
    text.lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|x| x.parse().ok())
        .ok_or_else(|| anyhow!("wrk output: {text}"))
}

async fn upload_floor(env: &Env, api: &Api, data: &[u8], name: &str) -> Result<f64> {
    let t = Instant::now();
    // spool: write + fsync, then MD5 (as the gateway does)
    let p = env.work.path().join("floor.bin");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&p)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    let md5 = md5_hex(data);
    let d = api
        .call(|| {
            api.client
                .post(format!("{}/upload/v2/file/create", api.base))
                .json(&serde_json::json!({"parentFileID": 0, "filename": name, "etag": md5, "size": data.len(), "duplicate": 2}))
        })
        .await?;
    let pre = d["preuploadID"].as_str().unwrap_or_default().to_string();
    if d["reuse"] == true {
        bail!("floor upload was deduplicated");
    }
    let slice = d["sliceSize"]
        .as_u64()
        .or_else(|| d["sliceSize"].as_str().and_then(|x| x.parse().ok()))
        .filter(|&x| x > 0)
        .unwrap_or(16 << 20) as usize;
    // Slices go to the upload server `create` names, not to the Open API host.
    let server = d["servers"][0]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("create named no upload server: {d}"))?
        .trim_end_matches('/')
        .to_string();
    let server = &server;
    let chunks: Vec<(usize, &[u8])> = data.chunks(slice).enumerate().collect();
    let results: Vec<Result<()>> = futures_util::stream::iter(chunks)
        .map(|(i, c)| {
            let pre = pre.clone();
            async move {
                let md5 = md5_hex(c);
                api.call(|| {
                    let form = reqwest::multipart::Form::new()
                        .text("preuploadID", pre.clone())
                        .text("sliceNo", (i + 1).to_string())
                        .text("sliceMD5", md5.clone())
                        .part(
                            "slice",
                            reqwest::multipart::Part::bytes(c.to_vec()).file_name("s"),
                        );
                    api.client
                        .post(format!("{server}/upload/v2/file/slice"))
                        .multipart(form)
                })
                .await
                .map(|_| ())
            }
        })
        .buffer_unordered(3)
        .collect()
        .await;
    for r in results {
        r?;
    }
    for _ in 0..200 {
        let d = api
            .call(|| {
                api.client
                    .post(format!("{}/upload/v2/file/upload_complete", api.base))
                    .json(&serde_json::json!({"preuploadID": pre}))
            })
            .await?;
        if d["completed"] == true {
            let _ = std::fs::remove_file(&p);
            return Ok(t.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("floor upload never completed")
}

/// Peak VmRSS of the gateway while 100 clients each stream 8 MiB through the proxy at once,
/// the CDN capped at `rate` bytes/s per response; and how long the streams took. With `dump`,
/// the gateway's mappings at the peak are copied there (for profiling).
/// The peak VmRSS of a process, sampled every 10 ms until stopped.
struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<f64>,
}

impl RssSampler {
    /// Starts sampling `pid`; `dump` gets a copy of its smaps at each new peak.
    fn start(pid: u32, dump: Option<&Path>) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let dump = dump.map(Path::to_path_buf);
        let task = tokio::spawn(async move {
            let mut peak: f64 = 0.0;
            // Bounded: stopped by its owner, and never longer than an hour.
            let until = Instant::now() + Duration::from_secs(3600);
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
                let now = status_mib(pid, "VmRSS:");
                if now > peak {
                    peak = now;
                    if let Some(d) = &dump {
                        let _ = std::fs::copy(format!("/proc/{pid}/smaps"), d);
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            peak
        });
        Self { stop, task }
    }

    /// Stops and returns the peak (MiB).
    async fn stop(self) -> Result<f64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

/// PUTs `data` to `/open/<name>`: seconds until the PUT is answered and until the emulator
/// holds the whole file.
async fn put_until_complete(
    env: &Env,
    gw: &Gateway,
    name: &str,
    data: bytes::Bytes,
) -> Result<(f64, f64)> {
    let size = data.len() as u64;
    let t = Instant::now();
    let res = env
        .req(gw, "PUT", &format!("/open/{name}"))
        .body(data)
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("PUT: {}", res.status());
    }
    let answered = t.elapsed().as_secs_f64();
    for _ in 0..6000 {
        if env
            .emu
            .lookup(&format!("/{name}"))
            .is_some_and(|e| e.size == size)
        {
            return Ok((answered, t.elapsed().as_secs_f64()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the upload never completed")
}

/// One 64 MiB PUT through `/open`, timed until complete, with 123's 16 MiB slices and with
/// 1 MiB slices: the upload engine's throughput and its call counts.
async fn upload_loop() -> Result<()> {
    const SIZE: usize = 64 << 20;
    let env = setup(1, 0).await?;
    let gw = env.gateway().await?;
    for (i, slice) in [16u64 << 20, 1 << 20].into_iter().enumerate() {
        env.emu.set_switches(|s| s.slice_size = slice);
        let mut data = vec![0u8; SIZE];
        rand::thread_rng().fill(&mut data[..]);
        let before = env.emu.stats();
        let (answered, complete) =
            put_until_complete(&env, &gw, &format!("upload-loop-{i}.bin"), data.into()).await?;
        let after = env.emu.stats();
        let calls = |ep: &str| after.calls(ep) - before.calls(ep);
        eprintln!(
            "64 MiB, slice {} KiB: answered {answered:.2}s, complete {complete:.2}s = {:.1} MiB/s, {} slices, create {} complete {}",
            slice >> 10,
            64.0 / complete,
            calls("/upload/v2/file/slice"),
            calls("/upload/v2/file/create"),
            calls("/upload/v2/file/upload_complete"),
        );
    }
    Ok(())
}

async fn stream_memory(
    env: &Env,
    gw: &Gateway,
    rate: u64,
    dump: Option<&Path>,
) -> Result<(f64, f64)> {
    env.emu.set_switches(|s| s.cdn_rate_limit = Some(rate));
    let t = Instant::now();
    let sampler = RssSampler::start(gw.pid(), dump);
    let results: Vec<Result<u64>> = futures_util::stream::iter(0..STREAMS)
        .map(|i| {
            let off = ((i as u64 * 9) << 20) % (env.size - (8 << 20));
            let rb = env
                .req(gw, "GET", "/open/big/big.bin")
                .header("Range", format!("bytes={off}-{}", off + (8 << 20) - 1));
            async move {
                let t = Instant::now();
                let res = rb.send().await?;
                Ok(drain(t, res).await?.1)
            }
        })
        .buffer_unordered(STREAMS)
        .collect()
        .await;
    let peak = sampler.stop().await?;
    let took = t.elapsed().as_secs_f64();
    env.emu.set_switches(|s| s.cdn_rate_limit = None);
    for x in results {
        if x? != 8 << 20 {
            bail!("a stream was short");
        }
    }
    Ok((peak, took))
}

/// Measure 8: `LOAD_CLIENTS` clients, each sending one request after another for `LOAD_SECS`
/// (each stops at the deadline): 40 % PROPFIND Depth 1 of the run's 10,000-entry folder with
/// Finder's body (the load issue 16 describes), 50 % Range GETs of `LOAD_GET` bytes through the proxy at a random offset of a
/// `LOAD_FILE` file, 10 % PUTs of a new file of up to `LOAD_PUT_MAX` bytes (background upload).
/// The gateway's RSS is sampled throughout.
async fn mixed_load(env: &Env, gw: &Gateway, k: usize) -> Result<Load> {
    let secs: u64 = std::env::var("BENCH_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(LOAD_SECS);
    let finder = LIST_BODIES[3];
    // Warm: the folders listed and the twenty links fetched, as after any first use.
    env.req(gw, "PROPFIND", &format!("/open/many{k}/"))
        .header("Depth", "1")
        .send()
        .await?
        .text()
        .await?;
    for d in 0..4 {
        env.req(gw, "PROPFIND", &format!("/open/load/d{d}/"))
            .header("Depth", "1")
            .send()
            .await?
            .text()
            .await?;
        for f in 0..5 {
            env.req(gw, "GET", &format!("/open/load/d{d}/f{f}.bin"))
                .header("Range", "bytes=0-0")
                .send()
                .await?
                .bytes()
                .await?;
        }
    }
    let sampler = RssSampler::start(gw.pid(), None);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..LOAD_CLIENTS {
        let client = env.client.clone();
        let base = gw.base.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = (0u64, 0u64, 0u64, Vec::<(u8, f32)>::new());
            let mut n = 0usize;
            while Instant::now() < deadline {
                let t = Instant::now();
                let d = (c + n) % 4;
                // 4 in 10 PROPFIND, 5 in 10 GET, 1 in 10 PUT.
                let kind: u8 = match (c * 7 + n) % 10 {
                    0..=3 => 0,
                    4..=8 => 1,
                    _ => 2,
                };
                let rb = match kind {
                    0 => client
                        .request(
                            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
                            format!("{base}/open/many{k}/"),
                        )
                        .header("Depth", "1")
                        .header("User-Agent", finder.2)
                        .header("Content-Type", "application/xml; charset=utf-8")
                        .body(finder.1.unwrap_or_default()),
                    1 => {
                        let off = rand::thread_rng().gen_range(0..LOAD_FILE - LOAD_GET);
                        client
                            .get(format!("{base}/open/load/d{d}/f{}.bin", n % 5))
                            .header("Range", format!("bytes={off}-{}", off + LOAD_GET - 1))
                    }
                    _ => {
                        let len = rand::thread_rng().gen_range(1..=LOAD_PUT_MAX) as usize;
                        let mut body = vec![b'.'; len.max(64)];
                        let tag = format!("run {k} client {c} request {n}\n");
                        body[..tag.len()].copy_from_slice(tag.as_bytes());
                        client
                            .put(format!("{base}/open/load/up{k}/c{c}-{n}.txt"))
                            .body(body)
                    }
                };
                n += 1;
                let status = match rb.basic_auth(USER, Some(PASSWORD)).send().await {
                    Ok(res) => {
                        let s = res.status().as_u16();
                        match res.bytes().await {
                            Ok(_) => s,
                            Err(_) => 0,
                        }
                    }
                    Err(_) => 0,
                };
                out.0 += 1;
                if !(100..500).contains(&status) {
                    out.1 += 1;
                } else if status >= 400 {
                    out.2 += 1;
                }
                out.3.push((kind, t.elapsed().as_secs_f32() * 1e3));
            }
            out
        }));
    }
    let mut load = Load::default();
    let mut lat = Vec::new();
    let mut by_kind = [Vec::new(), Vec::new(), Vec::new()];
    for t in tasks {
        let (r, e, c, l) = t.await?;
        load.requests += r;
        load.errors += e;
        load.client_errors += c;
        for (kind, ms) in l {
            lat.push(f64::from(ms));
            by_kind[usize::from(kind)].push(f64::from(ms));
        }
    }
    load.secs = started.elapsed().as_secs_f64();
    load.rss_peak = sampler.stop().await?;
    for (i, v) in by_kind.iter().enumerate() {
        load.p50_kind[i] = median(v);
        load.p99_kind[i] = pct(v, 99.0);
    }
    for (name, v) in ["PROPFIND", "GET", "PUT"].iter().zip(&by_kind) {
        eprintln!(
            "  load {name}: {} requests, p50 {:.1} ms, p99 {:.1} ms",
            v.len(),
            median(v),
            pct(v, 99.0)
        );
    }
    load.p50_ms = median(&lat);
    load.p99_ms = pct(&lat, 99.0);
    Ok(load)
}

async fn one_run(env: &Env, k: usize, tree_dir: &Path) -> Result<Run> {
    let mut r = Run::default();
    let api = Api::new(&env.emu, &env.client).await?;
    let cdn = api.download_url(env.big_id).await?;
    let gw = env.gateway().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    r.rss_idle = status_mib(gw.pid(), "VmRSS:");
    eprintln!("run {k}: idle RSS {:.1} MiB", r.rss_idle);

    // warm the link cache
    env.req(&gw, "GET", "/open/big/big.bin")
        .header("Range", "bytes=0-0")
        .send()
        .await?
        .error_for_status()?;

    // (5) memory under 100 concurrent proxy streams of 8 MiB each, CDN capped at 8 MB/s each
    (r.rss_peak, r.rss_took) = stream_memory(env, &gw, STREAM_RATE, None).await?;
    (r.rss_peak_burst, r.rss_took_burst) = stream_memory(env, &gw, STREAM_RATE_BURST, None).await?;
    eprintln!(
        "run {k}: peak RSS {:.1} MiB ({:.2}s), at 8 MB/s {:.1} MiB ({:.2}s)",
        r.rss_peak, r.rss_took, r.rss_peak_burst, r.rss_took_burst
    );

    // (1a) capped throughput
    env.emu.set_switches(|s| s.cdn_rate_limit = Some(CAP));
    r.tp_capped_direct = throughput(env, env.client.get(&cdn)).await?;
    r.tp_capped_proxy = throughput(env, env.req(&gw, "GET", "/open/big/big.bin")).await?;
    // (1b) uncapped
    env.emu.set_switches(|s| s.cdn_rate_limit = None);
    r.tp_direct = throughput(env, env.client.get(&cdn)).await?;
    let c0 = cpu_seconds(gw.pid());
    r.tp_proxy = throughput(env, env.req(&gw, "GET", "/open/big/big.bin")).await?;
    let c1 = cpu_seconds(gw.pid());
    r.cpu_per_gib = (c1 - c0) / (env.size as f64 / (1u64 << 30) as f64);
    eprintln!(
        "run {k}: capped {:.1}/{:.1} MB/s, uncapped {:.1}/{:.1} MB/s, {:.2} CPU s/GiB",
        r.tp_capped_proxy, r.tp_capped_direct, r.tp_proxy, r.tp_direct, r.cpu_per_gib
    );

    // (2) seeks
    (r.seek_med_direct, r.seek_p99_direct) = seeks(env, || env.client.get(&cdn)).await?;
    (r.seek_med_proxy, r.seek_p99_proxy) =
        seeks(env, || env.req(&gw, "GET", "/open/big/big.bin")).await?;
    eprintln!(
        "run {k}: seek median {:.2}/{:.2} ms p99 {:.2}/{:.2} ms",
        r.seek_med_proxy, r.seek_med_direct, r.seek_p99_proxy, r.seek_p99_direct
    );

    // (3) listing: cold (its own folder per run), then warm; peers over the same names
    env.emu.reset_stats();
    let t = Instant::now();
    propfind_time(
        &env.client,
        &format!("{}/open/many{k}/", gw.base),
        true,
        None,
        "pan123-bench",
    )
    .await?;
    r.list_cold_s = t.elapsed().as_secs_f64();
    r.list_cold_calls = env.emu.stats().calls("/api/v2/file/list");
    r.list_warm = warm_list(&env.client, &format!("{}/open/many{k}/", gw.base), true).await?;
    r.list_rclone = peer_list(env, tree_dir, "rclone")
        .await
        .unwrap_or([f64::NAN; 5]);
    r.list_dufs = peer_list(env, tree_dir, "dufs")
        .await
        .unwrap_or([f64::NAN; 5]);
    eprintln!(
        "run {k}: list warm {:?}s rclone {:?}s dufs {:?}s cold {:.1}s/{} calls",
        r.list_warm, r.list_rclone, r.list_dufs, r.list_cold_s, r.list_cold_calls
    );

    // (5) redirect rate
    env.req(&gw, "GET", "/redir/big/big.bin").send().await?;
    let auth = format!(
        "Basic {}",
        base64_encode(format!("{USER}:{PASSWORD}").as_bytes())
    );
    r.redirect_gw = wrk(&format!("{}/redir/big/big.bin", gw.base), Some(&auth))?;
    {
        let port = free_port();
        let _bare = Proc(
            Command::new(&env.exe)
                .args(["redirect-server", &port.to_string(), &cdn])
                .spawn()?,
        );
        wait_http(&env.client, &format!("http://127.0.0.1:{port}/")).await?;
        r.redirect_bare = wrk(&format!("http://127.0.0.1:{port}/x"), Some(&auth))?;
    }
    eprintln!(
        "run {k}: redirects {:.0}/s vs bare {:.0}/s",
        r.redirect_gw, r.redirect_bare
    );

    // (6) upload: PUT until the file is complete in the emulator, vs the floor
    {
        let size = env.size as usize;
        let mut data = vec![0u8; size];
        rand::thread_rng().fill(&mut data[..]);
        let data = bytes::Bytes::from(data);
        let t = Instant::now();
        {
            use std::io::Write;
            let p = env.work.path().join("local.bin");
            let mut f = std::fs::File::create(&p)?;
            f.write_all(&data)?;
            f.sync_all()?;
            let _ = std::fs::remove_file(&p);
        }
        r.up_local = t.elapsed().as_secs_f64();
        (r.up_answer, r.up_complete) =
            put_until_complete(env, &gw, &format!("up{k}.bin"), data.clone()).await?;
        // Other bytes (one flipped) so that 123's instant upload does not apply to the floor.
        let mut other = data.to_vec();
        other[0] ^= 0xff;
        r.up_floor = upload_floor(env, &api, &other, &format!("floor{k}.bin")).await?;
        eprintln!(
            "run {k}: upload answered {:.2}s complete {:.2}s floor {:.2}s local {:.2}s",
            r.up_answer, r.up_complete, r.up_floor, r.up_local
        );
    }

    // (7) API economy: a media-player session on a cold folder, and rclone lsjson -R of 50 folders
    {
        // The mount root is listed already (as by any client that got here); the session starts
        // with the film's folder.
        env.req(&gw, "PROPFIND", "/open/")
            .header("Depth", "1")
            .send()
            .await?
            .text()
            .await?;
        env.emu.reset_stats();
        let film = format!("/open/film{k}");
        let res = env
            .req(&gw, "PROPFIND", &format!("{film}/"))
            .header("Depth", "1")
            .send()
            .await?;
        res.text().await?;
        let path = format!("{film}/film.mkv");
        let res = env
            .req(&gw, "GET", &path)
            .header("Range", "bytes=0-65535")
            .send()
            .await?;
        res.bytes().await?;
        for _ in 0..20 {
            let off = rand::thread_rng().gen_range(0..(64u64 << 20) - 65536);
            let res = env
                .req(&gw, "GET", &path)
                .header("Range", format!("bytes={off}-{}", off + 65535))
                .send()
                .await?;
            res.bytes().await?;
        }
        r.eco_player = env.api_calls();
        env.emu.reset_stats();
        let out = Command::new("timeout")
            .args(["120", "rclone", "lsjson", "-R", "--config", "/dev/null"])
            .arg(format!(":webdav:/open/tree{k}"))
            .arg(format!("--webdav-url={}", gw.base))
            .arg(format!("--webdav-user={USER}"))
            .arg(format!("--webdav-pass={}", rclone_obscure(PASSWORD)?))
            .output()?;
        if !out.status.success() {
            bail!("rclone lsjson: {}", String::from_utf8_lossy(&out.stderr));
        }
        r.eco_rclone = env.api_calls();
        eprintln!(
            "run {k}: API calls player {} rclone lsjson {}",
            r.eco_player, r.eco_rclone
        );
    }

    // (8) mixed load
    r.load = mixed_load(env, &gw, k).await?;
    eprintln!(
        "run {k}: load {} requests in {:.1}s = {:.0}/s, {} errors, {} 4xx, p50 {:.1} ms p99 {:.1} ms",
        r.load.requests,
        r.load.secs,
        r.load.requests as f64 / r.load.secs,
        r.load.errors,
        r.load.client_errors,
        r.load.p50_ms,
        r.load.p99_ms
    );
    Ok(r)
}

fn rclone_obscure(p: &str) -> Result<String> {
    let out = Command::new("rclone").args(["obscure", p]).output()?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn base64_encode(b: &[u8]) -> String {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Warm PROPFIND Depth 1 of the same 10,000 names served by a peer from local disk.
async fn peer_list(env: &Env, dir: &Path, which: &str) -> Result<[f64; 5]> {
    let port = free_port();
    let mut cmd = match which {
        "rclone" => {
            let mut c = Command::new("rclone");
            c.args(["serve", "webdav", "--config", "/dev/null", "--addr"])
                .arg(format!("127.0.0.1:{port}"))
                .arg(dir);
            c
        }
        _ => {
            let mut c = Command::new(dufs_path().ok_or_else(|| anyhow!("no dufs"))?);
            c.args(["-b", "127.0.0.1", "-p", &port.to_string()])
                .arg(dir);
            c
        }
    };
    let _p = Proc(cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?);
    wait_http(&env.client, &format!("http://127.0.0.1:{port}/")).await?;
    warm_list(&env.client, &format!("http://127.0.0.1:{port}/"), false).await
}

fn dufs_path() -> Option<PathBuf> {
    let home = std::env::var("HOME").unwrap_or_default();
    for p in [
        format!("{home}/.cargo/bin/dufs"),
        "/usr/local/bin/dufs".into(),
    ] {
        if Path::new(&p).exists() {
            return Some(p.into());
        }
    }
    None
}

// ---------------------------------------------------------------- report

fn spread(v: &[f64]) -> (f64, f64, f64) {
    let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
    let max = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    (median(v), min, max)
}

fn fmt3(v: &[f64], d: usize) -> String {
    let (m, lo, hi) = spread(v);
    format!("{m:.d$} ({lo:.d$}–{hi:.d$})")
}

fn cmd_out(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|_| "not installed".into())
}

/// Measure 3 alone, `BENCH_REDIRECT_ROUNDS` times (3 by default), for profiling.
async fn redirect_loop() -> Result<()> {
    let env = setup(1, 0).await?;
    let gw = env.gateway().await?;
    let api = Api::new(&env.emu, &env.client).await?;
    let cdn = api.download_url(env.big_id).await?;
    env.req(&gw, "GET", "/redir/big/big.bin").send().await?;
    let auth = format!(
        "Basic {}",
        base64_encode(format!("{USER}:{PASSWORD}").as_bytes())
    );
    let port = free_port();
    let _bare = Proc(
        Command::new(&env.exe)
            .args(["redirect-server", &port.to_string(), &cdn])
            .spawn()?,
    );
    wait_http(&env.client, &format!("http://127.0.0.1:{port}/")).await?;
    eprintln!("gateway pid {}", gw.pid());
    let rounds: usize = std::env::var("BENCH_REDIRECT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    for _ in 0..rounds {
        let g = wrk(&format!("{}/redir/big/big.bin", gw.base), Some(&auth))?;
        let b = wrk(&format!("http://127.0.0.1:{port}/x"), Some(&auth))?;
        eprintln!("redirects/s gateway {g:.0} bare {b:.0}: {:.3}", g / b);
    }
    // BENCH_REDIRECT_HOLD = seconds to keep both servers up afterwards, for profiling by hand.
    if let Some(secs) = std::env::var("BENCH_REDIRECT_HOLD")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        eprintln!(
            "holding {secs} s: gateway {}/redir/big/big.bin (pid {}), bare http://127.0.0.1:{port}/x",
            gw.base,
            gw.pid()
        );
        tokio::time::sleep(Duration::from_secs(secs.min(3600))).await;
    }
    Ok(())
}

async fn list_loop() -> Result<()> {
    let env = setup(1, 1).await?;
    let gw = env.gateway().await?;
    let url = format!("{}/open/many1/", gw.base);
    // BENCH_LIST_BODY = an index into LIST_BODIES (0, no body, by default).
    let (label, body, ua) = std::env::var("BENCH_LIST_BODY")
        .ok()
        .and_then(|i| i.parse::<usize>().ok())
        .and_then(|i| LIST_BODIES.get(i).copied())
        .unwrap_or(LIST_BODIES[0]);
    propfind_time(&env.client, &url, true, body, ua).await?;
    eprintln!("gateway pid {}; body: {label}", gw.pid());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut v = Vec::new();
    for _ in 0..30 {
        v.push(propfind_time(&env.client, &url, true, body, ua).await?);
    }
    eprintln!("median {:.3}s", median(&v));
    Ok(())
}

async fn mem_loop(n: usize) -> Result<()> {
    let env = setup(256, 0).await?;
    for i in 0..n {
        let gw = env.gateway().await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let idle = status_mib(gw.pid(), "VmRSS:");
        env.req(&gw, "GET", "/open/big/big.bin")
            .header("Range", "bytes=0-0")
            .send()
            .await?
            .error_for_status()?;
        let dump = std::env::temp_dir().join(format!("gw-smaps-{i}.txt"));
        // As in a run: the sustainable rate, then the overload, on the same gateway.
        let (peak, took) = stream_memory(&env, &gw, STREAM_RATE, Some(&dump)).await?;
        let (burst, burst_took) = stream_memory(&env, &gw, STREAM_RATE_BURST, None).await?;
        eprintln!(
            "{STREAMS} streams: at {STREAM_RATE} B/s {peak:.1} MiB ({took:.2}s), then at {STREAM_RATE_BURST} B/s {burst:.1} MiB ({burst_took:.2}s)"
        );
        let threads = std::fs::read_dir(format!("/proc/{}/task", gw.pid()))?.count();
        eprintln!(
            "idle {idle:.1} MiB, peak {peak:.1} MiB, {threads} threads, smaps at the peak: {}",
            dump.display()
        );
    }
    Ok(())
}

/// Measure 1b alone, `n` rounds (at most 20) on one gateway: the whole test file
/// (`BENCH_SIZE_MIB`, 1024 by default) straight from the CDN, then through the proxy, uncapped,
/// with the gateway's CPU seconds per GiB.
async fn throughput_loop(n: usize) -> Result<()> {
    let size_mib: u64 = std::env::var("BENCH_SIZE_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    let env = setup(size_mib, 0).await?;
    let gw = env.gateway().await?;
    let api = Api::new(&env.emu, &env.client).await?;
    let cdn = api.download_url(env.big_id).await?;
    eprintln!("gateway pid {}", gw.pid());
    for _ in 0..n.min(20) {
        let direct = throughput(&env, env.client.get(&cdn)).await?;
        let c0 = cpu_seconds(gw.pid());
        let proxy = throughput(&env, env.req(&gw, "GET", "/open/big/big.bin")).await?;
        let cpu = (cpu_seconds(gw.pid()) - c0) / (env.size as f64 / (1u64 << 30) as f64);
        eprintln!(
            "uncapped MB/s proxy {proxy:.0} direct {direct:.0}: {:.3}, {cpu:.2} CPU s/GiB",
            proxy / direct
        );
    }
    Ok(())
}

async fn load_loop() -> Result<()> {
    let env = setup(1, 1).await?;
    let gw = env.gateway().await?;
    let l = mixed_load(&env, &gw, 1).await?;
    eprintln!(
        "{} requests in {:.1}s = {:.0}/s, {} errors, {} 4xx, p50 {:.1} ms p99 {:.1} ms, gateway peak RSS {:.1} MiB",
        l.requests,
        l.secs,
        l.requests as f64 / l.secs,
        l.errors,
        l.client_errors,
        l.p50_ms,
        l.p99_ms,
        status_mib(gw.pid(), "VmHWM:")
    );
    Ok(())
}

async fn run_all(out: &Path) -> Result<()> {
    let began = Instant::now();
    let size_mib: u64 = std::env::var("BENCH_SIZE_MIB")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1024);
    // Named before anything runs: the commit measured is the one built.
    let code = Code::now();
    let env = setup(size_mib, RUNS).await?;
    let tree_dir = env.work.path().join("names");
    std::fs::create_dir_all(&tree_dir)?;
    for i in 1..=LIST_N {
        std::fs::write(tree_dir.join(format!("entry-{i:05}.txt")), "x")?;
    }
    let mut runs = Vec::new();
    for k in 1..=RUNS {
        runs.push(one_run(&env, k, &tree_dir).await?);
    }
    let scale = if scale_enabled() {
        Some(scale(&env).await?)
    } else {
        None
    };
    // The hand-written section of the previous report is kept as it was.
    let previous = std::fs::read_to_string(out).unwrap_or_default();
    let hand = previous
        .find(HAND_WRITTEN)
        .map(|i| previous[i..].to_string());
    let minutes = began.elapsed().as_secs_f64() / 60.0;
    std::fs::write(
        out,
        report(
            &runs,
            scale.as_ref(),
            size_mib,
            &code,
            minutes,
            hand.as_deref(),
        ),
    )?;
    eprintln!("wrote {} ({minutes:.1} minutes)", out.display());
    Ok(())
}

/// Measure 9 runs unless `BENCH_SCALE=0` (it adds a cold listing of 100,000 entries, about
/// 250 s at 4 list calls per second: 123's 5 at the default `server.qps_scale` of 0.8).
fn scale_enabled() -> bool {
    std::env::var("BENCH_SCALE").map_or(true, |v| v != "0")
}

/// The folder sizes of measure 9 and their paths under `/open` (10,000 is run 1's folder).
const SCALE: [(usize, &str); 3] = [
    (1_000, "scale1k"),
    (10_000, "many1"),
    (100_000, "scale100k"),
];

/// Measure 9: how listing cost grows with the folder.
struct Scale {
    /// Warm PROPFIND microseconds per entry: [no body, Finder's body] × `SCALE`.
    per_entry_us: [[f64; 3]; 2],
    /// The gateway's RSS before the 100,000-entry answers and its peak during them (MiB).
    rss_before: f64,
    rss_peak: f64,
}

/// Measure 9, once, on a fresh gateway: each `SCALE` folder listed cold, then the median of 5
/// warm PROPFINDs per size without a body and with Finder's, the RSS sampled during the
/// 100,000-entry ones.
async fn scale(env: &Env) -> Result<Scale> {
    let gw = env.gateway().await?;
    let mut out = Scale {
        per_entry_us: [[f64::NAN; 3]; 2],
        rss_before: f64::NAN,
        rss_peak: f64::NAN,
    };
    for (j, (n, dir)) in SCALE.iter().enumerate() {
        let url = format!("{}/open/{dir}/", gw.base);
        // Cold: fills the listing cache (paced at 123's rate). A listing longer than the
        // request's `upstream_deadline` (30 s; the 100,000 take about 250 s) is answered 503
        // with Retry-After while the fetch goes on: asked again as a client would, at most 600 s.
        let started = Instant::now();
        loop {
            let res = env
                .client
                .request(reqwest::Method::from_bytes(b"PROPFIND")?, &url)
                .basic_auth(USER, Some(PASSWORD))
                .header("Depth", "1")
                .send()
                .await?;
            if res.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE
                || started.elapsed() > Duration::from_secs(600)
            {
                res.error_for_status()?.bytes().await?;
                break;
            }
            let wait = res
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(5)
                .clamp(1, 30);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
        propfind_n(&env.client, &url, true, None, "pan123-bench", *n).await?;
        let sampler = (*n == 100_000).then(|| {
            out.rss_before = status_mib(gw.pid(), "VmRSS:");
            RssSampler::start(gw.pid(), None)
        });
        for (b, body) in [LIST_BODIES[0], LIST_BODIES[3]].iter().enumerate() {
            let mut v = Vec::new();
            for _ in 0..5 {
                v.push(propfind_n(&env.client, &url, true, body.1, body.2, *n).await?);
            }
            out.per_entry_us[b][j] = median(&v) * 1e6 / *n as f64;
        }
        if let Some(s) = sampler {
            out.rss_peak = s.stop().await?;
        }
        eprintln!(
            "scale {n}: {:.2} / {:.2} µs per entry (no body / Finder's)",
            out.per_entry_us[0][j], out.per_entry_us[1][j]
        );
    }
    Ok(out)
}

/// The code a report measured: the commit, whether the tree had uncommitted changes (outside
/// BENCHMARKS.md), and the last commit that changed `src/`.
struct Code {
    commit: String,
    dirty: bool,
    date: String,
}

impl Code {
    fn now() -> Self {
        let commit = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
        let dirty = git(&[
            "status",
            "--porcelain",
            "--untracked-files=no",
            "--",
            ".",
            ":!BENCHMARKS.md",
        ])
        .is_some_and(|s| !s.is_empty());
        let date = cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
        Self {
            commit,
            dirty,
            date,
        }
    }

    /// The report's first line, as written by the run.
    fn first_line(&self) -> String {
        format!(
            "Measured on commit `{}`{} ({}), by `./bench/run`.",
            self.commit,
            if self.dirty {
                " (dirty: with uncommitted changes)"
            } else {
                ""
            },
            self.date
        )
    }
}

/// `git` in the current directory: its trimmed output, `None` when it fails.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `pan123-bench freshness BENCHMARKS.md`: when `src/` changed after the commit the report
/// measured, its first line says so (rewritten in place; a current report is left alone).
/// `.ci/run` runs it, so a report never looks newer than it is.
fn freshness(path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let measured = first
        .split_once("commit `")
        .and_then(|(_, r)| r.split_once('`'))
        .map(|(c, _)| c.to_string())
        .ok_or_else(|| {
            anyhow!(
                "{}: the first line names no measured commit",
                path.display()
            )
        })?;
    let changed = git(&[
        "log",
        "--format=%h",
        &format!("{measured}..HEAD"),
        "--",
        "src/",
    ]);
    let last = match changed {
        // An unknown commit (rebased away): nothing says the report is current.
        None => Some("an unknown commit".to_string()),
        Some(list) => list.lines().next().map(|c| format!("`{c}`")),
    };
    let Some(last) = last else {
        println!("{}: current (measured {measured})", path.display());
        return Ok(());
    };
    let stale = format!(
        "**Older than the code:** measured on commit `{measured}`; `src/` has changed since (last in {last}). Re-run `./bench/run` for figures of the current code."
    );
    if first == stale {
        println!("{}: older than the code (already marked)", path.display());
        return Ok(());
    }
    // The original first line stays, second.
    let original = if first.starts_with("**Older than the code:**") {
        String::new()
    } else {
        format!("{first}\n")
    };
    std::fs::write(path, format!("{stale}\n{original}{rest}"))?;
    println!("{}: marked older than the code", path.display());
    Ok(())
}

async fn setup(size_mib: u64, runs: usize) -> Result<Env> {
    let size = size_mib << 20;
    let exe = std::env::current_exe()?;
    let gateway_exe = exe.with_file_name(GATEWAY);
    if !gateway_exe.is_file() {
        bail!(
            "{} is missing: build the whole bench package (cd bench && cargo build --release)",
            gateway_exe.display()
        );
    }
    let work = tempfile::tempdir()?;
    let hash = {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        argon2::Argon2::default()
            .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
            .map_err(|e| anyhow!("{e}"))?
            .to_string()
    };
    let mut cfg = EmulatorConfig::default();
    cfg.switches.complete_pending_polls = 0;
    cfg.switches.complete_poll_interval = Duration::ZERO;
    cfg.temp_dir = Some(work.path().join("emu"));
    let emu = Emulator::start(cfg).await?;
    eprintln!("seeding the emulator ({size_mib} MiB file, 3 × {LIST_N} names)…");
    let big_id = emu.put_generated_file("/big/big.bin", size, 7);
    let names: Vec<String> = (1..=LIST_N).map(|i| format!("entry-{i:05}.txt")).collect();
    for k in 1..=runs {
        for n in &names {
            emu.put_file(&format!("/many{k}/{n}"), "x");
        }
        emu.put_generated_file(&format!("/film{k}/film.mkv"), 64 << 20, 100 + k as u64);
        for f in 0..50 {
            for j in 0..3 {
                emu.put_file(&format!("/tree{k}/d{f:02}/f{j}.txt"), "y");
            }
        }
    }
    if scale_enabled() {
        for (dir, n) in [("scale1k", 1_000), ("scale100k", 100_000)] {
            emu.put_files(
                &format!("/{dir}"),
                (1..=n).map(|i| (format!("entry-{i:06}.txt"), bytes::Bytes::from_static(b"x"))),
            );
        }
    }
    for d in 0..4 {
        for f in 0..5 {
            emu.put_generated_file(
                &format!("/load/d{d}/f{f}.bin"),
                LOAD_FILE,
                1000 + d * 10 + f,
            );
        }
        for f in 0..45 {
            emu.put_file(&format!("/load/d{d}/small{f:02}.txt"), "s");
        }
    }
    for k in 1..=runs {
        emu.mkdir_p(&format!("/load/up{k}"));
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(256)
        .build()?;
    Ok(Env {
        emu,
        client,
        hash,
        exe,
        gateway_exe,
        work,
        big_id,
        size,
    })
}

/// A row's goal, from the issues that set them.
#[derive(Clone, Copy)]
enum Goal {
    AtLeast(f64),
    AtMost(f64),
    /// No goal: the figure is reported.
    Reported,
}

impl Goal {
    fn text(self) -> String {
        match self {
            Goal::AtLeast(g) => format!("≥ {g}"),
            Goal::AtMost(g) => format!("≤ {g}"),
            Goal::Reported => "–".into(),
        }
    }

    /// "yes", by how much the median misses, or "reported".
    fn verdict(self, m: f64) -> String {
        let miss = |by: f64| format!("**no**, missed by {:.0} %", by * 100.0);
        match self {
            Goal::AtLeast(g) if m >= g => "yes".into(),
            Goal::AtLeast(g) => miss((g - m) / g),
            Goal::AtMost(g) if m <= g => "yes".into(),
            Goal::AtMost(0.0) => format!("**no**: {m}"),
            Goal::AtMost(g) => miss((m - g) / g),
            Goal::Reported => "reported".into(),
        }
    }
}

fn report(
    runs: &[Run],
    scale: Option<&Scale>,
    size_mib: u64,
    code: &Code,
    minutes: f64,
    hand: Option<&str>,
) -> String {
    let col = |f: &dyn Fn(&Run) -> f64| -> Vec<f64> { runs.iter().map(f).collect() };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    // The floor is the pace the gateway is allowed: 123's 5 list calls per second at the
    // default `server.qps_scale` (the bench config leaves it unset), not 123's bare limit.
    let list_qps = 5.0 * pan123_webdav::config::DEFAULT_QPS_SCALE;
    let floor_s = (LIST_N as f64 / 100.0).ceil() / list_qps;
    let cold_label = format!(
        "4 cold PROPFIND 10,000: wall time ÷ floor (100 calls at {list_qps} QPS, 123's 5 at the \
         default qps_scale {}, = {floor_s:.0} s)",
        pan123_webdav::config::DEFAULT_QPS_SCALE
    );
    let mut rows: Vec<(String, String, Goal, f64)> = Vec::new();
    let mut row = |name: &str, v: Vec<f64>, d: usize, goal: Goal| {
        rows.push((name.to_string(), fmt3(&v, d), goal, median(&v)));
    };
    row(
        "1a throughput, CDN capped at 40 MB/s: proxy ÷ direct",
        col(&|r| r.tp_capped_proxy / r.tp_capped_direct),
        3,
        Goal::AtLeast(0.97),
    );
    row(
        "1b throughput, uncapped loopback: proxy ÷ direct",
        col(&|r| r.tp_proxy / r.tp_direct),
        3,
        Goal::AtLeast(0.8),
    );
    row(
        "1b gateway CPU seconds per GiB (proxy)",
        col(&|r| r.cpu_per_gib),
        2,
        Goal::AtMost(1.0),
    );
    row(
        "2 seek TTFB added at the median (ms)",
        col(&|r| r.seek_med_proxy - r.seek_med_direct),
        2,
        Goal::AtMost(1.0),
    );
    row(
        "2 seek TTFB added at p99 (ms)",
        col(&|r| r.seek_p99_proxy - r.seek_p99_direct),
        2,
        Goal::AtMost(5.0),
    );
    row(
        "3 redirect rate: gateway ÷ bare hyper 302 (wrk, 64 conns)",
        col(&|r| r.redirect_gw / r.redirect_bare),
        3,
        Goal::AtLeast(0.7),
    );
    for (i, (label, _, _)) in LIST_BODIES.iter().enumerate() {
        row(
            &format!("4 warm PROPFIND 10,000, {label} body: gateway ÷ rclone serve webdav"),
            col(&|r| r.list_warm[i] / r.list_rclone[i]),
            3,
            Goal::AtMost(0.5),
        );
    }
    if runs
        .iter()
        .all(|r| r.list_dufs.iter().all(|x| x.is_finite()))
    {
        for (i, (label, _, _)) in LIST_BODIES.iter().enumerate() {
            row(
                &format!("4 warm PROPFIND 10,000, {label} body: gateway ÷ dufs"),
                col(&|r| r.list_warm[i] / r.list_dufs[i]),
                3,
                Goal::Reported,
            );
        }
    }
    row(
        &cold_label,
        col(&|r| r.list_cold_s / floor_s),
        3,
        Goal::AtMost(1.1),
    );
    row(
        "4 cold list calls ÷ ceil(n/100)",
        col(&|r| r.list_cold_calls as f64 / (LIST_N as f64 / 100.0).ceil()),
        2,
        Goal::AtMost(1.1),
    );
    row(
        "5 idle RSS (MiB)",
        col(&|r| r.rss_idle),
        1,
        Goal::AtMost(12.0),
    );
    row(
        "5 peak RSS, 100 concurrent proxy streams at 2 MB/s each (MiB)",
        col(&|r| r.rss_peak),
        1,
        Goal::AtMost(48.0),
    );
    row(
        "5 peak RSS, then 100 streams at 8 MB/s each (MiB)",
        col(&|r| r.rss_peak_burst),
        1,
        Goal::AtMost(48.0),
    );
    row(
        &format!("6 upload {size_mib} MiB: PUT until complete ÷ floor"),
        col(&|r| r.up_complete / r.up_floor),
        2,
        Goal::AtMost(1.3),
    );
    row(
        "6 upload: PUT answered (background) ÷ local write+fsync",
        col(&|r| r.up_answer / r.up_local),
        2,
        Goal::Reported,
    );
    row(
        "7 media-player session: API calls ÷ minimum (2)",
        col(&|r| r.eco_player as f64 / 2.0),
        2,
        Goal::AtMost(1.0),
    );
    row(
        "7 rclone lsjson -R of 50 folders: API calls ÷ minimum (51)",
        col(&|r| r.eco_rclone as f64 / 51.0),
        2,
        Goal::AtMost(1.0),
    );
    let load_secs = median(&col(&|r| r.load.secs));
    row(
        &format!("8 mixed load, {LOAD_CLIENTS} clients for {load_secs:.0} s: requests per second"),
        col(&|r| r.load.requests as f64 / r.load.secs),
        0,
        Goal::Reported,
    );
    row(
        "8 mixed load: errors (5xx or failed requests)",
        col(&|r| r.load.errors as f64),
        0,
        Goal::AtMost(0.0),
    );
    row(
        "8 mixed load: gateway peak RSS (MiB)",
        col(&|r| r.load.rss_peak),
        1,
        Goal::AtMost(96.0),
    );
    row(
        "8 mixed load: PUT p50 (ms)",
        col(&|r| r.load.p50_kind[2]),
        0,
        Goal::AtMost(150.0),
    );
    row(
        "8 mixed load: PUT p99 (ms)",
        col(&|r| r.load.p99_kind[2]),
        0,
        Goal::AtMost(1000.0),
    );

    if let Some(sc) = scale {
        for (b, label) in ["no", "Finder's"].iter().enumerate() {
            let v = sc.per_entry_us[b];
            let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
            let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            row(
                &format!("9 warm PROPFIND, {label} body, of 1,000 / 10,000 / 100,000 entries: highest ÷ lowest time per entry (once)"),
                vec![hi / lo],
                2,
                Goal::AtMost(1.5),
            );
        }
        row(
            "9 RSS growth during 100,000-entry answers (MiB, once)",
            vec![sc.rss_peak - sc.rss_before],
            1,
            Goal::Reported,
        );
    }

    let mut s = String::new();
    s.push_str(&code.first_line());
    s.push_str("\n\n# Benchmarks\n\n");
    s.push_str(&format!(
        "Written by `./bench/run`: every figure and every sentence above the hand-written section comes from the run it describes ({RUNS} runs, {minutes:.0} minutes in all). Each figure is a ratio against a reference measured in the same run on the same machine, or an absolute figure where the goal is one; the value is the median of the {RUNS} runs with the (min–max) spread.\n\n"
    ));
    s.push_str(&format!(
        "## Machine\n\n* CPUs: {} × {cpu}\n* {mem}\n* kernel: {}\n* rustc: {}\n* wrk: {}\n* rclone: {}\n* dufs: {}\n* test file: {size_mib} MiB (generated by the emulator)\n* gateway: commit `{}`{}\n\n",
        cmd_out("nproc", &[]),
        cmd_out("uname", &["-r"]),
        cmd_out("rustc", &["--version"]),
        Command::new("wrk").arg("-v").output().map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").split(" Copyright").next().unwrap_or("").to_string()).unwrap_or_default(),
        cmd_out("rclone", &["version"]),
        dufs_path().map(|p| cmd_out(&p.display().to_string(), &["--version"])).unwrap_or_else(|| "not installed".into()),
        code.commit,
        if code.dirty { ", with uncommitted changes" } else { "" },
    ));
    s.push_str(
        "## Results\n\n| measure | value: median (min–max) | goal | met |\n|---|---|---|---|\n",
    );
    for (n, v, g, m) in &rows {
        s.push_str(&format!(
            "| {n} | {v} | {} | {} |\n",
            g.text(),
            g.verdict(*m)
        ));
    }
    s.push_str("\n## Raw figures per run\n\n| run | capped MB/s proxy / direct | uncapped MB/s proxy / direct | seek median ms proxy / direct | seek p99 ms proxy / direct | redirects/s gateway / bare | cold list s / calls | RSS MiB idle / peak (streams s) / peak at 8 MB/s (s) | upload s answered / complete / floor / local write | API calls player / rclone | load requests / s / errors / 4xx / p50 / p99 ms / peak RSS MiB | load p50 / p99 ms PROPFIND, GET, PUT |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (i, r) in runs.iter().enumerate() {
        s.push_str(&format!(
            "| {} | {:.1} / {:.1} | {:.0} / {:.0} | {:.2} / {:.2} | {:.2} / {:.2} | {:.0} / {:.0} | {:.1} / {} | {:.1} / {:.1} ({:.1}) / {:.1} ({:.1}) | {:.2} / {:.2} / {:.2} / {:.2} | {} / {} | {} / {:.1} / {} / {} / {:.1} / {:.0} / {:.1} | {:.0} / {:.0}, {:.0} / {:.0}, {:.0} / {:.0} |\n",
            i + 1,
            r.tp_capped_proxy, r.tp_capped_direct, r.tp_proxy, r.tp_direct,
            r.seek_med_proxy, r.seek_med_direct, r.seek_p99_proxy, r.seek_p99_direct,
            r.redirect_gw, r.redirect_bare,
            r.list_cold_s, r.list_cold_calls, r.rss_idle, r.rss_peak, r.rss_took, r.rss_peak_burst, r.rss_took_burst,
            r.up_answer, r.up_complete, r.up_floor, r.up_local, r.eco_player, r.eco_rclone,
            r.load.requests, r.load.secs, r.load.errors, r.load.client_errors, r.load.p50_ms,
            r.load.p99_ms, r.load.rss_peak,
            r.load.p50_kind[0], r.load.p99_kind[0],
            r.load.p50_kind[1], r.load.p99_kind[1],
            r.load.p50_kind[2], r.load.p99_kind[2],
        ));
    }
    s.push_str("\n## Warm listings per request body (seconds, median of 5)\n\n| run | body | gateway | rclone serve webdav | dufs |\n|---|---|---|---|---|\n");
    for (i, r) in runs.iter().enumerate() {
        for (j, (label, _, _)) in LIST_BODIES.iter().enumerate() {
            s.push_str(&format!(
                "| {} | {label} | {:.3} | {:.3} | {:.3} |\n",
                i + 1,
                r.list_warm[j],
                r.list_rclone[j],
                r.list_dufs[j]
            ));
        }
    }
    if let Some(sc) = scale {
        s.push_str("\n## Listing cost by folder size (measure 9, once)\n\n| body | µs per entry at 1,000 | at 10,000 | at 100,000 |\n|---|---|---|---|\n");
        for (b, label) in ["none", "Finder's"].iter().enumerate() {
            let v = sc.per_entry_us[b];
            s.push_str(&format!(
                "| {label} | {:.2} | {:.2} | {:.2} |\n",
                v[0], v[1], v[2]
            ));
        }
        s.push_str(&format!(
            "\nGateway RSS before the 100,000-entry answers {:.1} MiB, peak during them {:.1} MiB.\n",
            sc.rss_before, sc.rss_peak
        ));
    }
    s.push_str(&method(runs, size_mib));
    s.push('\n');
    s.push_str(hand.unwrap_or(HAND_WRITTEN_EMPTY));
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The hand-written section of a first report.
const HAND_WRITTEN_EMPTY: &str = "## Findings (written by hand)\n\nNothing yet. Findings from investigations go here, each dated and with the commands that reproduce its figures; `./bench/run` keeps this section as it is.\n";

/// How each figure is measured; the few figures in it come from `runs`.
fn method(runs: &[Run], size_mib: u64) -> String {
    let (_, took_lo, took_hi) = spread(&runs.iter().map(|r| r.rss_took).collect::<Vec<_>>());
    let (_, burst_lo, burst_hi) =
        spread(&runs.iter().map(|r| r.rss_took_burst).collect::<Vec<_>>());
    let allowed = (8u64 << 20) as f64 / STREAM_RATE as f64;
    let allowed_burst = (8u64 << 20) as f64 / STREAM_RATE_BURST as f64;
    let bodies = LIST_BODIES
        .iter()
        .map(|(l, _, ua)| format!("{l} (User-Agent `{ua}`)"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
## Method

One process (`pan123-bench run`) starts the emulator in-process (Open API QPS limits on, upload
completion polls set to zero so only the gateway's own work is timed), seeds it, and for each of
the {RUNS} runs starts a fresh gateway as a separate process (`pan123-gateway serve -c …`:
`pan123-webdav` with its default features under another name, built in release mode next to the
bench) with two Open mounts on the same
account: `/open` (`download = "proxy"`) and `/redir` (`download = "redirect"`). Everything is on
loopback; every loop is bounded and every external tool runs under `timeout`. The machine may be
shared, so only same-run ratios are compared.

1. **Throughput**: GET of the whole {size_mib} MiB test file through `/open` vs the same file
   straight from the emulator's CDN URL (`download_info`), first with `cdn_rate_limit` = 40 MB/s
   per response, then uncapped. Gateway CPU = utime+stime from `/proc/<pid>/stat` around the
   uncapped proxy GET.
2. **Seek latency**: {SEEKS} Range GETs of 64 KiB at random offsets, time to the first body
   byte, proxy (link cache warm) vs direct CDN; the difference of medians and of p99s.
3. **Redirect rate**: `wrk -t2 -c64 -d5s` with a Basic `Authorization` header against
   `/redir/…` (302 to the CDN) vs a bare hyper 1 server answering a fixed 302 (`pan123-bench
   redirect-server`), both separate processes.
4. **Listing**: PROPFIND Depth 1 of a {LIST_N}-entry folder with each request body real clients
   send: {bodies} (the bodies are `pan123_webdav::dav::propfind_body`'s constants, the ones
   `tests/it/protocol/propfind_fast.rs` compares with dav-server). Cold = the first PROPFIND (no body) on a
   fresh gateway (a different folder each run), with the emulator's list call count; warm =
   median of 5 after one warm-up, per body. Peers: `rclone serve webdav` (and `dufs` when
   installed) serving a local folder with the same {LIST_N} names, same client, same bodies,
   same measure.
5. **Memory**: VmRSS of the gateway 0.5 s after start (idle), and the maximum VmRSS sampled every
   10 ms while {STREAMS} concurrent clients each stream 8 MiB through the proxy, all started at
   once: with the CDN capped at {r2} MB/s per response (in this report the streams took
   {took_lo:.1}–{took_hi:.1} s; the cap allows {allowed:.1} s), then on the same gateway at {r8}
   MB/s per response (the streams took {burst_lo:.1}–{burst_hi:.1} s; the cap allows
   {allowed_burst:.2} s).
6. **Upload**: PUT of {size_mib} MiB of random bytes to `/open`, timed until the emulator holds
   the complete file; floor = writing the same bytes to a local file + fsync + MD5 + sending the
   slices straight to the emulator's upload API, 3 in parallel (the gateway's `upload_slices`
   default), + `upload_complete`. Also the time until the PUT is answered (background mode) vs a
   local write + fsync of the same bytes.
7. **API economy**: emulator call counts (Open API only, not CDN bytes) for a media-player
   session on a cold folder whose parent (the mount root) is already listed (PROPFIND Depth 1,
   GET of the head, 20 Range GETs at random offsets; minimum 1 list + 1 download_info) and for
   `rclone lsjson -R` over a tree of 50 folders with 3 files each (minimum 51 list calls).
8. **Mixed load**: {LOAD_CLIENTS} concurrent clients, each sending one request after another for
   {LOAD_SECS} s (`BENCH_LOAD_SECS`; each stops at the deadline): 4 in 10 a PROPFIND Depth 1 of
   the run's {LIST_N}-entry folder with Finder's body (the load issue 16 describes; before
   2026-12-05 a 50-entry folder), 5 in 10 a Range GET of {get} MiB through the
   proxy at a random offset of a {file} MiB file (20 files), 1 in 10 a PUT of a new file of up to
   {put} MB (background upload; every PUT a new name and new bytes). Folders and links are
   warmed first; the gateway's RSS is sampled every 10 ms throughout. Errors = 5xx answers and
   failed requests (connection errors, timeouts); 4xx are counted apart (none expected).
9. **Listing cost by folder size** (once, after the runs; `BENCH_SCALE=0` leaves it out): on a
   fresh gateway, folders of 1,000, 10,000 and 100,000 entries, each listed cold first (123's
   pace at the default `qps_scale`: the 100,000 take about 250 s, longer than a request's
   `upstream_deadline`, so the gateway answers 503 with Retry-After meanwhile and the bench asks
   again, as a client would), then the median of 5 warm PROPFINDs Depth 1 per size,
   without a body and with Finder's; time per entry compared across the sizes, and the
   gateway's RSS sampled every 10 ms during the 100,000-entry answers.
"#,
        r2 = STREAM_RATE / 1_000_000,
        r8 = STREAM_RATE_BURST / 1_000_000,
        get = LOAD_GET >> 20,
        file = LOAD_FILE >> 20,
        put = LOAD_PUT_MAX / 1_000_000,
    )
}
