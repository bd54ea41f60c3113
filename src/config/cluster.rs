//! `[cluster]`: several gateway instances sharing one Redis (issue 19). Without the section
//! nothing changes and no Redis code runs.

use serde::Deserialize;

use super::file::{fields_of, list, Report, Section};
use super::Secret;

/// Largest `cluster.instances` accepted: the local limiter divides 123's budget by it.
pub const MAX_INSTANCES: u32 = 1000;

/// What the instances share and how they reach it.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// `redis://[user:password@]host[:port][/db]`; a secret when it carries a password.
    pub redis_url: Secret,
    /// How many instances run, if the operator says: while Redis is unavailable each paces
    /// itself at 123's budget divided by this (a quarter when unknown).
    pub instances: Option<u32>,
    /// `http(s)://host:port` other instances reach this one at (GETs of its pending uploads
    /// are proxied from it); `None`: derived from `server.listen` (see [`Self::advertise`]).
    pub advertise_url: Option<String>,
}

impl ClusterConfig {
    /// The URL other instances reach this one at, `server.base_path` included: `advertise_url`,
    /// or `http(s)://<listen>` when `server.listen` names an address (not 0.0.0.0 or [::]).
    pub fn advertise(&self, server: &super::ServerConfig) -> Option<String> {
        let root = match &self.advertise_url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None if server.listen.ip().is_unspecified() => return None,
            None => {
                let scheme = if server.tls_cert.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{}", server.listen)
            }
        };
        Some(format!("{root}{}", server.base_path.trim_end_matches('/')))
    }
}

/// The keys of the `[cluster]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCluster {
    pub redis_url: Option<String>,
    pub instances: Option<i64>,
    pub advertise_url: Option<String>,
}

/// The `[cluster]` table, if present.
pub(super) fn resolve(report: &mut Report, value: Option<toml::Value>) -> Option<ClusterConfig> {
    let mut table = match value? {
        toml::Value::Table(table) => table,
        _ => {
            report.add(
                "cluster",
                "expected a table; write it as a [cluster] section",
            );
            return None;
        }
    };
    let mut s = Section::new("cluster");
    let valid = fields_of::<RawCluster>();
    s.strip_unknown(report, &mut table, valid, |_| {
        let fix = format!("valid keys in [cluster] are: {}", list(valid));
        ("unknown key".to_string(), fix)
    });
    let raw: RawCluster = s.deserialize(report, table);
    let instances = match raw.instances {
        None => None,
        Some(n) if (1..=i64::from(MAX_INSTANCES)).contains(&n) => Some(n as u32),
        Some(n) => {
            report.add(
                s.key("instances"),
                format!(
                    "{n} is out of range; set it to the number of gateway instances sharing \
                     this Redis, 1 to {MAX_INSTANCES}"
                ),
            );
            None
        }
    };
    let url = match raw.redis_url {
        None => {
            s.missing(
                report,
                "redis_url",
                "set it to the Redis every instance shares, like \"redis://127.0.0.1:6379\", \
                 or remove the [cluster] section to run one instance alone",
            );
            return None;
        }
        Some(url) => url,
    };
    if let Err(reason) = check_redis_url(&url) {
        report.add(s.key("redis_url"), reason);
        return None;
    }
    let advertise_url = raw
        .advertise_url
        .and_then(|url| match check_advertise_url(&url) {
            Ok(()) => Some(url.trim().to_string()),
            Err(reason) => {
                report.add(s.key("advertise_url"), reason);
                None
            }
        });
    Some(ClusterConfig {
        redis_url: Secret::from(url),
        instances,
        advertise_url,
    })
}

/// Why `url` cannot be where other instances reach this one, if it cannot.
pub fn check_advertise_url(url: &str) -> Result<(), String> {
    let example = "like \"http://10.0.0.5:8080\" or \"http://gateway-a:8080\"";
    let parsed =
        url::Url::parse(url.trim()).map_err(|e| format!("not a URL ({e}); write it {example}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme is \"{}\"; write it {example}",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("no host; write it {example}"));
    }
    if parsed.path() != "/" || parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "only scheme, host and port are read (server.base_path is added); write it {example}"
        ));
    }
    Ok(())
}

/// Why `url` cannot name a Redis server, if it cannot. The URL itself is never quoted (it may
/// carry a password).
pub fn check_redis_url(url: &str) -> Result<(), String> {
    let example = "like \"redis://127.0.0.1:6379\" or \"redis://:password@redis.lan:6379/0\"";
    let parsed =
        url::Url::parse(url.trim()).map_err(|e| format!("not a URL ({e}); write it {example}"))?;
    match parsed.scheme() {
        "redis" => {}
        "rediss" => {
            return Err(format!(
                "TLS to Redis (rediss://) is not supported by this build; use redis:// on a \
                 private network or through a TLS tunnel, {example}"
            ))
        }
        other => return Err(format!("the scheme is \"{other}\"; write it {example}")),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("no host; write it {example}"));
    }
    let db = parsed.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u16>().is_err() {
        return Err(format!(
            "the path must be a database number (\"/0\"), not \"/{db}\"; write it {example}"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!("no query or fragment is read; write it {example}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls() {
        for good in [
            "redis://127.0.0.1:6379",
            "redis://redis.lan",
            "redis://:secret@redis.lan:6380/2",
            "redis://user:secret@[::1]:6379/0",
        ] {
            assert_eq!(check_redis_url(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("127.0.0.1:6379", "not a URL"),
            ("localhost", "not a URL"),
            ("http://redis.lan", "scheme is \"http\""),
            ("rediss://redis.lan", "TLS"),
            ("redis://", "no host"),
            ("redis://redis.lan/cache", "database number"),
            ("redis://redis.lan/0?x=1", "query"),
        ] {
            let got = check_redis_url(bad).expect_err(bad);
            assert!(got.contains(says), "{bad}: {got}");
        }
        // The message never repeats the URL, which may carry a password.
        let got = check_redis_url("http://:hunter2@redis.lan").expect_err("bad");
        assert!(!got.contains("hunter2"), "{got}");
    }
}
