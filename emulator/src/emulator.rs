//! The running emulator: shared state, start-up seeding, and the Rust API tests drive it with.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context;
use bytes::Bytes;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{EmulatorConfig, Switches};
use crate::content::{self, Blob};
use crate::faults::{Fault, FaultKind, Faults};
use crate::hosts::{Host, HostUrls};
use crate::personal_upload::WebUploads;
use crate::qps::Limiter;
use crate::share::Share;
use crate::state::{Fs, NamePolicy, ROOT};
use crate::stats::{Counters, Stats};
use crate::tokens::Tokens;
use crate::upload::Uploads;

/// Lock a mutex, ignoring poisoning: a handler that panicked must not take the emulator down.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A file or folder as the Rust API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// fileId.
    pub id: u64,
    /// Folder?
    pub is_dir: bool,
    /// Bytes (0 for folders).
    pub size: u64,
    /// Lowercase hex MD5 (`""` for folders).
    pub md5: String,
    /// In the recycle bin?
    pub trashed: bool,
    /// Containing folder's id (0 = root).
    pub parent_id: u64,
    /// Name only.
    pub name: String,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    /// The base URL of every host (each has its own listener).
    pub hosts: HostUrls,
    pub client_id: String,
    pub client_secret: String,
    pub uid: u64,
    pub qps: AtomicBool,
    pub direct_link_key: Option<String>,
    /// The direct-link space folder, if configured (by id, so renames follow it).
    pub direct_space: Option<u64>,
    pub clock: Clock,
    pub switches: Mutex<Switches>,
    pub fs: Mutex<Fs>,
    pub tokens: Mutex<Tokens>,
    /// Web API session tokens of the personal account (`/api/user/sign_in`).
    pub web_tokens: Mutex<Tokens>,
    /// The personal account's login name and password.
    pub web_user: String,
    pub web_password: String,
    /// The OAuth app (docs/123.md, open §2) and its codes and refresh tokens.
    pub oauth_client_id: String,
    pub oauth_client_secret: String,
    pub oauth: Mutex<crate::oauth::OAuth>,
    pub limiter: Mutex<Limiter>,
    pub faults: Mutex<Faults>,
    pub counters: Mutex<Counters>,
    pub uploads: Mutex<Uploads>,
    /// Personal (web) uploads waiting for their presigned parts.
    pub web_uploads: Mutex<WebUploads>,
    pub shares: Mutex<HashMap<String, Share>>,
    /// Secret for CDN link signatures (`s`) and presigned part URLs.
    pub cdn_secret: String,
    /// Where upload sessions assemble their slices.
    pub upload_dir: PathBuf,
    /// Where big MD5s are memoised (outlives the process on purpose).
    pub cache_dir: PathBuf,
    /// Removes the upload folder when the emulator goes away.
    _tmp: tempfile::TempDir,
}

impl Shared {
    /// `http://IP:PORT` of `host`, no trailing slash.
    pub fn url(&self, host: Host) -> &str {
        self.hosts.get(host)
    }

    /// The origin the web client's pages live on (the web API host), which its `Referer` and
    /// `Origin` name on the web API, the login host and the download hop.
    pub fn web_origin(&self) -> &str {
        self.hosts.get(Host::Web)
    }

    /// Wall-clock Unix seconds (shiftable, see `Clock`).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// A copy of the switches.
    pub fn switches(&self) -> Switches {
        lock(&self.switches).clone()
    }

    /// Name collision rules from the switches.
    pub fn name_policy(&self) -> NamePolicy {
        let s = lock(&self.switches);
        NamePolicy {
            case_sensitive: s.case_sensitive_names,
            trashed_blocks: s.trashed_blocks_name,
        }
    }

    /// Count body bytes sent by a download host.
    pub fn count_bytes(&self, host: &str, n: u64) {
        let day = crate::clock::cst_day(self.now());
        lock(&self.counters).served(host, n, day);
    }

    /// Statistics snapshot.
    pub fn stats(&self) -> Stats {
        let now = self.now();
        let (live, issued) = {
            let t = lock(&self.tokens);
            (t.live(now), t.issued())
        };
        lock(&self.counters).snapshot(live, issued)
    }

