//! The config file as written: one serde struct per table, every field optional so that missing
//! keys are reported by validation with a fix, and `deny_unknown_fields` everywhere.
//!
//! Unknown keys are found before serde sees a table (`strip_unknown`), so that every one of them
//! is reported with the keys that are valid there, not only the first; the lists of valid keys
//! come from the structs themselves (`fields_of`), so they cannot drift apart.

use std::path::PathBuf;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::Deserialize;

use super::error::Problem;

/// Top-level keys of the file.
pub(super) const TOP_KEYS: &[&str] = &["server", "users", "mounts", "clients", "cluster"];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub base_path: Option<String>,
    pub signing_key: Option<String>,
    pub sign_ttl: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub spool_max: Option<String>,
    pub upload_workers: Option<i64>,
    pub ready_probe_interval: Option<String>,
    pub metrics_auth: Option<bool>,
    pub metrics_listen: Option<String>,
    pub upstream_connect_timeout: Option<String>,
    pub upstream_first_byte_timeout: Option<String>,
    pub upstream_idle_timeout: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub host_aliases: Option<Vec<String>>,
    pub upstream_deadline: Option<String>,
    pub header_timeout: Option<String>,
    pub keepalive_timeout: Option<String>,
    pub body_idle_timeout: Option<String>,
    pub connections_per_ip: Option<i64>,
    pub lock_timeout_max: Option<String>,
    pub locks_per_user_max: Option<i64>,
    pub props_max_bytes: Option<String>,
    pub props_per_user_max_bytes: Option<String>,
    pub junk_max_files: Option<i64>,
    pub junk_per_user_max_files: Option<i64>,
    pub qps_scale: Option<f64>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub mounts: Option<Vec<String>>,
    pub write: Option<bool>,
}

/// The keys every mount has, whatever its backend.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMount {
    pub path: Option<String>,
    pub backend: Option<String>,
    pub download: Option<String>,
    pub proxy_url: Option<String>,
    pub cache_ttl: Option<String>,
    pub cache_ttl_by_depth: Option<std::collections::BTreeMap<String, String>>,
    pub read_only: Option<bool>,
    pub anonymous: Option<bool>,
    pub traffic_budget: Option<String>,
}

/// The keys of a mount with `backend = "open"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOpen {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_env: Option<String>,
    pub refresh_token: Option<String>,
    pub renew_url: Option<String>,
    pub access_token: Option<String>,
    pub root_id: Option<u64>,
    pub api_base: Option<String>,
    pub direct_link: Option<bool>,
    pub direct_link_key: Option<String>,
    pub direct_link_valid: Option<String>,
    pub auth_key_path: Option<String>,
    pub upload: Option<String>,
    pub upload_slices: Option<i64>,
    pub delete: Option<String>,
    pub redirect_uri: Option<String>,
    pub authorize_url: Option<String>,
}

/// The keys of a mount with `backend = "share"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShare {
    pub share_key: Option<String>,
    pub share_password: Option<String>,
    pub root_id: Option<u64>,
    pub access_token: Option<String>,
    pub api_base: Option<String>,
}

/// The keys of a mount with `backend = "web"` (a personal account through the web API).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    pub username: Option<String>,
    pub password: Option<String>,
    pub password_env: Option<String>,
    pub root_id: Option<u64>,
    pub api_base: Option<String>,
    pub login_base: Option<String>,
    pub upload: Option<String>,
    pub upload_slices: Option<i64>,
    pub delete: Option<String>,
    pub token: Option<String>,
}

/// The keys of a mount with `backend = "link"`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLink {
    pub urls: Option<String>,
    pub direct_link_key: Option<String>,
    pub uid: Option<u64>,
    pub direct_link_valid: Option<String>,
    pub auth_key_path: Option<String>,
}

/// The backends a mount can name. Adding one: a variant here, its `Raw*` struct above, and a
/// `BackendConfig` variant with its validation in `resolve.rs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BackendKind {
    Open,
    Share,
    Link,
    Web,
}

impl BackendKind {
    pub const ALL: [BackendKind; 4] = [Self::Open, Self::Share, Self::Link, Self::Web];

    pub fn name(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Share => "share",
            Self::Link => "link",
            Self::Web => "web",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }

    /// Backend-specific keys, from each backend's raw struct, so that a key on the wrong mount
    /// is reported as belonging to its backend.
    pub fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Open => fields_of::<RawOpen>(),
            Self::Share => fields_of::<RawShare>(),
            Self::Link => fields_of::<RawLink>(),
            Self::Web => fields_of::<RawWeb>(),
        }
    }
}

/// Collects problems while reading one file.
#[derive(Default)]
pub(super) struct Report {
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }
}

/// One table of the file: its key path (`mounts[1]`) and the keys already reported as wrong
/// there, so that validation does not also call them missing.
pub(super) struct Section {
    pub path: String,
    bad: Vec<String>,
}

