//! The test environment: the emulator and the gateway in-process on ephemeral loopback ports,
//! spoken to over HTTP exactly as a client would. Both stop when the `TestEnv` is dropped.

#![allow(dead_code)]

pub mod cluster;
pub mod profiles;
pub mod redis;
pub mod skips;
pub mod tools;
pub mod web_api;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use pan123_emulator::{Emulator, EmulatorConfig, Host};
use pan123_webdav::server::{start_on, AppState, RunningServer};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct horse battery staple";
pub const SIGNING_KEY: &str = "test-signing-key-0123456789abcdef";

/// A generous guard against hangs; tests never assert on elapsed time.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// The argon2 hash of `PASSWORD`, computed once per test binary.
pub fn password_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
        argon2::Argon2::default()
            .hash_password(PASSWORD.as_bytes(), &SaltString::generate(&mut OsRng))
            .expect("hash")
            .to_string()
    })
}

/// Fills a config text's placeholders with the emulator's hosts and credentials: `{api}` the
/// Open API, `{web}` the web API (share and personal mounts' `api_base`), `{login}` the web
/// login host, `{id}` and `{secret}` the developer credentials, `{self}` the gateway's own URL.
/// The one place tests turn a mount template into config, so each 123 host is named once.
pub fn fill_hosts(text: &str, emu: &Emulator, self_url: &str) -> String {
    text.replace("{api}", &emu.base_url())
        .replace("{web}", &emu.host_url(Host::Web))
        .replace("{login}", &emu.host_url(Host::Login))
        .replace("{id}", &emu.client_id())
        .replace("{secret}", &emu.client_secret())
        .replace("{self}", self_url)
}

/// Fails the test if any request reached the wrong 123 host (the emulator answered it 404 and
/// counted it by endpoint).
pub fn assert_no_wrong_host(emu: &Emulator) {
    let stats = emu.stats();
    assert_eq!(
        stats.wrong_host_total(),
        0,
        "requests sent to the wrong 123 host: {:?}",
        stats.wrong_host
    );
}

/// One mount's TOML, with `{api}`, `{id}`, `{secret}` and `{self}` filled in by `TestEnv`.
pub fn open_mount(path: &str, download: &str, extra: &str) -> String {
    format!(
        "[[mounts]]\npath = \"{path}\"\nbackend = \"open\"\nclient_id = \"{{id}}\"\nclient_secret = \"{{secret}}\"\napi_base = \"{{api}}\"\ndownload = \"{download}\"\nproxy_url = \"{{self}}\"\n{extra}\n"
    )
}

pub struct TestEnv {
    pub emu: Emulator,
    pub gw: Option<RunningServer>,
    pub state_dir: tempfile::TempDir,
    pub client: reqwest::Client,
    pub base: String,
    mounts: String,
    extra_users: String,
    /// More `[server]` keys.
    pub server_extra: String,
}

impl TestEnv {
    /// Starts an emulator with `cfg`, lets `setup` fill it and return the mounts' TOML, then
    /// starts the gateway: the common case of [`TestEnv::builder`].
    pub async fn start(cfg: EmulatorConfig, setup: impl FnOnce(&Emulator) -> String) -> TestEnv {
        Self::builder(cfg).mounts(setup).start().await
    }

    /// A test environment with more than mounts: users, `[server]` keys.
    pub fn builder<'a>(cfg: EmulatorConfig) -> TestEnvBuilder<'a> {
        TestEnvBuilder {
            cfg,
            setup: None,
            users: String::new(),
            server: String::new(),
        }
    }
}

/// Fills the started emulator and returns the mounts' TOML.
type Setup<'a> = Box<dyn FnOnce(&Emulator) -> String + 'a>;

/// How a [`TestEnv`] is made: the emulator's config, then what the gateway is given.
pub struct TestEnvBuilder<'a> {
    cfg: EmulatorConfig,
    setup: Option<Setup<'a>>,
    users: String,
    server: String,
}

impl<'a> TestEnvBuilder<'a> {
    /// `setup` fills the started emulator and returns the mounts' TOML (with the placeholders
    /// of [`fill_hosts`]).
    pub fn mounts(mut self, setup: impl FnOnce(&Emulator) -> String + 'a) -> Self {
        self.setup = Some(Box::new(setup));
        self
    }

    /// More `[[users]]` tables (`{hash}` is the test password's hash) beside `alice`.
    pub fn users(mut self, users: &str) -> Self {
        self.users = users.to_string();
        self
    }

    /// More `[server]` keys.
    pub fn server(mut self, keys: &str) -> Self {
        self.server = keys.to_string();
        self
    }

