//! Dead properties (PROPPATCH) and client modification times, kept locally per mount.
//!
//! 123 has nowhere to store them, so they live in memory, keyed by the path inside the mount,
//! and follow the file on MOVE, COPY and DELETE. They are bounded: `props_max_bytes` per mount
//! and `props_per_user_max_bytes` per user (the user who set a value pays for it); a PROPPATCH
//! that would go over either is refused whole (507).
//!
//! On disk (`state_dir/props/<mount>.json` and `.log`): a snapshot, and an append-only log of
//! the changes since, one JSON line each, numbered. A change costs one append of its own size;
//! when the log outgrows the live data (and 1 MiB) the snapshot is rewritten and the log
//! emptied, so the total write cost stays proportional to what is written. Values are stored
//! as text (base64 when not UTF-8); snapshots of older versions, which stored them as arrays
//! of numbers (four times the size), still load.
//!
//! In a cluster (`cluster/props.rs`) the store notes which paths this instance's changes
//! touched, hands them out as text to share, and takes in the other instances' nodes; this
//! copy is what requests read, and what they fall back on while Redis is unavailable. For a
//! PROPPATCH it also notes which properties changed ([`Touched::Keys`]), so two instances
//! setting different properties of one path at the same moment both keep theirs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use base64::Engine;
use dav_server::fs::DavProp;
use serde::{Deserialize, Serialize};

use crate::state_files;

/// The log is compacted into the snapshot once it is larger than this and than the live data.
const COMPACT_MIN: u64 = 1 << 20;

/// A value as written on disk: text when it is UTF-8 (XML nearly always is), base64
/// otherwise; older stores wrote arrays of numbers, which are still read.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum Xml {
    Text(String),
    Base64 { b64: String },
    Numbers(Vec<u8>),
}

impl Xml {
    fn of(bytes: &[u8]) -> Self {
        match std::str::from_utf8(bytes) {
            Ok(s) => Xml::Text(s.to_string()),
            Err(_) => Xml::Base64 {
                b64: base64::engine::general_purpose::STANDARD.encode(bytes),
            },
        }
    }

    fn bytes(self) -> Vec<u8> {
        match self {
            Xml::Text(s) => s.into_bytes(),
            Xml::Base64 { b64 } => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default(),
            Xml::Numbers(v) => v,
        }
    }
}

fn ser_xml<S: serde::Serializer>(xml: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    xml.as_deref().map(Xml::of).serialize(s)
}

fn de_xml<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    Ok(Option::<Xml>::deserialize(d)?.map(Xml::bytes))
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct StoredProp {
    prefix: Option<String>,
    #[serde(serialize_with = "ser_xml", deserialize_with = "de_xml", default)]
    xml: Option<Vec<u8>>,
    /// Who set it (and pays for it); none for values stored by older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Node {
    /// "{namespace}name" → property.
    props: BTreeMap<String, StoredProp>,
    /// A modification time the client asked for (X-OC-Mtime, Win32LastModifiedTime …), with
    /// the MD5 it applies to, so a change made elsewhere is not masked.
    mtime: Option<(u64, Option<String>)>,
}

/// The snapshot file: this version's, or an older version's bare map.
#[derive(Deserialize)]
#[serde(untagged)]
enum Snapshot {
    Current {
        version: u32,
        /// The last log line it contains.
        seq: u64,
        nodes: HashMap<String, Node>,
    },
    Old(HashMap<String, Node>),
}

#[derive(Serialize)]
struct SnapshotRef<'a> {
    version: u32,
    seq: u64,
    nodes: &'a HashMap<String, Node>,
}

/// One change, as logged.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Set {
        path: String,
        key: String,
        prefix: Option<String>,
        #[serde(serialize_with = "ser_xml", deserialize_with = "de_xml", default)]
        xml: Option<Vec<u8>>,
        user: Option<String>,
    },
    Unset {
        path: String,
        key: String,
    },
    Mtime {
        path: String,
        secs: u64,
        md5: Option<String>,
    },
    Relocate {
        from: String,
        to: String,
        copy: bool,
        user: Option<String>,
    },
    Forget {
        path: String,
    },
    /// A path's node as another instance made it (none: gone).
    Replace {
        path: String,
        node: Option<Node>,
    },
}

#[derive(Serialize, Deserialize)]
struct Line {
    seq: u64,
    #[serde(flatten)]
    op: Op,
}

/// A PROPPATCH or COPY refused because it would go over a budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverBudget;

