//! From TOML text to a validated `Config`, collecting every problem on the way.
//!
//! The checks report a problem and carry on with a placeholder value, so one pass finds every
//! problem; a `Config` is returned only when none was found.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::file::{
    fields_of, list, BackendKind, RawLink, RawMount, RawOpen, RawServer, RawShare, RawUser, RawWeb,
    Report, Section, TOP_KEYS,
};
use super::*;
use crate::backend::auth_key::AuthKeyPath;

/// Looks up an environment variable (the process environment, or a map in tests).
pub(super) type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

pub(super) fn parse_with_env(text: &str, source: &Path, env: Env) -> Result<Config, ConfigError> {
    let mut root: toml::Table =
        toml::from_str(text).map_err(|err| ConfigError::syntax(source, text, &err))?;
    let mut report = Report::default();
    let base_dir = source.parent().unwrap_or(Path::new(""));

    Section::new("").strip_unknown(&mut report, &mut root, TOP_KEYS, |_| {
        let fix = format!("valid top-level keys are: {}", list(TOP_KEYS));
        ("unknown key".to_string(), fix)
    });
    let server_table = match root.remove("server") {
        None => toml::Table::new(),
        Some(toml::Value::Table(table)) => table,
        Some(_) => {
            report.add("server", "expected a table; write it as a [server] section");
            toml::Table::new()
        }
    };
    let server = resolve_server(&mut report, server_table, base_dir);

    let mount_tables = array_of_tables(&mut report, "mounts", root.remove("mounts"));
    if mount_tables.is_empty() {
        report.add(
            "mounts",
            "no mounts are defined; add at least one [[mounts]] table (see config.example.toml)",
        );
    }
    let has_signing_key = server.signing_key.is_some();
    let has_public_url = server.public_url.is_some();
    let mounts: Vec<MountConfig> = mount_tables
        .into_iter()
        .enumerate()
        .map(|(i, table)| {
            resolve_mount(&mut report, i, table, has_signing_key, has_public_url, env)
        })
        .collect();
    check_mount_paths(&mut report, &mounts);

    let mount_paths: Vec<&str> = mounts.iter().map(|m| m.path.as_str()).collect();
    let users: Vec<UserConfig> = array_of_tables(&mut report, "users", root.remove("users"))
        .into_iter()
        .enumerate()
        .map(|(i, table)| resolve_user(&mut report, i, table, &mount_paths))
        .collect();
    check_user_names(&mut report, &users);

    let client_tables = array_of_tables(&mut report, "clients", root.remove("clients"));
    let clients = super::clients::resolve(&mut report, client_tables);

    if !report.problems.is_empty() {
        return Err(ConfigError::new(source, report.problems));
    }
    Ok(Config {
        source: source.to_path_buf(),
        server,
        users,
        mounts,
        clients,
    })
}

/// The tables of `[[key]]`; anything else is reported.
fn array_of_tables(report: &mut Report, key: &str, value: Option<toml::Value>) -> Vec<toml::Table> {
    match value {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| match item {
                toml::Value::Table(table) => Some(table),
                _ => {
                    report.add(format!("{key}[{i}]"), "expected a table");
                    None
                }
            })
            .collect(),
        Some(_) => {
            report.add(
                key,
                format!("expected an array of tables; write each entry as a [[{key}]] table (two brackets)"),
            );
            Vec::new()
        }
    }
}