    /// Starts the emulator, fills it, and starts the gateway.
    pub async fn start(self) -> TestEnv {
        let TestEnvBuilder {
            mut cfg,
            setup,
            users,
            server,
        } = self;
        // RUST_LOG=debug shows the gateway's and the emulator's logs for a failing test.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        // The row's reading of 123 (`profiles`), over the test's own switches.
        profiles::current_profile().apply(&mut cfg.switches);
        let emu = Emulator::start(cfg).await.expect("emulator starts");
        let mounts = setup.map(|setup| setup(&emu)).unwrap_or_default();
        let state_dir = tempfile::tempdir().expect("tempdir");
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(HANG_GUARD)
            .build()
            .expect("client");
        let mut env = TestEnv {
            emu,
            gw: None,
            state_dir,
            client,
            base: String::new(),
            mounts,
            extra_users: users,
            server_extra: server,
        };
        env.start_gateway().await;
        env
    }
}

impl TestEnv {
    /// (Re)starts the gateway on a new port with the same config and state_dir.
    pub async fn start_gateway(&mut self) {
        if let Some(gw) = self.gw.take() {
            gw.shutdown().await;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (gw, base) = self.gateway_on(listener, self.state_dir.path()).await;
        self.gw = Some(gw);
        self.base = base;
    }

    /// A gateway with this environment's config (same emulator, users, mounts and `[server]`
    /// keys) on `listener`, keeping its state in `state_dir`.
    pub async fn gateway_on(
        &self,
        listener: tokio::net::TcpListener,
        state_dir: &std::path::Path,
    ) -> (RunningServer, String) {
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}");
        let mounts = fill_hosts(&self.mounts, &self.emu, &base);
        let text = format!(
            "[server]\nlisten = \"{addr}\"\nsigning_key = \"{SIGNING_KEY}\"\nstate_dir = \"{}\"\n{}\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{}\"\nmounts = [\"*\"]\nwrite = true\n\n{}\n{mounts}",
            state_dir.display(),
            self.server_extra,
            password_hash(),
            self.extra_users.replace("{hash}", password_hash()),
        );
        let config = pan123_webdav::config::parse(&text, std::path::Path::new("test.toml"))
            .unwrap_or_else(|e| panic!("config: {e}\n{text}"));
        let state = Arc::new(AppState::new(&config).await.expect("state"));
        (
            start_on(listener, state, None).expect("gateway starts"),
            base,
        )
    }

    /// The running gateway's clock: moved forward instead of waiting minutes or days.
    pub fn clock(&self) -> pan123_webdav::clock::Clock {
        self.gw
            .as_ref()
            .map(|gw| gw.state.clock.clone())
            .expect("the gateway runs")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A request as `alice`.
    pub fn req(&self, method: &str, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
                self.url(path),
            )
            .basic_auth(USER, Some(PASSWORD))
    }

    pub async fn propfind(&self, path: &str, depth: &str) -> (u16, String) {
        let res = self
            .req("PROPFIND", path)
            .header("Depth", depth)
            .send()
            .await
            .expect("propfind");
        let status = res.status().as_u16();
        (status, res.text().await.unwrap_or_default())
    }

    /// GET following redirects (as media players do), with optional extra headers.
    pub async fn get_following(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let client = reqwest::Client::builder()
            .timeout(HANG_GUARD)
            .build()
            .expect("client");
        let mut rb = client.get(self.url(path)).basic_auth(USER, Some(PASSWORD));
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        rb.send().await.expect("get")
    }
}

/// Every test against the emulator ends by checking that each call went to the 123 host that
/// serves it (skipped while a test is already failing).
impl Drop for TestEnv {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            assert_no_wrong_host(&self.emu);
        }
    }
}

/// Deterministic bytes for test files.
pub fn bytes_of(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64 * 31 + seed as u64 * 7 + (i as u64 >> 8)) % 251) as u8)
        .collect()
}

/// Counts `<D:response>` elements in a multistatus.
pub fn responses(xml: &str) -> usize {
    xml.matches("<D:response>").count()
}

/// Waits (bounded) until `cond` holds, polling; panics with `what` if it never does.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..600 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A share mount's TOML (`{web}`, the web API host, is filled in by `TestEnv`).
pub fn share_mount(
    path: &str,
    download: &str,
    share_key: &str,
    password: Option<&str>,
    extra: &str,
) -> String {
    let password = password
        .map(|p| format!("share_password = \"{p}\"\n"))
        .unwrap_or_default();
    format!(
        "[[mounts]]\npath = \"{path}\"\nbackend = \"share\"\nshare_key = \"{share_key}\"\n{password}api_base = \"{{web}}\"\ndownload = \"{download}\"\nproxy_url = \"{{self}}\"\n{extra}\n"
    )
}

/// A link mount's TOML; `urls` is written as a TOML literal multi-line string.
pub fn link_mount(path: &str, download: &str, urls: &str, extra: &str) -> String {
    format!(
        "[[mounts]]\npath = \"{path}\"\nbackend = \"link\"\ndownload = \"{download}\"\nproxy_url = \"{{self}}\"\nurls = '''\n{urls}'''\n{extra}\n"
    )
}