/// The caps of one store.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Bytes of the whole mount.
    pub total: u64,
    /// Bytes one user may set.
    pub per_user: u64,
}

impl Budget {
    /// No caps (tests, tools).
    pub const UNLIMITED: Budget = Budget {
        total: u64::MAX,
        per_user: u64::MAX,
    };
}

/// What a property costs against the budgets: its path, name, prefix and value.
fn cost(path: &str, key: &str, p: &StoredProp) -> u64 {
    (path.len()
        + key.len()
        + p.prefix.as_deref().map_or(0, str::len)
        + p.xml.as_deref().map_or(0, <[u8]>::len)) as u64
}

fn key(prop: &DavProp) -> String {
    format!(
        "{{{}}}{}",
        prop.namespace.as_deref().unwrap_or(""),
        prop.name
    )
}

/// Is `p` the path `root` or below it?
fn at_or_below(p: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    root.is_empty() || p == root || p.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
}

/// The properties in memory, with what each user holds.
#[derive(Default)]
struct Props {
    nodes: HashMap<String, Node>,
    total: u64,
    per_user: HashMap<String, u64>,
}

impl Props {
    fn from_nodes(nodes: HashMap<String, Node>) -> Self {
        let mut props = Props {
            nodes,
            ..Props::default()
        };
        let costs: Vec<(Option<String>, u64)> = props
            .nodes
            .iter()
            .flat_map(|(path, node)| {
                node.props
                    .iter()
                    .map(move |(k, p)| (p.user.clone(), cost(path, k, p)))
            })
            .collect();
        for (user, c) in costs {
            props.charge(user.as_deref(), c);
        }
        props
    }

    fn charge(&mut self, user: Option<&str>, c: u64) {
        self.total = self.total.saturating_add(c);
        if let Some(u) = user {
            let n = self.per_user.entry(u.to_string()).or_insert(0);
            *n = n.saturating_add(c);
        }
    }

    fn refund(&mut self, user: Option<&str>, c: u64) {
        self.total = self.total.saturating_sub(c);
        if let Some(u) = user {
            if let Some(n) = self.per_user.get_mut(u) {
                *n = n.saturating_sub(c);
                if *n == 0 {
                    self.per_user.remove(u);
                }
            }
        }
    }

    fn used_by(&self, user: &str) -> u64 {
        self.per_user.get(user).copied().unwrap_or(0)
    }

    /// Would setting and removing these go over `budget`? Only growth is refused.
    fn fits(
        &self,
        path: &str,
        user: &str,
        changes: &[(bool, String, StoredProp)],
        b: Budget,
    ) -> bool {
        let node = self.nodes.get(path);
        let (mut total, mut mine) = (self.total as i128, self.used_by(user) as i128);
        let (old_total, old_mine) = (total, mine);
        // The same name set twice in one request counts once: the last one stays.
        let mut seen: HashMap<&str, ()> = HashMap::new();
        for (set, k, p) in changes.iter().rev() {
            if seen.insert(k.as_str(), ()).is_some() {
                continue;
            }
            if let Some(old) = node.and_then(|n| n.props.get(k)) {
                let c = cost(path, k, old) as i128;
                total -= c;
                if old.user.as_deref() == Some(user) {
                    mine -= c;
                }
            }
            if *set {
                let c = cost(path, k, p) as i128;
                total += c;
                mine += c;
            }
        }
        (total <= old_total || total <= b.total as i128)
            && (mine <= old_mine || mine <= b.per_user as i128)
    }

    fn set(&mut self, path: &str, k: String, p: StoredProp) {
        let c = cost(path, &k, &p);
        let user = p.user.clone();
        let old = self
            .nodes
            .entry(path.to_string())
            .or_default()
            .props
            .insert(k.clone(), p);
        if let Some(old) = old {
            self.refund(old.user.as_deref(), cost(path, &k, &old));
        }
        self.charge(user.as_deref(), c);
    }

    fn unset(&mut self, path: &str, k: &str) {
        let Some(node) = self.nodes.get_mut(path) else {
            return;
        };
        let old = node.props.remove(k);
        let empty = node.props.is_empty() && node.mtime.is_none();
        if empty {
            self.nodes.remove(path);
        }
        if let Some(old) = old {
            self.refund(old.user.as_deref(), cost(path, k, &old));
        }
    }

