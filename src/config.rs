//! The configuration: the TOML model, its defaults, and validation with precise messages.
//!
//! Reading a file goes in one pass over it (`resolve.rs`): every table is checked for unknown
//! keys, deserialized into the structs of `file.rs` (all fields optional), then validated and
//! converted into the types below, which is what the rest of the gateway consumes. Every problem
//! found is collected with its key path and a fix; `pan123-webdav check` runs exactly this code.
//! Every key, with its default, is documented in `config.example.toml`.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod clients;
mod cluster;
mod delete;
mod duration;
mod error;
mod file;
mod limits;
mod open_login;
mod resolve;
#[cfg(test)]
mod tests;
mod upload;
mod upstream;

pub use clients::{builtin_clients, ClientDownload, ClientRule};
pub use cluster::{check_redis_url, ClusterConfig, MAX_INSTANCES};
pub use delete::DeleteMode;
pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, Problem};
pub use limits::{
    StoreLimits, DEFAULT_JUNK_MAX_FILES, DEFAULT_JUNK_PER_USER_MAX_FILES,
    DEFAULT_LOCKS_PER_USER_MAX, DEFAULT_LOCK_TIMEOUT_MAX, DEFAULT_PROPS_MAX_BYTES,
    DEFAULT_PROPS_PER_USER_MAX_BYTES,
};
pub(crate) use resolve::check_password_hash;
pub use upload::{
    parse_size, UploadMode, DEFAULT_SPOOL_MAX, DEFAULT_UPLOAD_SLICES, DEFAULT_UPLOAD_WORKERS,
};
pub use upstream::{DEFAULT_QPS_SCALE, DEFAULT_USER_AGENT, QPS_SCALE_RANGE};

/// Default `server.listen`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default `server.sign_ttl`.
pub const DEFAULT_SIGN_TTL: Duration = Duration::from_secs(3600);
/// Default `server.state_dir`, relative to the directory of the config file.
pub const DEFAULT_STATE_DIR: &str = "state";
/// Default `api_base` of an open mount.
pub const DEFAULT_OPEN_API_BASE: &str = "https://open-api.123pan.com";
/// Default `api_base` of a share mount (123's web API; requests go to `<api_base>/b/api/...`).
pub const DEFAULT_WEB_API_BASE: &str = "https://yun.123pan.com";
/// The login host of personal-account (`web`) mounts (`<login_base>/api/user/sign_in`).
pub const DEFAULT_WEB_LOGIN_BASE: &str = "https://login.123pan.com";
/// Default `cache_ttl` of a mount.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(600);
/// Default `direct_link_valid` of an open or link mount.
pub const DEFAULT_DIRECT_LINK_VALID: Duration = Duration::from_secs(1800);
/// Default `server.ready_probe_interval`.
pub const DEFAULT_READY_PROBE_INTERVAL: Duration = Duration::from_secs(30);
/// Minimum length of `server.signing_key`.
pub const MIN_SIGNING_KEY_LEN: usize = 16;
/// Default `server.upstream_connect_timeout`.
pub const DEFAULT_UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `server.upstream_first_byte_timeout`.
pub const DEFAULT_UPSTREAM_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `server.upstream_idle_timeout`.
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `server.upstream_deadline`.
pub const DEFAULT_UPSTREAM_DEADLINE: Duration = Duration::from_secs(30);
/// Default `server.header_timeout`.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `server.keepalive_timeout`.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `server.body_idle_timeout`.
pub const DEFAULT_BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `server.connections_per_ip`.
pub const DEFAULT_CONNECTIONS_PER_IP: usize = 64;
/// Largest `server.connections_per_ip` accepted.
pub const MAX_CONNECTIONS_PER_IP: usize = 100_000;

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from (relative paths in it were resolved against its directory).
    pub source: PathBuf,
    pub server: ServerConfig,
    pub users: Vec<UserConfig>,
    pub mounts: Vec<MountConfig>,
    /// `[[clients]]`: the file's rows, then the built-in rows they do not replace.
    pub clients: Vec<ClientRule>,
    /// `[cluster]`: Redis shared by several instances; `None` runs this instance alone.
    pub cluster: Option<ClusterConfig>,
}

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Base URL under which clients reach this server, without a trailing slash.
    pub public_url: Option<String>,
    /// The path prefix everything is served under (`/dav`), so that a reverse proxy on a
    /// shared host can pass requests through unchanged; empty when served at the root.
    pub base_path: String,
    /// Key for signed `/-/d/` download URLs; at least 16 characters.
    pub signing_key: Option<Secret>,
    /// Lifetime of signed download URLs.
    pub sign_ttl: Duration,
    /// Persisted tokens, the upload spool and queue, side stores.
    pub state_dir: PathBuf,
    /// PEM certificate chain; set together with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Most bytes the upload spool holds (bodies not yet uploaded to 123).
    pub spool_max: u64,
    /// Uploads to 123 running at once, across all mounts.
    pub upload_workers: usize,
    /// How often `/-/readyz` re-probes a failing mount.
    pub ready_probe_interval: Duration,
    /// `/-/metrics` asks for Basic auth like the WebDAV routes.
    pub metrics_auth: bool,
    /// Serve `/-/metrics` (and health) on this address only, instead of on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// How long to wait for a TCP (and TLS) connection to 123 or its CDN.
    pub upstream_connect_timeout: Duration,
    /// How long to wait for an API answer, or for a download's response headers.
    pub upstream_first_byte_timeout: Duration,
    /// How long a download may stall mid-body before the client's connection is cut.
    pub upstream_idle_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the real client (for the lockout); the
    /// per-address connection cap does not apply to them.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Other names clients reach this server by (`host` or `host:port`, lower case): a COPY or
    /// MOVE `Destination` naming one of them (or the request's `Host`, or `public_url`'s) is
    /// this server; any other host is refused with 502.
    pub host_aliases: Vec<String>,
    /// How long one request may spend on 123 in all, retries included.
    pub upstream_deadline: Duration,
    /// How long a client may take to send a request's headers (from its first byte; on a new
    /// connection, from the connection).
    pub header_timeout: Duration,
    /// How long a connection with no request in flight stays open.
    pub keepalive_timeout: Duration,
    /// A request body that delivers less than 1 KiB in this long is cut (408).
    pub body_idle_timeout: Duration,
    /// Connections one client address may hold at once.
    pub connections_per_ip: usize,
    /// Caps of every mount's side stores: locks, dead properties, client junk.
    pub stores: StoreLimits,
    /// The share of 123's published per-endpoint QPS limits the Open API clients use.
    pub qps_scale: f64,
    /// The `User-Agent` of the gateway's own calls to 123's APIs.
    pub user_agent: String,
}