    /// Zero the counters.
    pub fn reset_stats(&self) {
        let issued = lock(&self.tokens).issued();
        lock(&self.counters).reset(issued);
    }

    /// Arm a fault (or apply `ExpireTokens` at once).
    pub fn inject(&self, f: Fault) {
        if f.kind == FaultKind::ExpireTokens {
            lock(&self.tokens).expire_all();
            lock(&self.web_tokens).expire_all();
        } else {
            lock(&self.faults).add(f);
        }
    }
}

/// A running emulator. Dropping it stops accepting connections; `shutdown` also waits.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// One server task per host.
    tasks: Vec<JoinHandle<()>>,
}

/// `http://<addr>`, with an unspecified address shown as loopback.
fn url_of(addr: SocketAddr) -> String {
    let shown = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    };
    format!("http://{shown}")
}

/// Bind one listener per host: the Open API on `cfg.listen`, the others on the same IP, on
/// `hosts_port_base + k` or free ports.
async fn bind_hosts(cfg: &EmulatorConfig) -> anyhow::Result<Vec<(Host, TcpListener)>> {
    let mut out = Vec::with_capacity(Host::ALL.len());
    for (k, host) in Host::ALL.into_iter().enumerate() {
        let addr = match (host, cfg.hosts_port_base) {
            (Host::Open, _) => cfg.listen,
            (_, Some(base)) => {
                let port = u16::try_from(k - 1)
                    .ok()
                    .and_then(|k| base.checked_add(k))
                    .context("--hosts-port-base leaves no room for every host")?;
                SocketAddr::new(cfg.listen.ip(), port)
            }
            (_, None) => SocketAddr::new(cfg.listen.ip(), 0),
        };
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr} for the {host} host"))?;
        out.push((host, listener));
    }
    Ok(out)
}

impl Emulator {
    /// Bind, seed the account and start serving.
    pub async fn start(cfg: EmulatorConfig) -> anyhow::Result<Emulator> {
        let temp_root = cfg.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&temp_root)
            .with_context(|| format!("creating temp dir {}", temp_root.display()))?;
        let tmp = tempfile::Builder::new()
            .prefix("pan123-emulator-")
            .tempdir_in(&temp_root)
            .with_context(|| format!("creating a temp dir in {}", temp_root.display()))?;
        let upload_dir = tmp.path().join("uploads");
        std::fs::create_dir_all(&upload_dir)?;
        let cache_dir = temp_root.join("pan123-emulator-cache");

        let listeners = bind_hosts(&cfg).await?;
        let mut urls: [String; 9] = Default::default();
        for (host, l) in &listeners {
            urls[host.index()] = url_of(l.local_addr()?);
        }
        let addr = listeners[Host::Open.index()].1.local_addr()?;

        let now = chrono::Utc::now().timestamp();
        let mut fs = {
            let cfg = cfg.clone();
            let cache = cache_dir.clone();
            tokio::task::spawn_blocking(move || crate::seed::seed(&cfg, &cache, now)).await??
        };
        let direct_space = cfg
            .direct_link_space
            .as_deref()
            .map(|p| fs.tree.mkdir_p(p, now));
        let mut shares = HashMap::new();
        for s in &cfg.shares {
            let root = fs
                .tree
                .resolve(&s.path)
                .unwrap_or_else(|| fs.tree.mkdir_p(&s.path, now));
            shares.insert(
                s.key.clone(),
                Share {
                    password: s.password.clone(),
                    root,
                },
            );
        }