    fn set_mtime(&mut self, path: &str, secs: u64, md5: Option<String>) {
        self.nodes.entry(path.to_string()).or_default().mtime = Some((secs, md5));
    }

    /// Removes `root` and everything below it; returns what was there.
    fn take_below(&mut self, root: &str) -> Vec<(String, Node)> {
        let paths: Vec<String> = self
            .nodes
            .keys()
            .filter(|p| at_or_below(p, root))
            .cloned()
            .collect();
        let mut out = Vec::with_capacity(paths.len());
        for path in paths {
            if let Some(node) = self.nodes.remove(&path) {
                for (k, p) in &node.props {
                    self.refund(p.user.as_deref(), cost(&path, k, p));
                }
                out.push((path, node));
            }
        }
        out
    }

    /// What copying `from` (and below) to `to` would add, charged to `user`.
    fn copy_cost(&self, from: &str, to: &str) -> u64 {
        self.nodes
            .iter()
            .filter(|(p, _)| at_or_below(p, from))
            .flat_map(|(p, node)| {
                let dest = format!("{to}{}", p.get(from.len()..).unwrap_or(""));
                node.props.iter().map(move |(k, prop)| cost(&dest, k, prop))
            })
            .sum()
    }

    fn relocate(&mut self, from: &str, to: &str, copy: bool, user: Option<&str>) {
        // The destination's old properties are replaced.
        self.take_below(to);
        let sources: Vec<(String, Node)> = if copy {
            self.nodes
                .iter()
                .filter(|(p, _)| at_or_below(p, from))
                .map(|(p, n)| (p.clone(), n.clone()))
                .collect()
        } else {
            self.take_below(from)
        };
        for (p, mut node) in sources {
            let dest = format!("{to}{}", p.get(from.len()..).unwrap_or(""));
            if copy {
                // A copy belongs to whoever made it.
                for prop in node.props.values_mut() {
                    prop.user = user.map(str::to_string);
                }
            }
            for (k, prop) in &node.props {
                self.charge(prop.user.as_deref(), cost(&dest, k, prop));
            }
            self.nodes.insert(dest, node);
        }
    }

    /// Puts `node` (none or empty: nothing) at `path`, whatever was there.
    fn replace(&mut self, path: &str, node: Option<Node>) {
        if let Some(old) = self.nodes.remove(path) {
            for (k, p) in &old.props {
                self.refund(p.user.as_deref(), cost(path, k, p));
            }
        }
        let Some(node) = node.filter(|n| !n.props.is_empty() || n.mtime.is_some()) else {
            return;
        };
        for (k, p) in &node.props {
            self.charge(p.user.as_deref(), cost(path, k, p));
        }
        self.nodes.insert(path.to_string(), node);
    }

    /// The paths whose nodes `op` reads or changes (asked before and after applying it), and
    /// what of each: some properties, or the whole node.
    fn touched_by(&self, op: &Op, out: &mut BTreeMap<String, Touched>) {
        let below = |root: &str, out: &mut BTreeMap<String, Touched>| {
            for p in self.nodes.keys().filter(|p| at_or_below(p, root)) {
                out.insert(p.clone(), Touched::Whole);
            }
        };
        match op {
            Op::Set { path, key, .. } | Op::Unset { path, key } => {
                touch(out, path, Touched::Keys(BTreeSet::from([key.clone()])));
            }
            Op::Mtime { path, .. } => {
                touch(
                    out,
                    path,
                    Touched::Keys(BTreeSet::from([MTIME_KEY.to_string()])),
                );
            }
            Op::Replace { path, .. } => touch(out, path, Touched::Whole),
            Op::Relocate { from, to, .. } => {
                below(from, out);
                below(to, out);
            }
            Op::Forget { path } => below(path, out),
        }
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Set {
                path,
                key,
                prefix,
                xml,
                user,
            } => self.set(&path, key, StoredProp { prefix, xml, user }),
            Op::Unset { path, key } => self.unset(&path, &key),
            Op::Mtime { path, secs, md5 } => self.set_mtime(&path, secs, md5),
            Op::Relocate {
                from,
                to,
                copy,
                user,
            } => self.relocate(&from, &to, copy, user.as_deref()),
            Op::Forget { path } => {
                self.take_below(&path);
            }
            Op::Replace { path, node } => self.replace(&path, node),
        }
    }
}

/// The files of a store and the log being appended to.
struct Disk {
    snapshot: PathBuf,
    log: PathBuf,
    /// Open for appending once the first change is written.
    writer: Option<File>,
    /// Bytes in the log.
    log_bytes: u64,
    /// The number of the last logged change.
    seq: u64,
}