#[derive(Clone)]
pub struct UserConfig {
    pub name: String,
    /// An argon2 PHC string (`$argon2id$v=19$...`), as printed by `pan123-webdav hash-password`.
    pub password_hash: String,
    /// Mount paths this user sees (`"/open"`), or `"*"` for all of them.
    pub mounts: Vec<String>,
    /// Whether the user may change files (PUT, DELETE, MKCOL, MOVE, COPY, PROPPATCH, LOCK).
    pub write: bool,
}

// Written by hand so that the password hash never reaches a log.
impl fmt::Debug for UserConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserConfig")
            .field("name", &self.name)
            .field("password_hash", &"<redacted>")
            .field("mounts", &self.mounts)
            .field("write", &self.write)
            .finish()
    }
}

#[derive(Clone, Debug)]
pub struct MountConfig {
    /// Normalised: `"/open"` (one segment, no trailing slash), or `"/"` for a lone mount.
    pub path: String,
    pub download: DownloadPolicy,
    /// Base URL of the server answering `/-/d/` for `download = "proxy-url"`, no trailing slash.
    pub proxy_url: Option<String>,
    /// Lifetime of cached listings.
    pub cache_ttl: Duration,
    /// `cache_ttl_by_depth`: (depth, ttl) rows sorted by depth; a folder at depth `d` (the
    /// mount's root is 0) takes the row with the greatest depth not above `d`, and `cache_ttl`
    /// when there is none.
    pub cache_ttl_by_depth: Vec<(u32, Duration)>,
    /// `traffic_budget`: bytes this mount may download from 123 per calendar month (China
    /// time) before its downloads answer 503; `None` for no budget.
    pub traffic_budget: Option<u64>,
    pub read_only: bool,
    /// Anyone may read this mount without credentials (writes still need a user).
    pub anonymous: bool,
    pub backend: BackendConfig,
    /// When a PUT is answered (open mounts; `Background` for the others).
    pub upload: UploadMode,
    /// Slices of one upload sent in parallel (open mounts).
    pub upload_slices: usize,
    /// What a client's DELETE does on 123 (open and web mounts; `Trash` for the others).
    pub delete: DeleteMode,
}

impl MountConfig {
    /// The path without its leading slash: `"open"`, or `""` for the mount at `/`.
    pub fn name(&self) -> &str {
        &self.path[1..]
    }
}

#[derive(Clone, Debug)]
pub enum BackendConfig {
    Open(OpenMountConfig),
    Share(ShareMountConfig),
    Link(LinkMountConfig),
    Web(WebMountConfig),
}

impl BackendConfig {
    /// The backend's name as written in the config file (`"open"`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Open(_) => "open",
            Self::Share(_) => "share",
            Self::Link(_) => "link",
            Self::Web(_) => "web",
        }
    }
}

/// A public share link, read through 123's signed web API.
#[derive(Clone, Debug)]
pub struct ShareMountConfig {
    /// The last path segment of `https://www.123pan.com/s/<share_key>` (without `.html`).
    pub share_key: String,
    /// The extraction code (提取码), if the share has one.
    pub share_password: Option<Secret>,
    /// The folder id shown as the mount's root; 0 is the share's root.
    pub root_id: u64,
    /// A Bearer token of a logged-in web session (lets large files resolve).
    pub access_token: Option<Secret>,
    /// Without a trailing slash.
    pub api_base: String,
}

