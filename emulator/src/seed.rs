//! Start-up content: a local folder mirrored into the account root (`--data`) and generated
//! files (`--generate`). Runs once, on a blocking thread, before the server accepts anything.

use std::path::Path;

use anyhow::Context;

use crate::config::EmulatorConfig;
use crate::content::{self, Blob};
use crate::state::{Fs, ROOT};

/// Build the account the config describes. `cache` holds memoised MD5s.
pub(crate) fn seed(cfg: &EmulatorConfig, cache: &Path, now: i64) -> anyhow::Result<Fs> {
    let mut fs = Fs::new();
    if let Some(dir) = &cfg.data_dir {
        mirror_dir(&mut fs, ROOT, dir, cache)?;
    }
    for spec in &cfg.generate {
        let dir = fs.tree.mkdir_p(&spec.path, now);
        let width = spec.count.to_string().len().max(5);
        for k in 1..=spec.count {
            let seed = spec.seed.wrapping_add(k - 1);
            let md5 = content::generated_md5(seed, spec.size, cache);
            fs.content.insert(&md5, spec.size, Blob::Generated { seed });
            // A fresh folder of generated names needs no collision check.
            fs.tree.insert(
                dir,
                &format!("file-{k:0width$}.bin"),
                Some((spec.size, md5)),
                now,
            );
        }
    }
    Ok(fs)
}

/// Mirror a local folder into `parent` (names sorted, so ids are stable between runs). Bodies
/// stay on disk; modification times become `createAt`/`updateAt`.
fn mirror_dir(fs: &mut Fs, parent: u64, dir: &Path, cache: &Path) -> anyhow::Result<()> {
    let mut items: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .collect();
    items.sort_by_key(|e| e.file_name());
    for item in items {
        let path = item.path();
        let name = item.file_name().to_string_lossy().into_owned();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue; // a dangling symlink and the like
        };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
            .unwrap_or(0);
        if meta.is_dir() {
            let id = fs.tree.insert(parent, &name, None, mtime);
            mirror_dir(fs, id, &path, cache)?;
        } else if meta.is_file() {
            let (md5, size) = content::file_md5_memo(&path, cache)
                .with_context(|| format!("hashing {}", path.display()))?;
            fs.content.insert(&md5, size, Blob::File(path.clone()));
            fs.tree.insert(parent, &name, Some((size, md5)), mtime);
        }
    }
    Ok(())
}
