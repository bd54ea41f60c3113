//! `[server]`: listen address, URLs, keys, limits and timeouts.

use super::*;

pub(super) fn resolve_server(
    report: &mut Report,
    mut table: toml::Table,
    base_dir: &Path,
) -> ServerConfig {
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

/// The longest `base_path` accepted.
const MAX_BASE_PATH_LEN: usize = 256;

/// `server.base_path`: `/` or `/a/b` (no trailing slash), plain path characters only (letters,
/// digits, `-`, `.`, `_`, `~`), no empty, `.` or `..` segment, at most 256 bytes. Returned
/// without a trailing slash, empty for `/`.
pub(super) fn base_path(report: &mut Report, key: String, value: &str) -> String {
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
