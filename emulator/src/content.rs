//! File bodies: where the bytes of a piece of content come from, and how to stream a range of them.
//!
//! Content is addressed by (MD5, size), like 123's instant upload. A body is held in memory
//! (small files put by tests), on disk (a seeded data folder, read lazily; assembled uploads), or
//! generated: a deterministic function of a seed and the offset, so a 20 GiB file costs no
//! memory and no disk. Generated MD5s are expensive for big files, so they are memoised on disk.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::stream::{self, Stream};
use md5::{Digest, Md5};

use crate::auth_key::hex;

/// Read and generation unit: big enough to be cheap per chunk, small enough to rate-limit smoothly.
pub const CHUNK: usize = 64 * 1024;

/// Files at least this big get their generated MD5 memoised on disk; smaller ones are hashed at
/// once (a memo file per small file would cost more than hashing it).
const MEMO_THRESHOLD: u64 = 16 * 1024 * 1024;

/// Lowercase hex MD5 of the empty string: the content every zero-byte file has.
pub const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// Where a body's bytes live.
#[derive(Debug, Clone)]
pub enum Blob {
    /// Held in memory.
    Memory(Bytes),
    /// A file on disk, read when served.
    File(PathBuf),
    /// Generated from a seed (see `generated_fill`).
    Generated {
        /// The seed; byte i is a function of (seed, i).
        seed: u64,
    },
}

/// Content key: lowercase hex MD5 and size.
pub type ContentKey = (String, u64);

/// All known content, by (MD5, size).
#[derive(Debug, Default)]
pub struct ContentStore {
    blobs: HashMap<ContentKey, Blob>,
}

impl ContentStore {
    /// A store that already knows the empty body.
    pub fn new() -> Self {
        let mut blobs = HashMap::new();
        blobs.insert((EMPTY_MD5.to_string(), 0), Blob::Memory(Bytes::new()));
        ContentStore { blobs }
    }

    /// Remember a body; an existing blob for the same key is kept (same bytes by definition).
    pub fn insert(&mut self, md5: &str, size: u64, blob: Blob) {
        self.blobs
            .entry((md5.to_ascii_lowercase(), size))
            .or_insert(blob);
    }

    /// The blob for a key, if known.
    pub fn get(&self, md5: &str, size: u64) -> Option<Blob> {
        self.blobs.get(&(md5.to_ascii_lowercase(), size)).cloned()
    }

    /// Whether this content is known (for instant upload).
    pub fn contains(&self, md5: &str, size: u64) -> bool {
        self.blobs.contains_key(&(md5.to_ascii_lowercase(), size))
    }
}

/// SplitMix64: a tiny, good-quality mixer; one call yields 8 bytes of a generated body.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fill `buf` with the generated body of `seed` starting at byte `offset`.
pub fn generated_fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let base = seed.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let block = pos / 8;
        let within = (pos % 8) as usize;
        let word = splitmix64(base ^ block).to_le_bytes();
        let n = (8 - within).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[within..within + n]);
        i += n;
        pos += n as u64;
    }
}

/// MD5 of a generated body, memoised under `cache_dir` for big sizes.
pub fn generated_md5(seed: u64, size: u64, cache_dir: &Path) -> String {
    let memo = cache_dir.join(format!("gen-{seed}-{size}.md5"));
    if size >= MEMO_THRESHOLD {
        if let Ok(s) = std::fs::read_to_string(&memo) {
            let s = s.trim();
            if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                return s.to_string();
            }
        }
    }
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < size {
        let n = usize::try_from((size - off).min(buf.len() as u64)).unwrap_or(buf.len());
        generated_fill(seed, off, &mut buf[..n]);
        h.update(&buf[..n]);
        off += n as u64;
    }
    let md5 = hex(&h.finalize());
    if size >= MEMO_THRESHOLD {
        // Best effort: a failed memo only costs a re-hash next time.
        let _ = std::fs::create_dir_all(cache_dir);
        let tmp = memo.with_extension(format!("tmp{}", std::process::id()));
        if std::fs::write(&tmp, &md5).is_ok() {
            let _ = std::fs::rename(&tmp, &memo);
        }
    }
    md5
}

/// MD5 and size of a file on disk, streaming (never the whole file in memory).
pub fn file_md5(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&h.finalize()), size))
}