        let mut secret = [0u8; 16];
        rand::thread_rng().fill(&mut secret);
        let shared = Arc::new(Shared {
            hosts: HostUrls::new(urls),
            client_id: cfg.client_id.clone(),
            client_secret: cfg.client_secret.clone(),
            uid: cfg.uid,
            qps: AtomicBool::new(cfg.qps),
            direct_link_key: cfg.direct_link_key.clone().filter(|k| !k.is_empty()),
            direct_space,
            clock: Clock::default(),
            switches: Mutex::new(cfg.switches.clone()),
            fs: Mutex::new(fs),
            tokens: Mutex::new(Tokens::default()),
            web_tokens: Mutex::new(Tokens::default()),
            web_user: cfg.web_user.clone(),
            web_password: cfg.web_password.clone(),
            oauth_client_id: cfg.oauth_client_id.clone(),
            oauth_client_secret: cfg.oauth_client_secret.clone(),
            oauth: Mutex::new(crate::oauth::OAuth::default()),
            limiter: Mutex::new(Limiter::default()),
            faults: Mutex::new(Faults::default()),
            counters: Mutex::new(Counters::default()),
            uploads: Mutex::new(Uploads::default()),
            web_uploads: Mutex::new(WebUploads::default()),
            shares: Mutex::new(shares),
            cdn_secret: crate::auth_key::hex(&secret),
            upload_dir,
            cache_dir,
            _tmp: tmp,
        });
        let (stop, stop_rx) = watch::channel(false);
        let tasks = listeners
            .into_iter()
            .map(|(host, l)| {
                tokio::spawn(crate::server::serve(
                    l,
                    host,
                    shared.clone(),
                    stop_rx.clone(),
                ))
            })
            .collect();
        Ok(Emulator {
            shared,
            addr,
            stop,
            tasks,
        })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash: the Open API host (the first line the binary
    /// prints). Every other host has its own port: see `host_url`.
    pub fn base_url(&self) -> String {
        self.shared.url(Host::Open).to_string()
    }

    /// `http://127.0.0.1:PORT`, no trailing slash, of one host.
    pub fn host_url(&self, host: Host) -> String {
        self.shared.url(host).to_string()
    }

    /// Every host's base URL by its name (`open`, `upload`, `cdn`, `direct`, `web`, `login`,
    /// `web-pro`, `s3`), as `GET /__emulator/hosts` lists them.
    pub fn hosts(&self) -> BTreeMap<String, String> {
        self.shared.hosts.map()
    }

    /// The bound address of the Open API host.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The developer client id the Open API accepts.
    pub fn client_id(&self) -> String {
        self.shared.client_id.clone()
    }

    /// Its secret.
    pub fn client_secret(&self) -> String {
        self.shared.client_secret.clone()
    }

    /// The account uid.
    pub fn uid(&self) -> u64 {
        self.shared.uid
    }

    /// Make sure the folder `path` exists (parents too); returns its fileId. A file in the way is
    /// trashed.
    pub fn mkdir_p(&self, path: &str) -> u64 {
        let now = self.shared.now();
        lock(&self.shared.fs).tree.mkdir_p(path, now)
    }

    /// Put a file with these bytes at `path` (parents created). A live file of that name keeps its
    /// id and gets the new content; a folder of that name is trashed first. Returns the fileId.
    pub fn put_file(&self, path: &str, bytes: impl Into<Bytes>) -> u64 {
        let bytes: Bytes = bytes.into();
        let md5 = content::md5_hex(&bytes);
        let size = bytes.len() as u64;
        self.put_blob(path, size, md5, Blob::Memory(bytes))
    }

    /// Put a generated file of `size` bytes (content a function of `seed`). Hashing a big size
    /// takes a while the first time; the MD5 is memoised on disk for the next run.
    pub fn put_generated_file(&self, path: &str, size: u64, seed: u64) -> u64 {
        let md5 = content::generated_md5(seed, size, &self.shared.cache_dir);
        self.put_blob(path, size, md5, Blob::Generated { seed })
    }

    fn put_blob(&self, path: &str, size: u64, md5: String, blob: Blob) -> u64 {
        let now = self.shared.now();
        let (dir, name) = split_parent(path);
        let mut fs = lock(&self.shared.fs);
        fs.content.insert(&md5, size, blob);
        let parent = fs.tree.mkdir_p(dir, now);
        if let Some(id) = fs.tree.live_child(parent, name) {
            if let Some(e) = fs.tree.get_mut(id) {
                if !e.is_dir {
                    e.size = size;
                    e.md5 = md5;
                    e.updated = now;
                    return id;
                }
            }
            fs.tree.trash(id, now);
        }
        fs.tree.insert(parent, name, Some((size, md5)), now)
    }

    /// Put many small files into folder `dir` at once, for seeding big folders: the names
    /// already there are read once, where `put_file` looks each name up among all the
    /// folder's children (a 100,000-entry folder took the bench's seeding over 15 minutes).
    pub fn put_files(&self, dir: &str, files: impl IntoIterator<Item = (String, Bytes)>) {
        let now = self.shared.now();
        let mut fs = lock(&self.shared.fs);
        let parent = fs.tree.mkdir_p(dir, now);
        let mut live: std::collections::HashMap<String, u64> = fs
            .tree
            .children(parent)
            .filter(|e| !e.trashed)
            .map(|e| (e.name.clone(), e.id))
            .collect();
        for (name, bytes) in files {
            let md5 = content::md5_hex(&bytes);
            let size = bytes.len() as u64;
            fs.content.insert(&md5, size, Blob::Memory(bytes));
            if let Some(&id) = live.get(&name) {
                if let Some(e) = fs.tree.get_mut(id) {
                    if !e.is_dir {
                        e.size = size;
                        e.md5 = md5;
                        e.updated = now;
                        continue;
                    }
                }
                fs.tree.trash(id, now);
            }
            let id = fs.tree.insert(parent, &name, Some((size, md5)), now);
            live.insert(name, id);
        }
    }

    /// Set `createAt` and `updateAt` of the entry at `path`.
    pub fn set_modified(&self, path: &str, unix_secs: i64) {
        let mut fs = lock(&self.shared.fs);
        if let Some(id) = fs.tree.resolve(path) {
            if let Some(e) = fs.tree.get_mut(id) {
                e.created = unix_secs;
                e.updated = unix_secs;
            }
        }
    }

    /// The live entry at `path`.
    pub fn lookup(&self, path: &str) -> Option<EntryInfo> {
        let fs = lock(&self.shared.fs);
        let id = fs.tree.resolve(path)?;
        fs.tree.get(id).map(info)
    }

    /// Any entry by id, trashed ones included.
    pub fn entry(&self, id: u64) -> Option<EntryInfo> {
        lock(&self.shared.fs).tree.get(id).map(info)
    }

    /// The path of any entry by id, e.g. `/a/b.txt` (trashed entries keep their old path).
    pub fn path_of(&self, id: u64) -> Option<String> {
        let fs = lock(&self.shared.fs);
        fs.tree.get(id)?;
        fs.tree.path_of(id)
    }

    /// Names of the live children of the folder at `path`, in id order.
    pub fn list_names(&self, path: &str) -> Option<Vec<String>> {
        let fs = lock(&self.shared.fs);
        let id = fs.tree.resolve(path)?;
        if !fs.tree.get(id)?.is_dir {
            return None;
        }
        Some(
            fs.tree
                .children(id)
                .filter(|e| !e.trashed)
                .map(|e| e.name.clone())
                .collect(),
        )
    }

    /// The whole body of the file at `path` (tests only: reads it into memory).
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        let blob_and_size = {
            let fs = lock(&self.shared.fs);
            let id = fs.tree.resolve(path)?;
            let e = fs.tree.get(id)?;
            if e.is_dir {
                return None;
            }
            (fs.content.get(&e.md5, e.size)?, e.size)
        };
        content::read_all(&blob_and_size.0, blob_and_size.1).ok()
    }