fn resolve_server(report: &mut Report, mut table: toml::Table, base_dir: &Path) -> ServerConfig {
    let mut s = Section::new("server");
    let valid = fields_of::<RawServer>();
    s.strip_unknown(report, &mut table, valid, |_| {
        let fix = format!("valid keys in [server] are: {}", list(valid));
        ("unknown key".to_string(), fix)
    });
    let raw: RawServer = s.deserialize(report, table);

    let listen = match raw.listen {
        None => DEFAULT_LISTEN
            .parse()
            .expect("the default is a socket address"),
        Some(text) => text.trim().parse::<SocketAddr>().unwrap_or_else(|_| {
            report.add(
                s.key("listen"),
                format!(
                    "\"{text}\" is not a socket address; write an IP address and a port, like \
                     \"127.0.0.1:8080\" or \"[::]:8080\""
                ),
            );
            ([127, 0, 0, 1], 0).into()
        }),
    };
    let public_url = raw
        .public_url
        .map(|url| http_url(report, s.key("public_url"), &url, "https://dav.example.com"));
    let base_path = raw
        .base_path
        .map(|p| base_path(report, s.key("base_path"), &p))
        .unwrap_or_default();
    let signing_key = raw.signing_key.filter(|key| !key.is_empty()).map(|key| {
        let len = key.chars().count();
        if len < MIN_SIGNING_KEY_LEN {
            report.add(
                s.key("signing_key"),
                format!(
                    "too short ({len} characters); use at least {MIN_SIGNING_KEY_LEN} random \
                     characters, e.g. the output of `openssl rand -hex 32`"
                ),
            );
        }
        Secret::from(key)
    });
    let sign_ttl = duration(
        report,
        &s,
        "sign_ttl",
        raw.sign_ttl,
        DEFAULT_SIGN_TTL,
        false,
    );
    let state_dir = match raw.state_dir {
        Some(dir) if dir.as_os_str().is_empty() => {
            report.add(
                s.key("state_dir"),
                "empty; set it to a writable directory, or remove the key for the default",
            );
            dir
        }
        dir => base_dir.join(dir.unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))),
    };
    let (tls_cert, tls_key) = match (raw.tls_cert, raw.tls_key) {
        (Some(_), None) => {
            report.add(
                s.key("tls_key"),
                "missing; tls_cert is set, and HTTPS needs both tls_cert and tls_key (PEM files); \
                 set tls_key, or remove tls_cert to serve plain HTTP",
            );
            (None, None)
        }
        (None, Some(_)) => {
            report.add(
                s.key("tls_cert"),
                "missing; tls_key is set, and HTTPS needs both tls_cert and tls_key (PEM files); \
                 set tls_cert, or remove tls_key to serve plain HTTP",
            );
            (None, None)
        }
        (cert, key) => (
            cert.map(|p| base_dir.join(p)),
            key.map(|p| base_dir.join(p)),
        ),
    };

    let metrics_listen = raw.metrics_listen.and_then(|text| {
        text.trim().parse::<SocketAddr>().ok().or_else(|| {
            report.add(
                s.key("metrics_listen"),
                format!(
                    "\"{text}\" is not a socket address; write an IP address and a port, like \
                     \"127.0.0.1:9090\", or remove the key to serve /-/metrics on listen"
                ),
            );
            None
        })
    });
    let ready_probe_interval = duration(
        report,
        &s,
        "ready_probe_interval",
        raw.ready_probe_interval,
        DEFAULT_READY_PROBE_INTERVAL,
        false,
    );
    let (spool_max, upload_workers) =
        super::upload::resolve_server_upload(report, &s, raw.spool_max, raw.upload_workers);
    let upstream_connect_timeout = duration(
        report,
        &s,
        "upstream_connect_timeout",
        raw.upstream_connect_timeout,
        DEFAULT_UPSTREAM_CONNECT_TIMEOUT,
        false,
    );
    let upstream_first_byte_timeout = duration(
        report,
        &s,
        "upstream_first_byte_timeout",
        raw.upstream_first_byte_timeout,
        DEFAULT_UPSTREAM_FIRST_BYTE_TIMEOUT,
        false,
    );
    let upstream_idle_timeout = duration(
        report,
        &s,
        "upstream_idle_timeout",
        raw.upstream_idle_timeout,
        DEFAULT_UPSTREAM_IDLE_TIMEOUT,
        false,
    );
    let upstream_deadline = duration(
        report,
        &s,
        "upstream_deadline",
        raw.upstream_deadline,
        DEFAULT_UPSTREAM_DEADLINE,
        false,
    );
    let header_timeout = duration(
        report,
        &s,
        "header_timeout",
        raw.header_timeout,
        DEFAULT_HEADER_TIMEOUT,
        false,
    );
    let keepalive_timeout = duration(
        report,
        &s,
        "keepalive_timeout",
        raw.keepalive_timeout,
        DEFAULT_KEEPALIVE_TIMEOUT,
        false,
    );
    let body_idle_timeout = duration(
        report,
        &s,
        "body_idle_timeout",
        raw.body_idle_timeout,
        DEFAULT_BODY_IDLE_TIMEOUT,
        false,
    );
    let connections_per_ip = super::upload::in_range(
        report,
        &s,
        "connections_per_ip",
        raw.connections_per_ip,
        DEFAULT_CONNECTIONS_PER_IP,
        MAX_CONNECTIONS_PER_IP,
    );
    let trusted_proxies = raw
        .trusted_proxies
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, text)| {
            text.trim().parse::<std::net::IpAddr>().ok().or_else(|| {
                report.add(
                    format!("{}[{i}]", s.key("trusted_proxies")),
                    format!("\"{text}\" is not an IP address; list the addresses of your reverse proxies, like \"127.0.0.1\""),
                );
                None
            })
        })
        .collect();
    let host_aliases = raw
        .host_aliases
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let host = text.trim().to_ascii_lowercase();
            let plain = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if plain {
                Some(host)
            } else {
                report.add(
                    format!("{}[{i}]", s.key("host_aliases")),
                    format!("\"{text}\" is not a host name; write it as clients do in URLs, like \"dav.example.com\" or \"nas.local:8080\""),
                );
                None
            }
        })
        .collect();

    let lock_timeout_max = duration(
        report,
        &s,
        "lock_timeout_max",
        raw.lock_timeout_max,
        DEFAULT_LOCK_TIMEOUT_MAX,
        false,
    );
    let stores = super::limits::resolve(
        report,
        &s,
        super::limits::RawLimits {
            lock_timeout_max,
            locks_per_user_max: raw.locks_per_user_max,
            props_max_bytes: raw.props_max_bytes,
            props_per_user_max_bytes: raw.props_per_user_max_bytes,
            junk_max_files: raw.junk_max_files,
            junk_per_user_max_files: raw.junk_per_user_max_files,
        },
    );

    let qps_scale = super::upstream::resolve_qps_scale(report, &s, raw.qps_scale);
    let user_agent = super::upstream::resolve_user_agent(report, &s, raw.user_agent);

    ServerConfig {
        listen,
        public_url,
        base_path,
        signing_key,
        sign_ttl,
        state_dir,
        tls_cert,
        tls_key,
        spool_max,
        upload_workers,
        ready_probe_interval,
        metrics_auth: raw.metrics_auth.unwrap_or(false),
        metrics_listen,
        upstream_connect_timeout,
        upstream_first_byte_timeout,
        upstream_idle_timeout,
        trusted_proxies,
        host_aliases,
        upstream_deadline,
        header_timeout,
        keepalive_timeout,
        body_idle_timeout,
        connections_per_ip,
        stores,
        qps_scale,
        user_agent,
    }
}