/// MD5 of a disk file, memoised in `cache_dir` by (path, size, mtime) so that re-seeding a big
/// data folder does not re-read it.
pub fn file_md5_memo(path: &Path, cache_dir: &Path) -> std::io::Result<(String, u64)> {
    let meta = std::fs::metadata(path)?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    if meta.len() < MEMO_THRESHOLD {
        return file_md5(path);
    }
    let key = format!("{}|{}|{}", path.display(), meta.len(), mtime);
    let memo = cache_dir.join(format!("file-{}.md5", hex(&Md5::digest(key.as_bytes()))));
    if let Ok(s) = std::fs::read_to_string(&memo) {
        let s = s.trim();
        if s.len() == 32 {
            return Ok((s.to_string(), meta.len()));
        }
    }
    let (md5, size) = file_md5(path)?;
    let _ = std::fs::create_dir_all(cache_dir);
    let _ = std::fs::write(&memo, &md5);
    Ok((md5, size))
}

/// MD5 of a byte slice, lowercase hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// Read a whole body (tests and small files only).
pub fn read_all(blob: &Blob, size: u64) -> std::io::Result<Vec<u8>> {
    match blob {
        Blob::Memory(b) => Ok(b.to_vec()),
        Blob::File(p) => std::fs::read(p),
        Blob::Generated { seed } => {
            let n = usize::try_from(size)
                .map_err(|_| std::io::Error::other("generated body too large to read whole"))?;
            let mut v = vec![0u8; n];
            generated_fill(*seed, 0, &mut v);
            Ok(v)
        }
    }
}

/// Stream bytes `[start, end)` of a body in chunks of at most `CHUNK`. A body that turns out
/// shorter than promised ends the stream with an error, so the connection is cut rather than
/// a short body passed off as complete.
pub fn range_stream(
    blob: Blob,
    start: u64,
    end: u64,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let st = RangeState {
        blob,
        pos: start,
        end,
        file: None,
    };
    stream::unfold(st, |mut st| async move {
        if st.pos >= st.end {
            return None;
        }
        let n = usize::try_from((st.end - st.pos).min(CHUNK as u64)).unwrap_or(CHUNK);
        match st.next_chunk(n) {
            Ok(b) if b.is_empty() => {
                st.pos = st.end;
                Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "body shorter than its size",
                    )),
                    st,
                ))
            }
            Ok(b) => {
                st.pos += b.len() as u64;
                Some((Ok(b), st))
            }
            Err(e) => {
                st.pos = st.end;
                Some((Err(e), st))
            }
        }
    })
}

/// Cursor of `range_stream`.
struct RangeState {
    blob: Blob,
    pos: u64,
    end: u64,
    file: Option<std::fs::File>,
}

impl RangeState {
    fn next_chunk(&mut self, n: usize) -> std::io::Result<Bytes> {
        match &self.blob {
            Blob::Memory(b) => {
                let from = usize::try_from(self.pos).unwrap_or(usize::MAX).min(b.len());
                let to = from.saturating_add(n).min(b.len());
                Ok(b.slice(from..to))
            }
            Blob::Generated { seed } => {
                let mut v = vec![0u8; n];
                generated_fill(*seed, self.pos, &mut v);
                Ok(Bytes::from(v))
            }
            Blob::File(path) => {
                // A 64 KiB read is microseconds from the page cache; a spawn_blocking per chunk
                // would cost more than the read itself.
                if self.file.is_none() {
                    let mut f = std::fs::File::open(path)?;
                    f.seek(SeekFrom::Start(self.pos))?;
                    self.file = Some(f);
                }
                let Some(f) = self.file.as_mut() else {
                    return Err(std::io::Error::other("file not open"));
                };
                let mut v = vec![0u8; n];
                let mut got = 0;
                while got < n {
                    let k = f.read(&mut v[got..])?;
                    if k == 0 {
                        break;
                    }
                    got += k;
                }
                v.truncate(got);
                Ok(Bytes::from(v))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_is_offset_consistent() {
        let mut whole = vec![0u8; 1000];
        generated_fill(7, 0, &mut whole);
        let mut part = vec![0u8; 100];
        generated_fill(7, 333, &mut part);
        assert_eq!(&whole[333..433], &part[..]);
        let mut other = vec![0u8; 1000];
        generated_fill(8, 0, &mut other);
        assert_ne!(whole, other);
    }

    #[test]
    fn generated_md5_matches_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut v = vec![0u8; 12345];
        generated_fill(3, 0, &mut v);
        assert_eq!(generated_md5(3, 12345, dir.path()), md5_hex(&v));
        assert_eq!(md5_hex(b""), EMPTY_MD5);
    }
}
