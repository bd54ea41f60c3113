//! The upload keys: per writable mount (open, web) `upload` and `upload_slices`, in `[server]`
//! `spool_max` and `upload_workers`, with their checks and the size syntax (`"10GiB"`, `"500MB"`).

use std::fmt;

use super::file::{list, Report, Section};

/// Default `upload_slices` of an open mount (OpenList's default too).
pub const DEFAULT_UPLOAD_SLICES: usize = 3;
/// Most slices in flight per upload; OpenList allows the same range.
pub const MAX_UPLOAD_SLICES: usize = 32;
/// Default `server.upload_workers`.
pub const DEFAULT_UPLOAD_WORKERS: usize = 2;
/// Most uploads at once: 123 limits `create` to 2 per second, so more rarely helps.
pub const MAX_UPLOAD_WORKERS: usize = 16;
/// Default `server.spool_max`: room for one file of 123's largest size.
pub const DEFAULT_SPOOL_MAX: u64 = 10 << 30;
/// Smallest `server.spool_max` accepted.
pub const MIN_SPOOL_MAX: u64 = 1 << 20;

/// When a PUT is answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UploadMode {
    /// Once the body is spooled to disk; 123 gets it from the upload queue.
    #[default]
    Background,
    /// Only once 123 has the complete file.
    Sync,
}

impl UploadMode {
    pub const ALL: [UploadMode; 2] = [Self::Background, Self::Sync];

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Background => "background",
            Self::Sync => "sync",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.as_str() == name)
    }
}

impl fmt::Display for UploadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The units a size may carry, for messages; the `bytesize` crate also takes their one-letter
/// forms (`K`, `Ki`, …) and the peta/exa units.
const SIZE_UNITS: &str = "B, KiB, MiB, GiB, TiB, KB, MB, GB or TB";

/// Parses a size: a number (decimals allowed) and an optional unit: `B`, binary `KiB` `MiB`
/// `GiB` `TiB`, or decimal `KB` `MB` `GB` `TB`, in any case, with or without a space.
///
/// The `bytesize` crate does the parsing; this names what is wrong in the config's words, since
/// its own errors quote a truncated unit, and turns its saturation at `u64::MAX` into an error.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let unit_start = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_start);
    let unit = unit.trim();
    if number.is_empty() {
        return Err("missing number".to_string());
    }
    if !unit.is_empty() && unit.parse::<bytesize::Unit>().is_err() {
        return Err(format!("unknown unit \"{unit}\"; use {SIZE_UNITS}"));
    }
    if unit.is_empty() && number.contains('.') {
        return Err(format!("a fraction needs a unit, like \"{number}GiB\""));
    }
    let size: bytesize::ByteSize = text
        .parse()
        .map_err(|_| format!("\"{number}\" is not a number"))?;
    match size.as_u64() {
        u64::MAX => Err("too large".to_string()),
        bytes => Ok(bytes),
    }
}

/// `upload` and `upload_slices` of a writable mount (open, web).
pub(super) fn resolve_mount_upload(
    report: &mut Report,
    s: &Section,
    upload: Option<String>,
    slices: Option<i64>,
) -> (UploadMode, usize) {
    let mode = match upload {
        None => UploadMode::default(),
        Some(name) => UploadMode::from_name(&name).unwrap_or_else(|| {
            let names: Vec<&str> = UploadMode::ALL.iter().map(|m| m.as_str()).collect();
            report.add(
                s.key("upload"),
                format!(
                    "\"{name}\" is not an upload mode; use one of: {}",
                    list(&names)
                ),
            );
            UploadMode::default()
        }),
    };
    let slices = in_range(
        report,
        s,
        "upload_slices",
        slices,
        DEFAULT_UPLOAD_SLICES,
        MAX_UPLOAD_SLICES,
    );
    (mode, slices)
}

/// `spool_max` and `upload_workers` of `[server]`.
pub(super) fn resolve_server_upload(
    report: &mut Report,
    s: &Section,
    spool_max: Option<String>,
    workers: Option<i64>,
) -> (u64, usize) {
    let spool_max = match spool_max {
        None => DEFAULT_SPOOL_MAX,
        Some(text) => match parse_size(&text) {
            Ok(n) if n < MIN_SPOOL_MAX => {
                report.add(
                    s.key("spool_max"),
                    format!(
                        "\"{text}\" is too small; uploads are spooled to disk before they go to \
                         123, so give the spool at least 1MiB, like \"10GiB\""
                    ),
                );
                DEFAULT_SPOOL_MAX
            }
            Ok(n) => n,
            Err(problem) => {
                report.add(
                    s.key("spool_max"),
                    format!("\"{text}\" is not a size ({problem}); write it like \"10GiB\""),
                );
                DEFAULT_SPOOL_MAX
            }
        },
    };
    let workers = in_range(
        report,
        s,
        "upload_workers",
        workers,
        DEFAULT_UPLOAD_WORKERS,
        MAX_UPLOAD_WORKERS,
    );
    (spool_max, workers)
}