fn resolve_mount(
    report: &mut Report,
    index: usize,
    table: toml::Table,
    has_signing_key: bool,
    has_public_url: bool,
    env: Env,
) -> MountConfig {
    let mut s = Section::new(format!("mounts[{index}]"));
    let common = fields_of::<RawMount>();
    let (common_table, mut backend_table): (toml::Table, toml::Table) = table
        .into_iter()
        .partition(|(key, _)| common.contains(&key.as_str()));
    let raw: RawMount = s.deserialize(report, common_table);

    // The backend decides which of the other keys are valid.
    let kind = match raw.backend.as_deref() {
        None => {
            s.missing(
                report,
                "backend",
                &format!("set it to one of: {}", available_backends()),
            );
            None
        }
        Some(name) => match BackendKind::from_name(name) {
            Some(kind) => Some(kind),
            None => {
                report.add(
                    s.key("backend"),
                    format!(
                        "unknown backend \"{name}\"; use one of: {}",
                        available_backends()
                    ),
                );
                None
            }
        },
    };

    let mut valid: Vec<&str> = common.to_vec();
    match kind {
        Some(kind) => {
            valid.extend(kind.keys());
            s.strip_unknown(report, &mut backend_table, &valid, |key| {
                let owners: Vec<String> = BackendKind::ALL
                    .into_iter()
                    .filter(|other| *other != kind && other.keys().contains(&key))
                    .map(|other| format!("\"{}\"", other.name()))
                    .collect();
                let problem = if owners.is_empty() {
                    "unknown key".to_string()
                } else {
                    format!(
                        "not a key of backend \"{}\" (it belongs to backend {})",
                        kind.name(),
                        owners.join(" and ")
                    )
                };
                let fix = format!(
                    "valid keys for a mount with backend = \"{}\" are: {}",
                    kind.name(),
                    list(&valid)
                );
                (problem, fix)
            });
        }
        None => {
            // Without a usable backend, only keys that no backend knows are reported.
            valid.extend(BackendKind::ALL.into_iter().flat_map(|kind| kind.keys()));
            s.strip_unknown(report, &mut backend_table, &valid, |_| {
                let fix = format!(
                    "valid keys for a mount are: {}, and those of its backend",
                    list(common)
                );
                ("unknown key".to_string(), fix)
            });
        }
    }

    let path = mount_path(report, &s, raw.path);
    let download = match raw.download {
        None => DownloadPolicy::Auto,
        Some(name) => DownloadPolicy::from_name(&name).unwrap_or_else(|| {
            let names: Vec<&str> = DownloadPolicy::ALL.iter().map(|p| p.as_str()).collect();
            report.add(
                s.key("download"),
                format!(
                    "\"{name}\" is not a download policy; use one of: {}",
                    list(&names)
                ),
            );
            DownloadPolicy::Auto
        }),
    };
    let proxy_url = raw
        .proxy_url
        .map(|url| http_url(report, s.key("proxy_url"), &url, "https://dl.example.com"));
    if download == DownloadPolicy::ProxyUrl {
        if proxy_url.is_none() && !has_public_url && !s.is_bad("proxy_url") {
            report.add(
                s.key("proxy_url"),
                "missing; download = \"proxy-url\" needs it: set it to the base URL at which this \
                 server's /-/d/ route is reachable, like \"https://dl.example.com\" (or set \
                 server.public_url, which it then defaults to)",
            );
        }
        if !has_signing_key {
            report.add(
                s.key("download"),
                "\"proxy-url\" signs download URLs with server.signing_key, which is not set; add \
                 signing_key to [server] (at least 16 random characters, e.g. from \
                 `openssl rand -hex 32`)",
            );
        }
    }
    let cache_ttl = duration(
        report,
        &s,
        "cache_ttl",
        raw.cache_ttl,
        DEFAULT_CACHE_TTL,
        true,
    );

    let mut upload = (UploadMode::default(), DEFAULT_UPLOAD_SLICES);
    let backend = match kind {
        Some(BackendKind::Open) => {
            let raw_open: RawOpen = s.deserialize(report, backend_table);
            upload = super::upload::resolve_mount_upload(
                report,
                &s,
                raw_open.upload.clone(),
                raw_open.upload_slices,
            );
            BackendConfig::Open(resolve_open(report, &s, raw_open, env))
        }
        Some(BackendKind::Share) => {
            let raw_share: RawShare = s.deserialize(report, backend_table);
            BackendConfig::Share(resolve_share(report, &s, raw_share))
        }
        Some(BackendKind::Link) => {
            let raw_link: RawLink = s.deserialize(report, backend_table);
            BackendConfig::Link(resolve_link(report, &s, raw_link))
        }
        Some(BackendKind::Web) => {
            let raw_web: RawWeb = s.deserialize(report, backend_table);
            upload = super::upload::resolve_mount_upload(
                report,
                &s,
                raw_web.upload.clone(),
                raw_web.upload_slices,
            );
            BackendConfig::Web(resolve_web(report, &s, raw_web, env))
        }
        // The backend's problem is reported already; a placeholder keeps the other checks going.
        _ => BackendConfig::Open(OpenMountConfig {
            client_id: String::new(),
            client_secret: Secret::from(""),
            login: OpenLogin::Developer,
            root_id: 0,
            api_base: String::new(),
            direct_link: false,
            direct_link_key: None,
            direct_link_valid: DEFAULT_DIRECT_LINK_VALID,
            auth_key_path: AuthKeyPath::default(),
        }),
    };

    MountConfig {
        path,
        download,
        proxy_url,
        cache_ttl,
        read_only: raw.read_only.unwrap_or(false),
        anonymous: raw.anonymous.unwrap_or(false),
        backend,
        upload: upload.0,
        upload_slices: upload.1,
    }
}