struct Inner {
    props: Props,
    disk: Option<Disk>,
    /// In a cluster: what this instance changed and has not yet shared.
    sharing: Option<Sharing>,
}

/// The paths this instance's changes touched: not yet handed out, and handed out but not yet
/// stored in the cluster. Nodes coming from other instances leave both alone.
#[derive(Default)]
struct Sharing {
    touched: BTreeMap<String, Touched>,
    in_flight: BTreeMap<String, Touched>,
}

/// What of one path's node this instance changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Touched {
    /// These properties ("{namespace}name", or [`MTIME_KEY`] for the client mtime): the
    /// cluster keeps the node's other properties as another instance may have just set them.
    Keys(BTreeSet<String>),
    /// The whole node (a MOVE, COPY or DELETE): it replaces what the cluster has.
    Whole,
}

/// The key of the client modification time among a node's [`Touched::Keys`] (no property's
/// key is empty).
pub const MTIME_KEY: &str = "";

/// Notes that `what` of `path` changed, on top of what was noted before.
fn touch(out: &mut BTreeMap<String, Touched>, path: &str, what: Touched) {
    match (out.get_mut(path), what) {
        (Some(Touched::Keys(keys)), Touched::Keys(more)) => keys.extend(more),
        (Some(Touched::Whole), _) => {}
        (_, what) => {
            out.insert(path.to_string(), what);
        }
    }
}

/// One path this instance changed, as handed out to the cluster.
#[derive(Clone, Debug)]
pub struct PropChange {
    pub path: String,
    /// The node as text (none: gone).
    pub node: Option<String>,
    pub touched: Touched,
}

/// The dead properties of one mount.
pub struct PropStore {
    budget: Budget,
    inner: Mutex<Inner>,
}

/// The snapshot format this version writes.
const VERSION: u32 = 2;