/// A personal account through 123's (unofficial) web API.
#[derive(Clone, Debug)]
pub struct WebMountConfig {
    /// A phone number, or an e-mail address (then e-mail login is used).
    pub username: String,
    /// Empty when the mount logs in with `token`.
    pub password: Secret,
    /// A pasted browser session token (the JWT in the web page's local storage), used instead
    /// of logging in; never renewed (issue 21).
    pub token: Option<Secret>,
    /// The folder id shown as the mount's root; 0 is the drive's root.
    pub root_id: u64,
    /// The web API, without a trailing slash (requests go to `<api_base>/b/api/...`).
    pub api_base: String,
    /// The login host, without a trailing slash (`<login_base>/api/user/sign_in`).
    pub login_base: String,
}

/// A tree of direct links written in the config.
#[derive(Clone, Debug)]
pub struct LinkMountConfig {
    /// The parsed `urls` text.
    pub tree: crate::backend::link::LinkTree,
    /// Key for `auth_key` signing; `None` when the links are served unsigned.
    pub direct_link_key: Option<Secret>,
    /// The account uid that `auth_key` carries (required with a key).
    pub uid: u64,
    /// Validity of a signed link.
    pub direct_link_valid: Duration,
    /// Which path form `auth_key` hashes (docs/123.md, web §6).
    pub auth_key_path: crate::backend::auth_key::AuthKeyPath,
}

/// How an Open mount obtains its access tokens (issue 21). `client_id`/`client_secret` of the
/// mount config are the developer keys, or the user's OAuth app for `OAuth`.
#[derive(Clone, Debug)]
pub enum OpenLogin {
    /// `client_id` + `client_secret`: `POST /api/v1/access_token` (developer keys).
    Developer,
    /// `refresh_token` of the user's own OAuth app: the OAuth token endpoint. The value is the
    /// first seed only (empty when the mount is set up by `authorize` instead); rotated tokens
    /// are kept in `state_dir`. `redirect_uri` and `authorize_url` are what the `authorize`
    /// command needs.
    OAuth {
        refresh_token: Secret,
        redirect_uri: Option<String>,
        authorize_url: String,
    },
    /// `renew_url` + `refresh_token`: a token-renewal service (OpenList's protocol).
    Renew { url: String, refresh_token: Secret },
    /// `access_token`: a pasted token, never renewed.
    AccessToken { access_token: Secret },
}

impl OpenLogin {
    /// The config key that names this way of logging in, for `check` and logs.
    pub fn name(&self) -> &'static str {
        match self {
            OpenLogin::Developer => "developer keys (client_id + client_secret)",
            OpenLogin::OAuth { refresh_token, .. } if refresh_token.expose().is_empty() => {
                "own OAuth app (redirect_uri + `authorize`)"
            }
            OpenLogin::OAuth { .. } => "own OAuth app (refresh_token)",
            OpenLogin::Renew { .. } => "renewal service (renew_url + refresh_token)",
            OpenLogin::AccessToken { .. } => "pasted access_token",
        }
    }
}

#[derive(Clone, Debug)]
pub struct OpenMountConfig {
    pub client_id: String,
    pub client_secret: Secret,
    /// Which way the mount logs in.
    pub login: OpenLogin,
    /// The 123 folder id shown as the mount's root; 0 is the drive's root.
    pub root_id: u64,
    /// Without a trailing slash.
    pub api_base: String,
    /// Serve files through the account's direct-link space instead of `download_info`.
    pub direct_link: bool,
    /// Key for direct-link `auth_key` signing; `None` when unsigned.
    pub direct_link_key: Option<Secret>,
    /// Validity of a signed direct link.
    pub direct_link_valid: Duration,
    /// Which path form `auth_key` hashes (docs/123.md, web §6).
    pub auth_key_path: crate::backend::auth_key::AuthKeyPath,
}

/// How a GET of a file reaches the client's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadPolicy {
    /// Redirect when the backend's link is portable, proxy otherwise.
    Auto,
    /// 302 to the upstream URL.
    Redirect,
    /// This server fetches and streams the bytes.
    Proxy,
    /// 302 to a signed `<proxy_url>/-/d/...` URL, which proxies.
    ProxyUrl,
}

impl DownloadPolicy {
    pub const ALL: [DownloadPolicy; 4] = [Self::Auto, Self::Redirect, Self::Proxy, Self::ProxyUrl];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Redirect => "redirect",
            Self::Proxy => "proxy",
            Self::ProxyUrl => "proxy-url",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|policy| policy.as_str() == name)
    }
}

impl fmt::Display for DownloadPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential or key. Its `Debug` and `Display` print `<redacted>`, so it can sit in structs
/// that are logged; `expose` is the one way to the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_string())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reads and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| ConfigError::file(path, format!("cannot read the file: {err}")))?;
    parse(&text, path)
}

/// Validates config text read from `source` (named in messages; relative paths in the file are
/// resolved against its directory). Touches nothing outside, except reading the environment
/// variables that `*_env` keys name.
pub fn parse(text: &str, source: &Path) -> Result<Config, ConfigError> {
    resolve::parse_with_env(text, source, &|name| std::env::var_os(name))
}