/// The direct-link URL of the file at `account_path` (inside the emulator's direct-link space
/// folder, e.g. `/direct/a b.txt`): `<direct host>/<uid>/direct/a%20b.txt`.
pub fn direct_url(emu: &pan123_emulator::Emulator, account_path: &str) -> String {
    let encoded: String = account_path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{}", pan123_webdav::server::paths::encode_segment(s)))
        .collect();
    format!("{}/{}{encoded}", emu.host_url(Host::Direct), emu.uid())
}

/// A response header as text ("" when absent).
pub fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// A personal-account (`web`) mount's TOML for the emulator's default web account (`{web}` and
/// `{login}`, the web API and login hosts, are filled in by `TestEnv`).
pub fn web_mount(path: &str, download: &str, extra: &str) -> String {
    let defaults = pan123_emulator::EmulatorConfig::default();
    format!(
        "[[mounts]]\npath = \"{path}\"\nbackend = \"web\"\nusername = \"{}\"\npassword = \"{}\"\napi_base = \"{{web}}\"\nlogin_base = \"{{login}}\"\ndownload = \"{download}\"\nproxy_url = \"{{self}}\"\n{extra}\n",
        defaults.web_user, defaults.web_password
    )
}

/// A port that was free a moment ago (for the real binary, which binds it itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The real binary serving a config file on `port`; killed (SIGKILL) and reaped on drop, so a
/// failing assertion still cleans up.
pub struct GatewayProcess {
    pub child: std::process::Child,
    pub base: String,
}

impl GatewayProcess {
    /// Starts `pan123-webdav serve -c config` with extra environment and its output going to
    /// `log` (or nowhere), and waits (bounded) until it answers.
    pub async fn spawn(
        config: &std::path::Path,
        port: u16,
        envs: &[(&str, &str)],
        log: Option<std::fs::File>,
    ) -> GatewayProcess {
        use std::process::Stdio;
        let (out, err) = match log {
            Some(f) => (
                Stdio::from(f.try_clone().expect("clone log")),
                Stdio::from(f),
            ),
            None => (Stdio::null(), Stdio::null()),
        };
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pan123-webdav"));
        cmd.args(["serve", "-c"])
            .arg(config)
            .stdout(out)
            .stderr(err);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let gw = GatewayProcess {
            child: cmd.spawn().expect("spawn gateway"),
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..400 {
            if client
                .request(reqwest::Method::OPTIONS, format!("{}/", gw.base))
                .send()
                .await
                .is_ok()
            {
                return gw;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the gateway did not start");
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Seconds from `unix` to the next midnight in China (UTC+8), when 123's daily quota resets.
pub fn seconds_to_china_midnight(unix: i64) -> i64 {
    const DAY: i64 = 86_400;
    DAY - (unix + 8 * 3600).rem_euclid(DAY)
}

/// Asserts a `Retry-After` of "until midnight China time" for a request sent at `sent` and
/// answered at `answered` (the emulator's Unix time, without an offset the gateway's too),
/// within a second.
#[track_caller]
pub fn assert_until_china_midnight(retry: u64, sent: i64, answered: i64) {
    let latest = seconds_to_china_midnight(sent) + 1;
    let earliest = seconds_to_china_midnight(answered) - 1;
    let retry = retry as i64;
    assert!(
        (earliest..=latest).contains(&retry),
        "Retry-After {retry}, expected {earliest}..={latest}"
    );
}

/// The first moment of the next month in China (UTC+8) after `unix`, when 123's monthly quota
/// and the gateway's traffic budgets reset, as Unix seconds.
pub fn next_china_month(unix: i64) -> i64 {
    use chrono::{Datelike, TimeZone};
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    let now = cst.timestamp_opt(unix, 0).single().expect("a time");
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    cst.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .expect("the 1st")
        .timestamp()
}

/// [`next_china_month`] as the gateway writes it: RFC 3339 with `+08:00`.
pub fn next_china_month_rfc3339(unix: i64) -> String {
    use chrono::TimeZone;
    let cst = chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8");
    cst.timestamp_opt(next_china_month(unix), 0)
        .single()
        .expect("a time")
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// Asserts a `Retry-After` of "until the next month, China time" for a request sent at `sent`
/// and answered at `answered` (the emulator's Unix times), within a second.
#[track_caller]
pub fn assert_until_next_china_month(retry: u64, sent: i64, answered: i64) {
    let latest = next_china_month(sent) - sent + 1;
    let earliest = next_china_month(answered) - answered - 1;
    let retry = retry as i64;
    assert!(
        (earliest..=latest).contains(&retry),
        "Retry-After {retry}, expected {earliest}..={latest}"
    );
}

/// The gateway's `/-/metrics` text.
pub async fn metrics_text(env: &TestEnv) -> String {
    env.client
        .get(env.url("/-/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body")
}
