//! The caps of the local side stores, in `[server]`: locks (`lock_timeout_max`,
//! `locks_per_user_max`), dead properties (`props_max_bytes`, `props_per_user_max_bytes`) and
//! client junk (`junk_max_files`, `junk_per_user_max_files`). Each bounds what one client can
//! make the gateway hold in memory, on disk, or send back in a listing.

use std::time::Duration;

use super::file::{Report, Section};
use super::upload::{in_range, parse_size};

/// Default `server.lock_timeout_max`: the longest a lock lasts without a refresh.
pub const DEFAULT_LOCK_TIMEOUT_MAX: Duration = Duration::from_secs(3600);
/// Default `server.locks_per_user_max`: live locks one user may hold in one mount.
pub const DEFAULT_LOCKS_PER_USER_MAX: usize = 1000;
/// Default `server.props_max_bytes`: dead-property bytes one mount keeps.
pub const DEFAULT_PROPS_MAX_BYTES: u64 = 16 << 20;
/// Default `server.props_per_user_max_bytes`: what one user may set of that in one mount.
pub const DEFAULT_PROPS_PER_USER_MAX_BYTES: u64 = 4 << 20;
/// Smallest accepted property budget: one PROPPATCH body (64 KiB) must fit.
pub const MIN_PROPS_BYTES: u64 = 64 << 10;
/// Default `server.junk_max_files`: client junk files one mount keeps.
pub const DEFAULT_JUNK_MAX_FILES: usize = 10_000;
/// Default `server.junk_per_user_max_files`: what one user may keep of that in one mount.
pub const DEFAULT_JUNK_PER_USER_MAX_FILES: usize = 5_000;
/// Largest accepted count for the count keys.
const MAX_COUNT: usize = 1_000_000;

/// The caps of the side stores every mount keeps (locks, dead properties, client junk).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// A lock lasts at most this long without a refresh, whatever its `Timeout` asked.
    pub lock_timeout_max: Duration,
    /// Live locks one user may hold in one mount; more get 507.
    pub locks_per_user_max: usize,
    /// Dead-property bytes one mount keeps; a PROPPATCH that would go over gets 507.
    pub props_max_bytes: u64,
    /// Dead-property bytes one user may set in one mount; over it 507.
    pub props_per_user_max_bytes: u64,
    /// Client junk files one mount keeps; beyond it the oldest are forgotten.
    pub junk_max_files: usize,
    /// Client junk files one user keeps in one mount; beyond it their oldest are forgotten.
    pub junk_per_user_max_files: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            lock_timeout_max: DEFAULT_LOCK_TIMEOUT_MAX,
            locks_per_user_max: DEFAULT_LOCKS_PER_USER_MAX,
            props_max_bytes: DEFAULT_PROPS_MAX_BYTES,
            props_per_user_max_bytes: DEFAULT_PROPS_PER_USER_MAX_BYTES,
            junk_max_files: DEFAULT_JUNK_MAX_FILES,
            junk_per_user_max_files: DEFAULT_JUNK_PER_USER_MAX_FILES,
        }
    }
}

/// The keys as written in `[server]`.
pub(super) struct RawLimits {
    pub lock_timeout_max: Duration,
    pub locks_per_user_max: Option<i64>,
    pub props_max_bytes: Option<String>,
    pub props_per_user_max_bytes: Option<String>,
    pub junk_max_files: Option<i64>,
    pub junk_per_user_max_files: Option<i64>,
}

/// Checks the side-store keys of `[server]` (`lock_timeout_max` is parsed by the caller, as
/// every duration is).
pub(super) fn resolve(report: &mut Report, s: &Section, raw: RawLimits) -> StoreLimits {
    let d = StoreLimits::default();
    StoreLimits {
        lock_timeout_max: raw.lock_timeout_max,
        locks_per_user_max: in_range(
            report,
            s,
            "locks_per_user_max",
            raw.locks_per_user_max,
            d.locks_per_user_max,
            MAX_COUNT,
        ),
        props_max_bytes: props_size(
            report,
            s,
            "props_max_bytes",
            raw.props_max_bytes,
            d.props_max_bytes,
        ),
        props_per_user_max_bytes: props_size(
            report,
            s,
            "props_per_user_max_bytes",
            raw.props_per_user_max_bytes,
            d.props_per_user_max_bytes,
        ),
        junk_max_files: in_range(
            report,
            s,
            "junk_max_files",
            raw.junk_max_files,
            d.junk_max_files,
            MAX_COUNT,
        ),
        junk_per_user_max_files: in_range(
            report,
            s,
            "junk_per_user_max_files",
            raw.junk_per_user_max_files,
            d.junk_per_user_max_files,
            MAX_COUNT,
        ),
    }
}

/// A dead-property budget: a size of at least `MIN_PROPS_BYTES`.
fn props_size(
    report: &mut Report,
    s: &Section,
    key: &str,
    value: Option<String>,
    default: u64,
) -> u64 {
    let Some(text) = value else {
        return default;
    };
    match parse_size(&text) {
        Ok(n) if n < MIN_PROPS_BYTES => {
            report.add(
                s.key(key),
                format!(
                    "\"{text}\" is too small; one PROPPATCH may carry 64KiB, so allow at least \
                     \"64KiB\", like \"16MiB\""
                ),
            );
            default
        }
        Ok(n) => n,
        Err(problem) => {
            report.add(
                s.key(key),
                format!("\"{text}\" is not a size ({problem}); write it like \"16MiB\""),
            );
            default
        }
    }
}
