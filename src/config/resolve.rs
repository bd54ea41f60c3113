//! From TOML text to a validated `Config`, collecting every problem on the way.
//!
//! The checks report a problem and carry on with a placeholder value, so one pass finds every
//! problem; a `Config` is returned only when none was found. One file per part: `[server]`
//! (`server.rs`), the keys every mount has (`mounts.rs`), each backend's (`backends.rs`),
//! `[[users]]` (`users.rs`) and shared value checks (`values.rs`).

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

mod backends;
mod mounts;
mod server;
mod users;
mod values;

use backends::*;
use mounts::*;
use server::*;
use users::*;
use values::*;

pub(super) use backends::secret_from_env;
pub(crate) use users::check_password_hash;
pub(super) use values::{http_url, traffic_budget};

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
    let cluster = super::cluster::resolve(&mut report, root.remove("cluster"));
    if let Some(c) = &cluster {
        if c.advertise(&server).is_none() {
            report.add(
                "cluster.advertise_url",
                "missing: server.listen is a wildcard address, so other instances cannot tell \
                 where to reach this one; set it, like \"http://10.0.0.5:8080\"",
            );
        }
    }

    if !report.problems.is_empty() {
        return Err(ConfigError::new(source, report.problems));
    }
    Ok(Config {
        source: source.to_path_buf(),
        server,
        users,
        mounts,
        clients,
        cluster,
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
