//! Dead properties (PROPPATCH) and client modification times, kept locally per mount.
//!
//! 123 has nowhere to store them, so they live in one JSON file per mount in `state_dir`,
//! keyed by the path inside the mount, and follow the file on MOVE, COPY and DELETE. Small by
//! nature (a few properties per file that clients set); rewritten atomically on each change.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use dav_server::fs::DavProp;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct StoredProp {
    prefix: Option<String>,
    xml: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Node {
    /// "{namespace}name" → property.
    props: BTreeMap<String, StoredProp>,
    /// A modification time the client asked for (X-OC-Mtime, Win32LastModifiedTime …), with
    /// the MD5 it applies to, so a change made elsewhere is not masked.
    mtime: Option<(u64, Option<String>)>,
}

/// The store of one mount.
pub struct PropStore {
    file: Option<PathBuf>,
    nodes: Mutex<HashMap<String, Node>>,
}

fn key(prop: &DavProp) -> String {
    format!(
        "{{{}}}{}",
        prop.namespace.as_deref().unwrap_or(""),
        prop.name
    )
}

impl PropStore {
    /// Loads the store kept in `file` (a missing or unreadable file starts empty).
    pub fn open(file: Option<PathBuf>) -> Self {
        let nodes = file
            .as_ref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            file,
            nodes: Mutex::new(nodes),
        }
    }

    fn nodes(&self) -> std::sync::MutexGuard<'_, HashMap<String, Node>> {
        self.nodes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn save(&self, nodes: &HashMap<String, Node>) {
        let Some(file) = &self.file else { return };
        let result = serde_json::to_vec(nodes)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::state_files::replace(file, &bytes, false));
        if let Err(e) = result {
            tracing::warn!(file = %file.display(), error = %e, "could not save dead properties");
        }
    }

    /// Applies a PROPPATCH: `(true, prop)` sets, `(false, prop)` removes.
    pub fn patch(
        &self,
        path: &str,
        patch: Vec<(bool, DavProp)>,
    ) -> Vec<(http::StatusCode, DavProp)> {
        let mut nodes = self.nodes();
        let node = nodes.entry(path.to_string()).or_default();
        let mut out = Vec::with_capacity(patch.len());
        for (set, prop) in patch {
            if set {
                node.props.insert(
                    key(&prop),
                    StoredProp {
                        prefix: prop.prefix.clone(),
                        xml: prop.xml.clone(),
                    },
                );
            } else {
                node.props.remove(&key(&prop));
            }
            out.push((http::StatusCode::OK, DavProp { xml: None, ..prop }));
        }
        self.save(&nodes);
        out
    }

    /// Every dead property of `path`.
    pub fn all(&self, path: &str, do_content: bool) -> Vec<DavProp> {
        let nodes = self.nodes();
        let Some(node) = nodes.get(path) else {
            return Vec::new();
        };
        node.props
            .iter()
            .filter_map(|(k, p)| {
                let (ns, name) = k.strip_prefix('{')?.split_once('}')?;
                Some(DavProp {
                    name: name.to_string(),
                    prefix: p.prefix.clone(),
                    namespace: Some(ns.to_string()).filter(|n| !n.is_empty()),
                    xml: if do_content { p.xml.clone() } else { None },
                })
            })
            .collect()
    }

    /// Does `dir` ("/a/b", "" for the mount root) or anything below it have dead properties?
    pub fn any_at_or_below(&self, dir: &str) -> bool {
        self.nodes().iter().any(|(path, node)| {
            !node.props.is_empty()
                && (dir.is_empty()
                    || path == dir
                    || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
        })
    }

    /// One dead property's XML.
    pub fn get(&self, path: &str, prop: &DavProp) -> Option<Vec<u8>> {
        self.nodes().get(path)?.props.get(&key(prop))?.xml.clone()
    }

    /// Records a client modification time for the content with `md5`.
    pub fn set_mtime(&self, path: &str, mtime: SystemTime, md5: Option<&str>) {
        let secs = mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut nodes = self.nodes();
        nodes.entry(path.to_string()).or_default().mtime = Some((secs, md5.map(str::to_string)));
        self.save(&nodes);
    }

    /// The client modification time of `path`, if one was stored for this content.
    pub fn mtime(&self, path: &str, md5: Option<&str>) -> Option<SystemTime> {
        let nodes = self.nodes();
        let (secs, stored_md5) = nodes.get(path)?.mtime.as_ref()?;
        if stored_md5.is_some() && md5.is_some() && stored_md5.as_deref() != md5 {
            return None;
        }
        Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(*secs))
    }

    /// Moves (or copies) the properties of `from` and everything below it to `to`.
    pub fn relocate(&self, from: &str, to: &str, copy: bool) {
        let mut nodes = self.nodes();
        let below = |p: &str, root: &str| {
            p == root || p.starts_with(&format!("{}/", root.trim_end_matches('/')))
        };
        // The destination's old properties are replaced.
        nodes.retain(|p, _| !below(p, to));
        let moved: Vec<(String, Node)> = nodes
            .iter()
            .filter(|(p, _)| below(p, from))
            .map(|(p, n)| (format!("{}{}", to, &p[from.len()..]), n.clone()))
            .collect();
        if !copy {
            nodes.retain(|p, _| !below(p, from));
        }
        nodes.extend(moved);
        self.save(&nodes);
    }

    /// Forgets `path` and everything below it.
    pub fn remove(&self, path: &str) {
        let mut nodes = self.nodes();
        let root = path.trim_end_matches('/').to_string();
        nodes.retain(|p, _| p != &root && !p.starts_with(&format!("{root}/")));
        self.save(&nodes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(name: &str, value: &str) -> DavProp {
        DavProp::new(name.into(), "x".into(), "urn:test".into(), value.into())
    }

    #[test]
    fn set_get_move_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = PropStore::open(Some(dir.path().join("props.json")));
        store.patch("/a/f", vec![(true, prop("color", "red"))]);
        assert!(store.get("/a/f", &prop("color", "")).is_some());
        store.relocate("/a", "/b", false);
        assert!(store.get("/a/f", &prop("color", "")).is_none());
        assert!(store.get("/b/f", &prop("color", "")).is_some());
        // Persisted.
        let again = PropStore::open(Some(dir.path().join("props.json")));
        assert_eq!(again.all("/b/f", true).len(), 1);
        again.remove("/b");
        assert!(again.all("/b/f", true).is_empty());
    }

    #[test]
    fn mtime_is_tied_to_content() {
        let store = PropStore::open(None);
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        store.set_mtime("/f", t, Some("abc"));
        assert_eq!(store.mtime("/f", Some("abc")), Some(t));
        assert_eq!(store.mtime("/f", Some("def")), None);
    }
}