fn available_backends() -> String {
    let names: Vec<&str> = BackendKind::ALL
        .into_iter()
        .map(BackendKind::name)
        .collect();
    list(&names)
}

/// Normalises a mount path to "/name" (or "/"), reporting what is not allowed.
fn mount_path(report: &mut Report, s: &Section, raw: Option<String>) -> String {
    let Some(raw) = raw else {
        s.missing(
            report,
            "path",
            "set it to the URL path of the mount, like \"/open\"",
        );
        return String::new();
    };
    let key = s.key("path");
    let Some(rest) = raw.strip_prefix('/') else {
        report.add(
            key,
            format!("\"{raw}\" must start with \"/\"; write \"/{raw}\""),
        );
        return String::new();
    };
    let name = rest.trim_end_matches('/');
    if name.contains('/') {
        let first = name
            .split('/')
            .find(|seg| !seg.is_empty())
            .unwrap_or("name");
        report.add(
            key,
            format!(
                "\"{raw}\" is nested; a mount is a single segment under the root, like \"/{first}\""
            ),
        );
        return String::new();
    }
    if name == "-" {
        report.add(
            key,
            "\"/-\" is reserved for the server's own routes (/-/d/, /-/healthz, ...); choose another name",
        );
        return String::new();
    }
    if name == "." || name == ".." {
        report.add(
            key,
            format!("\"{raw}\" is not a usable name; choose another"),
        );
        return String::new();
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '\\' | '?' | '#' | '%'))
    {
        report.add(
            key,
            format!(
                "\"{raw}\" contains a character a mount name cannot have (control characters, \
                 \\, ?, #, %); choose another name"
            ),
        );
        return String::new();
    }
    format!("/{name}")
}