    /// Move the entry at `path` to the recycle bin; false if there is none.
    pub fn trash(&self, path: &str) -> bool {
        let now = self.shared.now();
        let mut fs = lock(&self.shared.fs);
        match fs.tree.resolve(path) {
            Some(id) if id != ROOT => {
                fs.tree.trash(id, now);
                true
            }
            _ => false,
        }
    }

    /// Publish a share link for the folder (or file) at `path` (a folder is created if missing).
    pub fn add_share(&self, key: &str, password: Option<&str>, path: &str) {
        let now = self.shared.now();
        let root = {
            let mut fs = lock(&self.shared.fs);
            match fs.tree.resolve(path) {
                Some(id) => id,
                None => fs.tree.mkdir_p(path, now),
            }
        };
        lock(&self.shared.shares).insert(
            key.to_string(),
            Share {
                password: password.map(str::to_string),
                root,
            },
        );
    }

    /// Counters snapshot.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Zero the counters.
    pub fn reset_stats(&self) {
        self.shared.reset_stats();
    }

    /// When the counted calls of `endpoint` arrived since the last reset, in milliseconds on a
    /// monotonic time line shared by every emulator in the process (oldest first, at most the
    /// latest 10,000): pacing is asserted from these, across endpoints and hosts.
    pub fn call_times(&self, endpoint: &str) -> Vec<u64> {
        lock(&self.shared.counters).call_times(endpoint)
    }