impl Section {
    pub fn new(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            bad: Vec::new(),
        }
    }

    /// The full path of one of this table's keys.
    pub fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// True when a problem was already reported for `key` (a wrong type, or a misspelling of it).
    pub fn is_bad(&self, key: &str) -> bool {
        self.bad.iter().any(|k| k == key)
    }

    /// Reports a missing required key, unless a problem about it was already reported.
    pub fn missing(&self, report: &mut Report, key: &str, fix: &str) {
        if !self.is_bad(key) {
            report.add(self.key(key), format!("missing; {fix}"));
        }
    }

    /// Removes from `table` every key not in `valid`, reporting each: `explain` is given the
    /// key and says what is wrong with it and what to do, as two parts between which a close
    /// valid key is suggested.
    pub fn strip_unknown(
        &mut self,
        report: &mut Report,
        table: &mut toml::Table,
        valid: &[&str],
        explain: impl Fn(&str) -> (String, String),
    ) {
        let unknown: Vec<String> = table
            .keys()
            .filter(|key| !valid.contains(&key.as_str()))
            .cloned()
            .collect();
        for key in unknown {
            table.remove(&key);
            let (problem, fix) = explain(&key);
            let mut message = problem;
            if let Some(close) = suggest(&key, valid).filter(|close| !table.contains_key(*close)) {
                message = format!("{message} (did you mean {close}?)");
                self.bad.push(close.to_string());
            }
            report.add(self.key(&key), format!("{message}; {fix}"));
        }
    }

    /// Deserializes a table whose keys are all valid. A value of the wrong type is reported with
    /// its key and dropped, and reading goes on, so every wrong value is reported at once.
    pub fn deserialize<T: DeserializeOwned + Default>(
        &mut self,
        report: &mut Report,
        mut table: toml::Table,
    ) -> T {
        loop {
            let value = toml::Value::Table(table.clone());
            match serde_path_to_error::deserialize::<_, T>(value) {
                Ok(raw) => return raw,
                Err(err) => {
                    let first = match err.path().iter().next() {
                        Some(serde_path_to_error::Segment::Map { key }) => key.clone(),
                        _ => String::new(),
                    };
                    let message = err.inner().message().trim_end().to_string();
                    let inner_path = err.path().to_string();
                    if first.is_empty() || table.remove(&first).is_none() {
                        // Not attributable to one key: report it on the table and give up on it.
                        report.add(self.path.clone(), message);
                        return T::default();
                    }
                    report.add(self.key(&inner_path), message);
                    self.bad.push(first);
                }
            }
        }
    }
}

/// "a, b, c": a list of keys for a message.
pub(super) fn list(keys: &[&str]) -> String {
    keys.join(", ")
}

/// The closest of `valid` to a misspelt `key`, when it is close enough to be a typo.
fn suggest<'a>(key: &str, valid: &[&'a str]) -> Option<&'a str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    valid
        .iter()
        .map(|candidate| (strsim::osa_distance(key, candidate), *candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The field names of a struct deriving `Deserialize`, as serde's derive passes them to
/// `deserialize_struct`: a deserializer that only records them.
pub(super) fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldProbe) {
        Err(Probed(Some(fields))) => fields,
        _ => &[],
    }
}

struct FieldProbe;

#[derive(Debug)]
struct Probed(Option<&'static [&'static str]>);

impl std::fmt::Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for Probed {}

impl de::Error for Probed {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        Probed(None)
    }
}

impl<'de> de::Deserializer<'de> for FieldProbe {
    type Error = Probed;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Probed> {
        Err(Probed(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Probed> {
        Err(Probed(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_lists_come_from_the_structs() {
        assert_eq!(
            fields_of::<RawMount>(),
            [
                "path",
                "backend",
                "download",
                "proxy_url",
                "cache_ttl",
                "cache_ttl_by_depth",
                "read_only",
                "anonymous",
                "traffic_budget"
            ]
        );
        assert_eq!(
            fields_of::<RawUser>(),
            ["name", "password_hash", "mounts", "write"]
        );
        assert!(fields_of::<RawServer>().contains(&"signing_key"));
        assert!(BackendKind::Open.keys().contains(&"client_secret_env"));
        assert_eq!(
            BackendKind::Share.keys(),
            [
                "share_key",
                "share_password",
                "root_id",
                "access_token",
                "api_base"
            ]
        );
        assert_eq!(
            BackendKind::Link.keys(),
            [
                "urls",
                "direct_link_key",
                "uid",
                "direct_link_valid",
                "auth_key_path"
            ]
        );
    }

    #[test]
    fn suggestions_catch_typos_only() {
        let valid = ["client_id", "client_secret", "root_id"];
        assert_eq!(suggest("clinet_id", &valid), Some("client_id"));
        assert_eq!(suggest("client_secrt", &valid), Some("client_secret"));
        assert_eq!(suggest("rootid", &valid), Some("root_id"));
        assert_eq!(suggest("colour", &valid), None);
        // An exchange of two neighbours counts as one edit.
        assert_eq!(suggest("clinet", &["client"]), Some("client"));
        assert_eq!(suggest("ab", &["ba"]), Some("ba"));
    }

    #[test]
    fn every_wrong_value_is_reported() {
        let table: toml::Table =
            toml::from_str("client_id = 5\nroot_id = \"x\"\ndirect_link = true").unwrap();
        let mut report = Report::default();
        let mut section = Section::new("mounts[0]");
        let raw: RawOpen = section.deserialize(&mut report, table);
        assert_eq!(raw.direct_link, Some(true));
        let keys: Vec<&str> = report.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["mounts[0].client_id", "mounts[0].root_id"]);
        assert!(report.problems[1].message.contains("expected u64"));
        assert!(section.is_bad("client_id") && section.is_bad("root_id"));
    }
}