/// Paths are unique, and "/" stands alone.
fn check_mount_paths(report: &mut Report, mounts: &[MountConfig]) {
    for (i, mount) in mounts.iter().enumerate() {
        // An empty path had its problem reported already.
        if mount.path.is_empty() {
            continue;
        }
        if let Some(first) = mounts[..i].iter().position(|m| m.path == mount.path) {
            report.add(
                format!("mounts[{i}].path"),
                format!(
                    "\"{}\" is already used by mounts[{first}]; give each mount its own path",
                    mount.path
                ),
            );
        } else if mount.path == "/" && mounts.len() > 1 {
            report.add(
                format!("mounts[{i}].path"),
                "\"/\" can only be used when it is the only mount; give each mount its own path, \
                 like \"/open\"",
            );
        }
    }
}

fn resolve_open(report: &mut Report, s: &Section, raw: RawOpen, env: Env) -> OpenMountConfig {
    let (client_id, client_secret, login) = super::open_login::resolve(
        report,
        s,
        super::open_login::RawLogin {
            client_id: raw.client_id,
            client_secret: raw.client_secret,
            client_secret_env: raw.client_secret_env,
            refresh_token: raw.refresh_token,
            renew_url: raw.renew_url,
            access_token: raw.access_token,
        },
        env,
    );
    let api_base = http_url(
        report,
        s.key("api_base"),
        raw.api_base.as_deref().unwrap_or(DEFAULT_OPEN_API_BASE),
        DEFAULT_OPEN_API_BASE,
    );
    let direct_link_valid = duration(
        report,
        s,
        "direct_link_valid",
        raw.direct_link_valid,
        DEFAULT_DIRECT_LINK_VALID,
        false,
    );
    OpenMountConfig {
        client_id,
        client_secret,
        login,
        root_id: raw.root_id.unwrap_or(0),
        api_base,
        direct_link: raw.direct_link.unwrap_or(false),
        direct_link_key: raw
            .direct_link_key
            .filter(|key| !key.is_empty())
            .map(Secret::from),
        direct_link_valid,
        auth_key_path: auth_key_path(report, s, raw.auth_key_path),
    }
}

fn resolve_share(report: &mut Report, s: &Section, raw: RawShare) -> ShareMountConfig {
    const FIX: &str = "set it to the last part of the share's URL, like \"vj8eVv-QQ413\" for \
                       https://www.123pan.com/s/vj8eVv-QQ413.html";
    let share_key = match raw.share_key {
        None => {
            s.missing(report, "share_key", FIX);
            String::new()
        }
        Some(key) => {
            let trimmed = key.trim();
            if trimmed.is_empty() {
                report.add(s.key("share_key"), format!("empty; {FIX}"));
            } else if trimmed.contains(['/', '?', '#', ' ']) || trimmed.ends_with(".html") {
                let last = trimmed
                    .split(['?', '#'])
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches(".html");
                report.add(
                    s.key("share_key"),
                    format!(
                        "\"{key}\" is not a share key; write only the part after /s/, without \
                         .html, like \"{last}\""
                    ),
                );
            }
            trimmed.to_string()
        }
    };
    let api_base = http_url(
        report,
        s.key("api_base"),
        raw.api_base.as_deref().unwrap_or(DEFAULT_WEB_API_BASE),
        DEFAULT_WEB_API_BASE,
    );
    if api_base.ends_with("/b/api") {
        report.add(
            s.key("api_base"),
            format!(
                "\"{api_base}\" includes the API path; requests go to <api_base>/b/api/..., so \
                 write only the scheme and host, like \"{DEFAULT_WEB_API_BASE}\""
            ),
        );
    }
    ShareMountConfig {
        share_key,
        share_password: raw
            .share_password
            .filter(|p| !p.is_empty())
            .map(Secret::from),
        root_id: raw.root_id.unwrap_or(0),
        access_token: raw
            .access_token
            .filter(|t| !t.trim().is_empty())
            .map(|t| Secret::from(t.trim())),
        api_base,
    }
}