/// An integer key in `1..=max`, its default when absent.
pub(super) fn in_range(
    report: &mut Report,
    s: &Section,
    key: &str,
    value: Option<i64>,
    default: usize,
    max: usize,
) -> usize {
    match value {
        None => default,
        Some(n) => match usize::try_from(n) {
            Ok(n) if (1..=max).contains(&n) => n,
            _ => {
                report.add(
                    s.key(key),
                    format!(
                        "{n} is out of range; use a number from 1 to {max} (default {default})"
                    ),
                );
                default
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::resolve::parse_with_env;
    use super::super::{Config, ConfigError};
    use super::*;

    const BASE: &str = r#"
[[mounts]]
path = "/open"
backend = "open"
client_id = "id"
client_secret = "secret"
"#;

    fn parse(server: &str, mount: &str) -> Result<Config, ConfigError> {
        let text = format!("[server]\n{server}\n{BASE}{mount}");
        parse_with_env(&text, Path::new("/etc/pan/config.toml"), &|_| None)
    }

    fn problems(server: &str, mount: &str) -> Vec<String> {
        match parse(server, mount) {
            Ok(_) => panic!("expected problems"),
            Err(err) => err
                .problems()
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
        }
    }

    #[test]
    fn sizes() {
        let cases = [
            ("10GiB", 10u64 << 30),
            ("10 GiB", 10 << 30),
            ("500MB", 500_000_000),
            ("1tib", 1 << 40),
            ("2KB", 2000),
            ("1.5GiB", 3 << 29),
            ("1.5 gib", 3 << 29),
            ("16mib", 16 << 20),
            ("4096", 4096),
            ("7B", 7),
            (" 1MiB ", 1 << 20),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(want), "{text}");
        }
        assert!(parse_size("10 GB x").unwrap_err().contains("unknown unit"));
        assert!(parse_size("GiB").unwrap_err().contains("missing number"));
        assert!(parse_size("1.2.3MiB")
            .unwrap_err()
            .contains("is not a number"));
        assert!(parse_size("1.5")
            .unwrap_err()
            .contains("a fraction needs a unit"));
        assert_eq!(parse_size("99999999999TiB"), Err("too large".to_string()));
    }

    #[test]
    fn defaults() {
        let c = parse("", "").unwrap();
        assert_eq!(c.server.spool_max, DEFAULT_SPOOL_MAX);
        assert_eq!(c.server.upload_workers, 2);
        assert_eq!(c.mounts[0].upload, UploadMode::Background);
        assert_eq!(c.mounts[0].upload_slices, 3);
    }

    #[test]
    fn every_key_set() {
        let c = parse(
            "spool_max = \"500MB\"\nupload_workers = 4",
            "upload = \"sync\"\nupload_slices = 8\n",
        )
        .unwrap();
        assert_eq!(c.server.spool_max, 500_000_000);
        assert_eq!(c.server.upload_workers, 4);
        assert_eq!(c.mounts[0].upload, UploadMode::Sync);
        assert_eq!(c.mounts[0].upload_slices, 8);
    }

    #[test]
    fn bad_values_name_the_key_and_the_fix() {
        assert_eq!(
            problems("", "upload = \"later\"\n"),
            ["mounts[0].upload: \"later\" is not an upload mode; use one of: background, sync"]
        );
        assert_eq!(
            problems("", "upload_slices = 0\n"),
            ["mounts[0].upload_slices: 0 is out of range; use a number from 1 to 32 (default 3)"]
        );
        assert_eq!(
            problems("upload_workers = 99", ""),
            ["server.upload_workers: 99 is out of range; use a number from 1 to 16 (default 2)"]
        );
        assert_eq!(
            problems("spool_max = \"10 parsecs\"", ""),
            [
                "server.spool_max: \"10 parsecs\" is not a size (unknown unit \"parsecs\"; use B, \
              KiB, MiB, GiB, TiB, KB, MB, GB or TB); write it like \"10GiB\""
            ]
        );
        assert!(problems("spool_max = \"10KiB\"", "")[0].contains("too small"));
    }
}