impl PropStore {
    /// Loads the store kept in `file` (its log next to it, `.log`); a missing or unreadable
    /// file starts empty. `budget` caps what PROPPATCH may add.
    pub fn open(file: Option<PathBuf>, budget: Budget) -> Self {
        let Some(snapshot) = file else {
            return Self {
                budget,
                inner: Mutex::new(Inner {
                    props: Props::default(),
                    disk: None,
                    sharing: None,
                }),
            };
        };
        let log = snapshot.with_extension("log");
        let (nodes, seq) = match std::fs::read(&snapshot)
            .ok()
            .and_then(|b| serde_json::from_slice::<Snapshot>(&b).ok())
        {
            Some(Snapshot::Current {
                version,
                seq,
                nodes,
            }) => {
                if version > VERSION {
                    tracing::warn!(file = %snapshot.display(), version, "dead properties written by a newer version; reading what this one knows");
                }
                (nodes, seq)
            }
            Some(Snapshot::Old(nodes)) => (nodes, 0),
            None => (HashMap::new(), 0),
        };
        let mut props = Props::from_nodes(nodes);
        let (replayed, last) = replay(&log, seq, &mut props);
        let store = Self {
            budget,
            inner: Mutex::new(Inner {
                props,
                disk: Some(Disk {
                    snapshot,
                    log,
                    writer: None,
                    log_bytes: 0,
                    seq: last,
                }),
                sharing: None,
            }),
        };
        if replayed > 0 || last > seq {
            // Fold the log into a fresh snapshot, so it starts empty.
            let mut inner = store.inner();
            let Inner { props, disk, .. } = &mut *inner;
            if let Some(disk) = disk.as_mut() {
                compact(disk, props);
            }
        }
        store
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a PROPPATCH by `user`: `(true, prop)` sets, `(false, prop)` removes. Refused
    /// whole, changing nothing, when it would take the mount or the user over the budget.
    pub fn patch(
        &self,
        path: &str,
        user: &str,
        patch: Vec<(bool, DavProp)>,
    ) -> Result<Vec<(http::StatusCode, DavProp)>, OverBudget> {
        let changes: Vec<(bool, String, StoredProp)> = patch
            .iter()
            .map(|(set, prop)| {
                let stored = StoredProp {
                    prefix: prop.prefix.clone(),
                    xml: prop.xml.clone(),
                    user: Some(user.to_string()),
                };
                (*set, key(prop), stored)
            })
            .collect();
        let mut inner = self.inner();
        if !inner.props.fits(path, user, &changes, self.budget) {
            return Err(OverBudget);
        }
        let ops = changes
            .into_iter()
            .map(|(set, key, p)| {
                if set {
                    Op::Set {
                        path: path.to_string(),
                        key,
                        prefix: p.prefix,
                        xml: p.xml,
                        user: p.user,
                    }
                } else {
                    Op::Unset {
                        path: path.to_string(),
                        key,
                    }
                }
            })
            .collect();
        inner.record(ops);
        Ok(patch
            .into_iter()
            .map(|(_, prop)| (http::StatusCode::OK, DavProp { xml: None, ..prop }))
            .collect())
    }

    /// Every dead property of `path`.
    pub fn all(&self, path: &str, do_content: bool) -> Vec<DavProp> {
        let inner = self.inner();
        let Some(node) = inner.props.nodes.get(path) else {
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
        self.inner()
            .props
            .nodes
            .iter()
            .any(|(path, node)| !node.props.is_empty() && at_or_below(path, dir))
    }

    /// One dead property's XML.
    pub fn get(&self, path: &str, prop: &DavProp) -> Option<Vec<u8>> {
        self.inner()
            .props
            .nodes
            .get(path)?
            .props
            .get(&key(prop))?
            .xml
            .clone()
    }

    /// Records a client modification time for the content with `md5`.
    pub fn set_mtime(&self, path: &str, mtime: SystemTime, md5: Option<&str>) {
        let secs = mtime
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        self.inner().record(vec![Op::Mtime {
            path: path.to_string(),
            secs,
            md5: md5.map(str::to_string),
        }]);
    }

    /// The client modification time of `path`, if one was stored for this content.
    pub fn mtime(&self, path: &str, md5: Option<&str>) -> Option<SystemTime> {
        let inner = self.inner();
        let (secs, stored_md5) = inner.props.nodes.get(path)?.mtime.as_ref()?;
        if stored_md5.is_some() && md5.is_some() && stored_md5.as_deref() != md5 {
            return None;
        }
        Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(*secs))
    }

    /// Would copying the properties of `from` (and below) to `to` for `user` fit the budget?
    /// (Checked before a COPY, which then always carries them.)
    pub fn copy_fits(&self, from: &str, to: &str, user: &str) -> Result<(), OverBudget> {
        let inner = self.inner();
        let add = inner.props.copy_cost(from, to);
        if add == 0 {
            return Ok(());
        }
        let total = inner.props.total.saturating_add(add);
        let mine = inner.props.used_by(user).saturating_add(add);
        if total > self.budget.total || mine > self.budget.per_user {
            return Err(OverBudget);
        }
        Ok(())
    }

    /// Moves (or copies, for `user`) the properties of `from` and everything below it to `to`.
    pub fn relocate(&self, from: &str, to: &str, copy: bool, user: &str) {
        self.inner().record(vec![Op::Relocate {
            from: from.to_string(),
            to: to.to_string(),
            copy,
            user: Some(user.to_string()),
        }]);
    }

    /// Forgets `path` and everything below it.
    pub fn remove(&self, path: &str) {
        let path = path.trim_end_matches('/').to_string();
        self.inner().record(vec![Op::Forget { path }]);
    }

    /// Starts noting the paths this instance's changes touch, for the cluster to share
    /// (`cluster::SharedProps`).
    pub fn share(&self) {
        self.inner().sharing.get_or_insert_with(Sharing::default);
    }

    /// The paths changed here and not yet handed out, each with its node as text and what of
    /// it changed. They stay *in flight* until [`PropStore::shared`] says whether the cluster
    /// took them.
    pub fn take_changes(&self) -> Vec<PropChange> {
        let mut inner = self.inner();
        let Inner { props, sharing, .. } = &mut *inner;
        let Some(sharing) = sharing.as_mut() else {
            return Vec::new();
        };
        let touched = std::mem::take(&mut sharing.touched);
        let out = touched
            .iter()
            .map(|(p, what)| PropChange {
                path: p.clone(),
                node: props
                    .nodes
                    .get(p)
                    .and_then(|n| serde_json::to_string(n).ok()),
                touched: what.clone(),
            })
            .collect();
        for (p, what) in touched {
            touch(&mut sharing.in_flight, &p, what);
        }
        out
    }

    /// Whether the cluster stored `changes` (from [`PropStore::take_changes`]); if not they
    /// are handed out again next time.
    pub fn shared(&self, changes: Vec<PropChange>, stored: bool) {
        let mut inner = self.inner();
        let Some(sharing) = inner.sharing.as_mut() else {
            return;
        };
        for change in changes {
            sharing.in_flight.remove(&change.path);
            if !stored {
                touch(&mut sharing.touched, &change.path, change.touched);
            }
        }
    }

    /// Other instances' nodes (text from [`PropStore::take_changes`]; none: gone) replace
    /// these paths here, except where this instance has changes of its own to share.
    pub fn merge(&self, nodes: Vec<(String, Option<String>)>) {
        let mut inner = self.inner();
        let ops = nodes
            .into_iter()
            .filter(|(path, _)| !inner.unshared(path))
            .map(|(path, text)| Op::Replace {
                node: text.and_then(|t| serde_json::from_str(&t).ok()),
                path,
            })
            .collect::<Vec<_>>();
        if !ops.is_empty() {
            inner.record_quietly(ops);
        }
    }

    /// The cluster's whole store replaces this one (paths it lacks are dropped), except where
    /// this instance has changes of its own to share.
    pub fn replace_all(&self, nodes: Vec<(String, String)>) {
        let mut inner = self.inner();
        let theirs: HashMap<String, String> = nodes.into_iter().collect();
        let mut ops: Vec<Op> = inner
            .props
            .nodes
            .keys()
            .filter(|p| !theirs.contains_key(*p))
            .map(|p| Op::Replace {
                path: p.clone(),
                node: None,
            })
            .collect();
        ops.extend(theirs.into_iter().map(|(path, text)| Op::Replace {
            node: serde_json::from_str(&text).ok(),
            path,
        }));
        ops.retain(|op| match op {
            Op::Replace { path, .. } => !inner.unshared(path),
            _ => true,
        });
        if !ops.is_empty() {
            inner.record_quietly(ops);
        }
    }

    /// Every node as text (what an empty cluster is seeded with).
    pub fn export(&self) -> Vec<(String, String)> {
        self.inner()
            .props
            .nodes
            .iter()
            .filter_map(|(p, n)| Some((p.clone(), serde_json::to_string(n).ok()?)))
            .collect()
    }
}

impl Inner {
    /// Has this instance changed `path` without the cluster having stored it yet?
    fn unshared(&self, path: &str) -> bool {
        self.sharing
            .as_ref()
            .is_some_and(|s| s.touched.contains_key(path) || s.in_flight.contains_key(path))
    }
    /// Applies this instance's `ops` in memory and appends them to the log (compacting when
    /// it is due); in a cluster, notes the paths they touched for sharing.
    fn record(&mut self, ops: Vec<Op>) {
        let Some(mut sharing) = self.sharing.take() else {
            return self.record_quietly(ops);
        };
        for op in &ops {
            self.props.touched_by(op, &mut sharing.touched);
        }
        // A MOVE's or COPY's destination is known only once it is made.
        let moves: Vec<Op> = ops
            .iter()
            .filter(|op| matches!(op, Op::Relocate { .. }))
            .cloned()
            .collect();
        self.record_quietly(ops);
        for op in &moves {
            self.props.touched_by(op, &mut sharing.touched);
        }
        self.sharing = Some(sharing);
    }