fn resolve_web(report: &mut Report, s: &Section, raw: RawWeb, env: Env) -> WebMountConfig {
    const USER_FIX: &str =
        "set it to the phone number (or e-mail address) you log in to 123pan with";
    let username = match raw.username {
        None => {
            s.missing(report, "username", USER_FIX);
            String::new()
        }
        Some(name) => {
            let name = name.trim().to_string();
            if name.is_empty() {
                report.add(s.key("username"), format!("empty; {USER_FIX}"));
            }
            name
        }
    };
    let password = match (raw.password, raw.password_env) {
        (Some(_), Some(_)) => {
            report.add(
                s.key("password"),
                "set either password or password_env, not both",
            );
            String::new()
        }
        (None, None) => {
            if !s.is_bad("password_env") {
                s.missing(
                    report,
                    "password",
                    "set password, or password_env to the name of an environment variable that \
                     holds it",
                );
            }
            String::new()
        }
        (Some(password), None) => {
            if password.is_empty() {
                report.add(
                    s.key("password"),
                    "empty; set it to the account's password, or use password_env",
                );
            }
            password
        }
        (None, Some(var)) => secret_from_env(report, s.key("password_env"), &var, env),
    };
    let mut base = |key: &str, value: Option<String>, default: &str| {
        let url = http_url(
            report,
            s.key(key),
            value.as_deref().unwrap_or(default),
            default,
        );
        if url.ends_with("/b/api") || url.ends_with("/api") {
            report.add(
                s.key(key),
                format!(
                    "\"{url}\" includes the API path; write only the scheme and host, like \
                     \"{default}\""
                ),
            );
        }
        url
    };
    let api_base = base("api_base", raw.api_base, DEFAULT_WEB_API_BASE);
    let login_base = base("login_base", raw.login_base, DEFAULT_WEB_LOGIN_BASE);
    WebMountConfig {
        username,
        password: Secret::from(password),
        root_id: raw.root_id.unwrap_or(0),
        api_base,
        login_base,
    }
}

fn resolve_link(report: &mut Report, s: &Section, raw: RawLink) -> LinkMountConfig {
    const GRAMMAR: &str = "one file per line as [size:][mtime:]URL, folders as lines ending in \
                           ':', nested by two spaces (see config.example.toml)";
    let empty = crate::backend::link::LinkTree { nodes: Vec::new() };
    let tree = match raw.urls {
        None => {
            s.missing(report, "urls", &format!("list the files: {GRAMMAR}"));
            empty
        }
        Some(text) => match crate::backend::link::tree::parse(&text) {
            Ok(tree) if tree.nodes.len() <= 1 => {
                report.add(s.key("urls"), format!("has no files; write {GRAMMAR}"));
                tree
            }
            Ok(tree) => tree,
            Err(err) => {
                report.add(s.key("urls"), format!("{err}; write {GRAMMAR}"));
                empty
            }
        },
    };
    let direct_link_key = raw
        .direct_link_key
        .filter(|key| !key.is_empty())
        .map(Secret::from);
    let uid = match raw.uid {
        Some(uid) => uid,
        None => {
            if direct_link_key.is_some() {
                s.missing(
                    report,
                    "uid",
                    "direct_link_key signs links with your account's uid: set uid to the number \
                     shown on 123's direct-link settings page (it is the first path segment of \
                     your direct links)",
                );
            }
            0
        }
    };
    let direct_link_valid = duration(
        report,
        s,
        "direct_link_valid",
        raw.direct_link_valid,
        DEFAULT_DIRECT_LINK_VALID,
        false,
    );
    LinkMountConfig {
        tree,
        direct_link_key,
        uid,
        direct_link_valid,
        auth_key_path: auth_key_path(report, s, raw.auth_key_path),
    }
}

