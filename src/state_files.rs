//! Files and folders under `state_dir`, created private to the service user: 0600 files and
//! 0700 folders whatever the umask. They hold access tokens, upload bodies, queue manifests and
//! dead properties, none of which another local user should read.
//!
//! Every place that writes under `state_dir` goes through these few functions, so the modes
//! cannot drift between near-copies. On other platforms they fall back to the defaults.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Mode of files under `state_dir`.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;
/// Mode of folders under `state_dir`.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents, each 0700.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder.create(dir)
}

/// Opens `path` for writing with `options` (which say create, truncate or append), creating
/// it 0600; an existing file with looser permissions is tightened.
fn open_private(path: &Path, options: &mut std::fs::OpenOptions) -> io::Result<File> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let file = options.mode(FILE_MODE).open(path)?;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        }
        Ok(file)
    }
    #[cfg(not(unix))]
    {
        options.open(path)
    }
}

/// A new file (fails if `path` exists), 0600: spool files.
pub fn create_new(path: &Path) -> io::Result<File> {
    open_private(
        path,
        std::fs::OpenOptions::new().write(true).create_new(true),
    )
}

/// `path` opened for appending, created 0600 if missing: logs.
pub fn append(path: &Path) -> io::Result<File> {
    open_private(path, std::fs::OpenOptions::new().append(true).create(true))
}

/// Writes `bytes` to `path` (created 0600 or truncated) and flushes them to disk.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = open_private(
        path,
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true),
    )?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Replaces `path` with `bytes` atomically and durably: a private (0600) temp file next to
/// it, flushed to disk, renamed over the target, and the folder flushed so the rename survives
/// a crash. The one way a state file (queue manifests, tokens, the web session, dead
/// properties) is written, so none of them can skip a step: after a crash the file holds the
/// old bytes or the new ones, never a mix or nothing.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = write_atomic_deferred(path, bytes)?;
    sync_dir(dir)
}

/// [`write_atomic`] of `value` as JSON: how tokens, the web session and dead properties keep
/// their state.
pub fn write_json_atomic<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_atomic(path, &bytes)
}

/// [`write_atomic`] up to the rename; returns the folder, whose fsync is the caller's (the
/// upload queue shares one among manifests written together, a group commit). Until then the
/// file holds the new bytes but a crash may undo the rename.
pub fn write_atomic_deferred<'a>(path: &'a Path, bytes: &[u8]) -> io::Result<&'a Path> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::other("a state file path has no folder"))?;
    create_dir_all(dir)?;
    let tmp = temp_path(path);
    write_private(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(dir)
}

/// `<path>.tmp`: where `write_atomic` writes before the rename.
pub fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".tmp");
    PathBuf::from(name)
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The folders of `state_dir` this program writes.
const OWN_FOLDERS: &[&str] = &["tokens", "props", "queue", "spool", "failed"];
/// How deep `tighten` looks below each of them (`failed/<job>/data` is the deepest).
const TIGHTEN_DEPTH: usize = 3;

/// Tightens what an older version left under `state_dir` with the umask's modes (0644 files,
/// 0755 folders) to 0600/0700. Only the folders this program writes are touched; returns how
/// many entries were changed.
pub fn tighten(state_dir: &Path) -> usize {
    #[cfg(unix)]
    {
        OWN_FOLDERS
            .iter()
            .map(|f| tighten_below(&state_dir.join(f), TIGHTEN_DEPTH))
            .sum()
    }
    #[cfg(not(unix))]
    {
        let _ = (state_dir, OWN_FOLDERS, TIGHTEN_DEPTH);
        0
    }
}

#[cfg(unix)]
fn tighten_below(path: &Path, depth: usize) -> usize {
    use std::os::unix::fs::PermissionsExt;
    // Never follow a symlink out of state_dir.
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let want = if meta.is_dir() {
        DIR_MODE
    } else if meta.is_file() {
        FILE_MODE
    } else {
        return 0;
    };
    let mut changed = 0;
    if meta.permissions().mode() & 0o077 != 0
        && std::fs::set_permissions(path, std::fs::Permissions::from_mode(want)).is_ok()
    {
        changed += 1;
    }
    if meta.is_dir() && depth > 0 {
        if let Ok(items) = std::fs::read_dir(path) {
            for item in items.flatten() {
                changed += tighten_below(&item.path(), depth - 1);
            }
        }
    }
    changed
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    #[test]
    fn private_modes_whatever_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all(&nested).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        let file = nested.join("f.json");
        write_atomic(&file, b"{}").unwrap();
        assert_eq!(mode(&file), 0o600);
        // An existing loose file is tightened when written again.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&file, b"x").unwrap();
        assert_eq!(mode(&file), 0o600);
        let log = nested.join("log");
        append(&log).unwrap();
        assert_eq!(mode(&log), 0o600);
        assert!(create_new(&log).is_err());
    }

    #[test]
    fn tighten_fixes_an_old_layout() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(spool.join("x.spool"), b"x").unwrap();
        std::fs::set_permissions(
            spool.join("x.spool"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        std::fs::write(dir.path().join("operator.txt"), b"x").unwrap();
        std::fs::set_permissions(
            dir.path().join("operator.txt"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        assert_eq!(tighten(dir.path()), 2);
        assert_eq!(mode(&spool), 0o700);
        assert_eq!(mode(&spool.join("x.spool")), 0o600);
        assert_eq!(mode(&dir.path().join("operator.txt")), 0o644, "not ours");
    }
}