    /// Applies `ops` in memory and appends them to the log, sharing nothing.
    fn record_quietly(&mut self, ops: Vec<Op>) {
        let Inner { props, disk, .. } = self;
        let Some(disk) = disk.as_mut() else {
            for op in ops {
                props.apply(op);
            }
            return;
        };
        let mut text = Vec::new();
        for op in &ops {
            disk.seq += 1;
            let line = Line {
                seq: disk.seq,
                op: op.clone(),
            };
            if serde_json::to_writer(&mut text, &line).is_ok() {
                text.push(b'\n');
            }
        }
        for op in ops {
            props.apply(op);
        }
        if let Err(e) = append(disk, &text) {
            tracing::warn!(file = %disk.log.display(), error = %e, "could not log a dead-property change");
            // Keep what is in memory on disk another way.
            compact(disk, props);
            return;
        }
        if disk.log_bytes > COMPACT_MIN && disk.log_bytes > props.total {
            compact(disk, props);
        }
    }
}

fn append(disk: &mut Disk, text: &[u8]) -> std::io::Result<()> {
    if disk.writer.is_none() {
        if let Some(dir) = disk.log.parent() {
            state_files::create_dir_all(dir)?;
        }
        let f = state_files::append(&disk.log)?;
        disk.log_bytes = f.metadata().map(|m| m.len()).unwrap_or(0);
        disk.writer = Some(f);
    }
    let Some(f) = disk.writer.as_mut() else {
        return Ok(());
    };
    f.write_all(text)?;
    disk.log_bytes += text.len() as u64;
    Ok(())
}

/// Writes the snapshot (up to the last logged change) and empties the log.
fn compact(disk: &mut Disk, props: &Props) {
    let snapshot = SnapshotRef {
        version: VERSION,
        seq: disk.seq,
        nodes: &props.nodes,
    };
    let result = state_files::write_json_atomic(&disk.snapshot, &snapshot).and_then(|()| {
        // Lines up to `seq` are in the snapshot; replay skips them even if this truncation
        // is lost.
        disk.writer = None;
        match std::fs::remove_file(&disk.log) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    });
    match result {
        Ok(()) => disk.log_bytes = 0,
        Err(e) => {
            tracing::warn!(file = %disk.snapshot.display(), error = %e, "could not save dead properties")
        }
    }
}

/// Applies the log lines after `after` to `props`; returns how many were applied and the last
/// number seen. A torn last line (a crash mid-append) ends the replay.
fn replay(log: &Path, after: u64, props: &mut Props) -> (usize, u64) {
    let Ok(f) = File::open(log) else {
        return (0, after);
    };
    let (mut applied, mut last) = (0, after);
    for line in std::io::BufReader::new(f).split(b'\n') {
        let Ok(line) = line else { break };
        if line.is_empty() {
            continue;
        }
        let Ok(line) = serde_json::from_slice::<Line>(&line) else {
            tracing::warn!(file = %log.display(), "a dead-property log ends with a torn line; ignored");
            break;
        };
        if line.seq <= after {
            continue;
        }
        last = last.max(line.seq);
        props.apply(line.op);
        applied += 1;
    }
    (applied, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(name: &str, value: &str) -> DavProp {
        DavProp::new(name.into(), "x".into(), "urn:test".into(), value.into())
    }

    fn open(dir: &Path, budget: Budget) -> PropStore {
        PropStore::open(Some(dir.join("props.json")), budget)
    }

    #[test]
    fn set_get_move_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), Budget::UNLIMITED);
        store
            .patch("/a/f", "u", vec![(true, prop("color", "red"))])
            .unwrap();
        assert!(store.get("/a/f", &prop("color", "")).is_some());
        store.relocate("/a", "/b", false, "u");
        assert!(store.get("/a/f", &prop("color", "")).is_none());
        assert!(store.get("/b/f", &prop("color", "")).is_some());
        // Persisted.
        drop(store);
        let again = open(dir.path(), Budget::UNLIMITED);
        assert_eq!(again.all("/b/f", true).len(), 1);
        again.remove("/b");
        assert!(again.all("/b/f", true).is_empty());
        drop(again);
        assert!(open(dir.path(), Budget::UNLIMITED)
            .all("/b/f", true)
            .is_empty());
    }

    #[test]
    fn mtime_is_tied_to_content() {
        let store = PropStore::open(None, Budget::UNLIMITED);
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        store.set_mtime("/f", t, Some("abc"));
        assert_eq!(store.mtime("/f", Some("abc")), Some(t));
        assert_eq!(store.mtime("/f", Some("def")), None);
    }

    #[test]
    fn an_old_store_loads_and_is_rewritten_compactly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("props.json");
        // What earlier versions wrote: a bare map, values as arrays of numbers.
        let xml: Vec<u8> = b"<x:color xmlns:x=\"urn:test\">red</x:color>".to_vec();
        let old = serde_json::json!({
            "/a/f": {"props": {"{urn:test}color": {"prefix": "x", "xml": xml}}, "mtime": [1600000000u64, "abc"]}
        });
        std::fs::write(&file, serde_json::to_vec(&old).unwrap()).unwrap();
        let store = open(dir.path(), Budget::UNLIMITED);
        assert_eq!(store.get("/a/f", &prop("color", "")), Some(xml.clone()));
        assert!(store.mtime("/a/f", Some("abc")).is_some());
        store
            .patch("/a/g", "u", vec![(true, prop("size", "big"))])
            .unwrap();
        drop(store);
        let store = open(dir.path(), Budget::UNLIMITED);
        assert_eq!(store.get("/a/f", &prop("color", "")), Some(xml));
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("red</x:color>"), "stored as text: {text}");
    }

    #[test]
    fn budgets_refuse_growth_only() {
        let budget = Budget {
            total: 1000,
            per_user: 600,
        };
        let store = PropStore::open(None, budget);
        let v = "v".repeat(250);
        for i in 0..2 {
            store
                .patch("/f", "a", vec![(true, prop(&format!("p{i}"), &v))])
                .unwrap();
        }
        assert!(
            matches!(
                store.patch("/f", "a", vec![(true, prop("p2", &v))]),
                Err(OverBudget)
            ),
            "a over 600"
        );
        // Replacing a value with one of the same size is no growth.
        store
            .patch("/f", "a", vec![(true, prop("p1", &v))])
            .unwrap();
        store
            .patch("/f", "b", vec![(true, prop("q0", &v))])
            .unwrap();
        assert!(
            matches!(
                store.patch("/f", "b", vec![(true, prop("q1", &v))]),
                Err(OverBudget)
            ),
            "the mount over 1000"
        );
        store
            .patch("/f", "a", vec![(false, prop("p0", ""))])
            .unwrap();
        store
            .patch("/f", "b", vec![(true, prop("q1", &v))])
            .unwrap();
        assert!(store.copy_fits("/f", "/g", "b").is_err());
        assert!(store.copy_fits("/none", "/g", "b").is_ok());
    }

    #[test]
    fn the_log_is_compacted_and_a_torn_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), Budget::UNLIMITED);
        let v = "v".repeat(100_000);
        for i in 0..30 {
            store
                .patch("/f", "u", vec![(true, prop("same", &format!("{v}{i}")))])
                .unwrap();
        }
        drop(store);
        let log = dir.path().join("props.log");
        let log_len = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        assert!(log_len <= 2 * COMPACT_MIN, "log {log_len} bytes");
        // A crash mid-append leaves half a line.
        let mut f = state_files::append(&log).unwrap();
        f.write_all(b"{\"seq\":99999,\"op\":\"se").unwrap();
        drop(f);
        let store = open(dir.path(), Budget::UNLIMITED);
        let got = store.get("/f", &prop("same", "")).unwrap();
        assert!(got.ends_with(b"29</x:same>"));
    }

    #[test]
    fn changes_are_handed_out_and_merged_elsewhere() {
        let a = PropStore::open(None, Budget::UNLIMITED);
        let b = PropStore::open(None, Budget::UNLIMITED);
        a.share();
        b.share();
        a.patch("/d/f", "u", vec![(true, prop("color", "red"))])
            .unwrap();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        a.set_mtime("/d/g", t, Some("abc"));
        let changes = a.take_changes();
        assert_eq!(changes.len(), 2);
        // A PROPPATCH names the properties it changed; the mtime has a key of its own.
        assert_eq!(
            changes[0].touched,
            Touched::Keys(BTreeSet::from(["{urn:test}color".to_string()]))
        );
        assert_eq!(
            changes[1].touched,
            Touched::Keys(BTreeSet::from([MTIME_KEY.to_string()]))
        );
        let texts: Vec<(String, Option<String>)> = changes
            .iter()
            .map(|c| (c.path.clone(), c.node.clone()))
            .collect();
        a.shared(changes, true);
        assert!(a.take_changes().is_empty());
        b.merge(texts);
        assert!(b.get("/d/f", &prop("color", "")).is_some());
        assert_eq!(b.mtime("/d/g", Some("abc")), Some(t));
        assert!(
            b.take_changes().is_empty(),
            "merged nodes are not b's to share"
        );

        // A MOVE touches where things were and where they went, whole.
        b.relocate("/d", "/e", false, "u");
        let moved = b.take_changes();
        let paths: Vec<&str> = moved.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(paths, ["/d/f", "/d/g", "/e/f", "/e/g"]);
        assert!(moved.iter().all(|c| c.touched == Touched::Whole));
        // Not stored: handed out again, and not overwritten by the cluster meanwhile.
        b.shared(moved, false);
        b.merge(vec![("/e/f".into(), None)]);
        assert!(b.get("/e/f", &prop("color", "")).is_some());
        assert_eq!(b.take_changes().len(), 4);

        a.replace_all(b.export());
        assert!(a.get("/d/f", &prop("color", "")).is_none());
        assert!(a.get("/e/f", &prop("color", "")).is_some());
        assert_eq!(a.mtime("/e/g", Some("abc")), Some(t));
    }
}