/// `auth_key_path`: `auto` (default), `encoded` or `decoded` (docs/123.md, web §6).
fn auth_key_path(report: &mut Report, s: &Section, raw: Option<String>) -> AuthKeyPath {
    let Some(name) = raw else {
        return AuthKeyPath::default();
    };
    AuthKeyPath::from_name(&name).unwrap_or_else(|| {
        report.add(
            s.key("auth_key_path"),
            format!(
                "\"{name}\" is not a path form; use one of: {}",
                list(&AuthKeyPath::NAMES)
            ),
        );
        AuthKeyPath::default()
    })
}

/// The value of the environment variable a `*_env` key names.
pub(super) fn secret_from_env(report: &mut Report, key: String, var: &str, env: Env) -> String {
    let secret_key = key.trim_end_matches("_env");
    let problem = if var.is_empty() {
        "empty; set it to the name of an environment variable".to_string()
    } else {
        match env(var).map(OsString::into_string) {
            Some(Ok(value)) if !value.is_empty() => return value,
            Some(Ok(_)) => format!(
                "the environment variable {var} is empty; set it to the secret before starting, \
                 or put the secret in {secret_key}"
            ),
            Some(Err(_)) => format!("the environment variable {var} is not valid UTF-8"),
            None => format!(
                "the environment variable {var} is not set; export it before starting, or put \
                 the secret in {secret_key}"
            ),
        }
    };
    report.add(key, problem);
    String::new()
}

fn resolve_user(
    report: &mut Report,
    index: usize,
    mut table: toml::Table,
    mount_paths: &[&str],
) -> UserConfig {
    let mut s = Section::new(format!("users[{index}]"));
    let valid = fields_of::<RawUser>();
    s.strip_unknown(report, &mut table, valid, |key| {
        if key == "password" {
            // A plain password in a config file is a secret at rest; only hashes are accepted.
            return (
                "plain passwords are not accepted".to_string(),
                "run `pan123-webdav hash-password`, put its output in password_hash, and remove password".to_string(),
            );
        }
        let fix = format!("valid keys for a user are: {}", list(valid));
        ("unknown key".to_string(), fix)
    });
    let raw: RawUser = s.deserialize(report, table);

    let name = match raw.name {
        None => {
            s.missing(report, "name", "set it to the user's login name");
            String::new()
        }
        Some(name) => {
            if name.is_empty() {
                report.add(s.key("name"), "empty; set it to the user's login name");
            } else if name.contains(':') {
                report.add(
                    s.key("name"),
                    "must not contain \":\": HTTP Basic authentication splits the user name from \
                     the password at the first colon; choose another name",
                );
            }
            name
        }
    };
    let password_hash = match raw.password_hash {
        None => {
            s.missing(
                report,
                "password_hash",
                "generate one with `pan123-webdav hash-password`",
            );
            String::new()
        }
        Some(hash) => {
            if let Err(problem) = check_password_hash(&hash) {
                report.add(
                    s.key("password_hash"),
                    format!("{problem}; generate one with `pan123-webdav hash-password`"),
                );
            }
            hash
        }
    };
    let mounts = match raw.mounts {
        None => vec!["*".to_string()],
        Some(entries) => {
            if entries.is_empty() {
                report.add(
                    s.key("mounts"),
                    "empty, so this user could see nothing; list mount paths like [\"/open\"], \
                     or [\"*\"] for all mounts",
                );
            }
            entries
                .iter()
                .enumerate()
                .map(|(j, entry)| user_mount(report, &s, j, entry, mount_paths))
                .collect()
        }
    };
    UserConfig {
        name,
        password_hash,
        mounts,
        write: raw.write.unwrap_or(false),
    }
}

/// One entry of a user's `mounts`: "*", or the path of a mount ("/open"; "open" is accepted).
fn user_mount(report: &mut Report, s: &Section, j: usize, entry: &str, mounts: &[&str]) -> String {
    if entry == "*" {
        return entry.to_string();
    }
    let path = format!("/{}", entry.trim_matches('/'));
    if !mounts.contains(&path.as_str()) {
        let mut known: Vec<&str> = mounts.iter().copied().filter(|p| !p.is_empty()).collect();
        known.dedup();
        report.add(
            format!("{}[{j}]", s.key("mounts")),
            format!(
                "no mount has the path \"{entry}\"; the mounts are: {} (or use \"*\" for all)",
                list(&known)
            ),
        );
    }
    path
}

fn check_user_names(report: &mut Report, users: &[UserConfig]) {
    for (i, user) in users.iter().enumerate() {
        if user.name.is_empty() {
            continue;
        }
        if let Some(first) = users[..i].iter().position(|u| u.name == user.name) {
            report.add(
                format!("users[{i}].name"),
                format!(
                    "\"{}\" is already defined by users[{first}]; user names must be unique",
                    user.name
                ),
            );
        }
    }
}