    /// Arm a fault (`ExpireTokens` takes effect at once).
    pub fn inject(&self, fault: Fault) {
        self.shared.inject(fault);
    }

    /// The faults still armed.
    pub fn faults(&self) -> Vec<Fault> {
        lock(&self.shared.faults).list()
    }

    /// Disarm every fault.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Change switches while running.
    pub fn set_switches(&self, f: impl FnOnce(&mut Switches)) {
        f(&mut lock(&self.shared.switches));
    }

    /// The current switches.
    pub fn switches(&self) -> Switches {
        self.shared.switches()
    }

    /// Turn the QPS limiter on or off while running.
    pub fn set_qps(&self, on: bool) {
        self.shared.qps.store(on, Ordering::Relaxed);
    }

    /// The personal account's web login name (phone number or e-mail).
    pub fn web_user(&self) -> String {
        self.shared.web_user.clone()
    }

    /// The personal account's web password.
    pub fn web_password(&self) -> String {
        self.shared.web_password.clone()
    }

    /// A web session token of the personal account, as a browser holds after logging in (what
    /// a user copies into a share mount's `access_token`).
    pub fn web_session_token(&self) -> String {
        crate::personal::issue_web_token(&self.shared).0
    }

    /// The OAuth app's client id (the user's own app, docs/123.md, open §2).
    pub fn oauth_client_id(&self) -> String {
        self.shared.oauth_client_id.clone()
    }

    /// The OAuth app's secret.
    pub fn oauth_client_secret(&self) -> String {
        self.shared.oauth_client_secret.clone()
    }

    /// An authorization code for `redirect_uri`, as the approval page gives a logged-in browser.
    pub fn oauth_code(&self, redirect_uri: &str) -> String {
        crate::oauth::issue_code(&self.shared, &self.shared.oauth_client_id, redirect_uri)
    }

    /// A fresh OAuth token pair (what an exchanged code gives), to seed a mount's
    /// `refresh_token`.
    pub fn oauth_tokens(&self) -> crate::oauth::Grant {
        crate::oauth::issue_pair(&self.shared)
    }

    /// Refresh tokens spent (rotated) since start.
    pub fn oauth_rotations(&self) -> u64 {
        lock(&self.shared.oauth).rotations
    }

    /// A pasted access token valid for `ttl_secs` from the emulator's clock, never renewable;
    /// returns the token and its expiry (Unix seconds).
    pub fn pasted_access_token(&self, ttl_secs: i64) -> (String, i64) {
        crate::oauth::issue_pasted(&self.shared, ttl_secs)
    }

    /// Invalidate every access token now (Open API and web sessions).
    pub fn expire_tokens(&self) {
        lock(&self.shared.tokens).expire_all();
        lock(&self.shared.web_tokens).expire_all();
    }

    /// Shift the emulator's wall clock by `secs` from system time (token, link and signature
    /// expiry, timestamps of new files), so expiry can be tested without waiting.
    pub fn set_clock_offset(&self, secs: i64) {
        self.shared.clock.set_offset(secs);
    }

    /// The emulator's current Unix time.
    pub fn now(&self) -> i64 {
        self.shared.now()
    }

    /// Stop accepting, close open connections and wait for the server tasks.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for t in std::mem::take(&mut self.tasks) {
            let _ = t.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

fn info(e: &crate::state::Entry) -> EntryInfo {
    EntryInfo {
        id: e.id,
        is_dir: e.is_dir,
        size: e.size,
        md5: e.md5.clone(),
        trashed: e.trashed,
        parent_id: e.parent,
        name: e.name.clone(),
    }
}

/// `("/a/b", "c.txt")` from `/a/b/c.txt`.
fn split_parent(path: &str) -> (&str, &str) {
    let p = path.trim_end_matches('/');
    match p.rfind('/') {
        Some(i) => (&p[..i], &p[i + 1..]),
        None => ("", p),
    }
}