/// Checks that a password hash is an argon2 PHC string that can be verified. The message never
/// includes the hash.
/// The most memory (KiB) one password hash may ask argon2 for.
const MAX_ARGON2_M_COST: u32 = 256 * 1024;

pub(crate) fn check_password_hash(phc: &str) -> Result<(), String> {
    use argon2::password_hash::PasswordHash;
    let hash = PasswordHash::new(phc).map_err(|err| format!("not a PHC password hash ({err})"))?;
    if argon2::Algorithm::try_from(hash.algorithm).is_err() {
        return Err(format!(
            "uses the algorithm \"{}\"; only argon2 hashes ($argon2id$...) are supported",
            hash.algorithm
        ));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("has no salt or no hash value".to_string());
    }
    let params = argon2::Params::try_from(&hash)
        .map_err(|err| format!("has invalid argon2 parameters ({err})"))?;
    // Each check holds m KiB; two run at once. 256 MiB is far above what hash-password writes.
    if params.m_cost() > MAX_ARGON2_M_COST {
        return Err(format!(
            "asks for {} MiB of memory per check (m={}); at most {} MiB is allowed: make a new hash with `pan123-webdav hash-password`",
            params.m_cost() / 1024,
            params.m_cost(),
            MAX_ARGON2_M_COST / 1024
        ));
    }
    Ok(())
}

/// An http(s) URL to which paths are appended: no query or fragment; returned without a
/// trailing slash.
pub(super) fn http_url(report: &mut Report, key: String, value: &str, example: &str) -> String {
    let trimmed = value.trim_end_matches('/');
    let problem = match url::Url::parse(trimmed) {
        Err(err) => Some(format!("\"{value}\" is not a URL ({err})")),
        Ok(url) if !matches!(url.scheme(), "http" | "https") => {
            Some(format!("\"{value}\" is not an http(s) URL"))
        }
        Ok(url) if url.host_str().is_none_or(str::is_empty) => {
            Some(format!("\"{value}\" has no host"))
        }
        Ok(url) if url.query().is_some() || url.fragment().is_some() => {
            Some(format!("\"{value}\" must not have a query or a fragment"))
        }
        Ok(_) => None,
    };
    if let Some(problem) = problem {
        report.add(key, format!("{problem}; write it like \"{example}\""));
    }
    trimmed.to_string()
}

/// The longest `base_path` accepted.
const MAX_BASE_PATH_LEN: usize = 256;

/// `server.base_path`: `/` or `/a/b` (no trailing slash), plain path characters only (letters,
/// digits, `-`, `.`, `_`, `~`), no empty, `.` or `..` segment, at most 256 bytes. Returned
/// without a trailing slash, empty for `/`.
fn base_path(report: &mut Report, key: String, value: &str) -> String {
    let example = "write it like \"/dav\"";
    let problem = if !value.starts_with('/') {
        Some("must start with /")
    } else if value.len() > MAX_BASE_PATH_LEN {
        Some("is longer than 256 bytes")
    } else if value != "/" && value.ends_with('/') {
        Some("must not end with / (unless it is just /)")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/-._~".contains(&b))
    {
        Some("may hold only letters, digits, -, ., _, ~ and /")
    } else if value != "/"
        && value[1..]
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        Some("must not have an empty, . or .. segment")
    } else if value == "/-" || value.starts_with("/-/") {
        Some("must not start with /-/ (the gateway's own routes)")
    } else {
        None
    };
    if let Some(problem) = problem {
        report.add(key, format!("\"{value}\" {problem}; {example}"));
        return String::new();
    }
    value.trim_end_matches('/').to_string()
}

/// A duration key: its default when absent; zero only where `allow_zero`.
fn duration(
    report: &mut Report,
    s: &Section,
    key: &str,
    value: Option<String>,
    default: Duration,
    allow_zero: bool,
) -> Duration {
    let Some(text) = value else {
        return default;
    };
    match parse_duration(&text) {
        Ok(d) if d.is_zero() && !allow_zero => {
            report.add(s.key(key), "must be longer than 0s");
            default
        }
        Ok(d) => d,
        Err(problem) => {
            report.add(
                s.key(key),
                format!("\"{text}\" is not a duration: {problem}"),
            );
            default
        }
    }
}
