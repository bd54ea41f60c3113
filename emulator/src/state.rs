//! The account's file tree: folders and files by id, children kept in id order.
//!
//! The tree knows nothing about HTTP or envelopes; handlers call these operations and turn a
//! `TreeError` into whatever 123 answers. Bodies are not here: a file names its content by
//! (MD5, size) and the `ContentStore` holds the bytes.

use std::collections::{BTreeSet, HashMap};

use crate::content::ContentStore;
use crate::names;

/// The account: its tree and the content its files point at. Kept under one lock so a file and
/// its bytes are always added together.
#[derive(Debug, Default)]
pub struct Fs {
    /// Folders and files.
    pub tree: Tree,
    /// Bodies by (MD5, size).
    pub content: ContentStore,
}

impl Fs {
    /// An empty account.
    pub fn new() -> Fs {
        Fs {
            tree: Tree::new(),
            content: ContentStore::new(),
        }
    }
}

/// Id of the root folder (never listed itself).
pub const ROOT: u64 = 0;

/// First id handed out; real 123 ids are large numbers too.
const FIRST_ID: u64 = 10_000_001;

/// A file or folder.
#[derive(Debug, Clone)]
pub struct Entry {
    /// fileId.
    pub id: u64,
    /// Containing folder.
    pub parent: u64,
    /// Name only.
    pub name: String,
    /// Folder?
    pub is_dir: bool,
    /// Bytes (0 for folders).
    pub size: u64,
    /// Lowercase hex MD5 (`""` for folders).
    pub md5: String,
    /// In the recycle bin?
    pub trashed: bool,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub updated: i64,
    /// Child ids, ascending (folders only).
    pub children: BTreeSet<u64>,
}

/// How names collide, from the switches.
#[derive(Debug, Clone, Copy)]
pub struct NamePolicy {
    /// `case_sensitive_names`.
    pub case_sensitive: bool,
    /// `trashed_blocks_name`.
    pub trashed_blocks: bool,
}

/// Why a tree operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// No such (live) entry.
    #[error("文件不存在")]
    NotFound,
    /// Expected a folder.
    #[error("目标不是文件夹")]
    NotDir,
    /// The name is taken by this entry.
    #[error("该目录下已经有同名文件")]
    Conflict(u64),
    /// The name breaks 123's rules.
    #[error("{0}")]
    Name(#[from] names::NameError),
    /// Moving a folder into itself or a descendant.
    #[error("不能移动到自身或子目录下")]
    Cycle,
}

/// The whole tree.
#[derive(Debug)]
pub struct Tree {
    entries: HashMap<u64, Entry>,
    next_id: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A tree with only the root folder.
    pub fn new() -> Tree {
        let mut entries = HashMap::new();
        entries.insert(
            ROOT,
            Entry {
                id: ROOT,
                parent: ROOT,
                name: String::new(),
                is_dir: true,
                size: 0,
                md5: String::new(),
                trashed: false,
                created: 0,
                updated: 0,
                children: BTreeSet::new(),
            },
        );
        Tree {
            entries,
            next_id: FIRST_ID,
        }
    }

    /// Any entry by id, trashed or not.
    pub fn get(&self, id: u64) -> Option<&Entry> {
        self.entries.get(&id)
    }

    /// Mutable access by id.
    pub fn get_mut(&mut self, id: u64) -> Option<&mut Entry> {
        self.entries.get_mut(&id)
    }

    /// Whether the entry exists and neither it nor an ancestor is trashed.
    pub fn is_live(&self, id: u64) -> bool {
        let mut cur = id;
        loop {
            match self.entries.get(&cur) {
                None => return false,
                Some(e) if e.trashed => return false,
                Some(_) if cur == ROOT => return true,
                Some(e) => cur = e.parent,
            }
        }
    }

    /// A live folder (root included), or the reason it is not one.
    pub fn live_dir(&self, id: u64) -> Result<&Entry, TreeError> {
        if !self.is_live(id) {
            return Err(TreeError::NotFound);
        }
        let e = self.entries.get(&id).ok_or(TreeError::NotFound)?;
        if e.is_dir {
            Ok(e)
        } else {
            Err(TreeError::NotDir)
        }
    }

    /// Children of a folder in id order (trashed ones included).
    pub fn children(&self, parent: u64) -> impl Iterator<Item = &Entry> + '_ {
        self.entries
            .get(&parent)
            .into_iter()
            .flat_map(|p| p.children.iter())
            .filter_map(|id| self.entries.get(id))
    }

    /// Every entry except the root, in no particular order.
    pub fn all(&self) -> impl Iterator<Item = &Entry> + '_ {
        self.entries.values().filter(|e| e.id != ROOT)
    }

    /// The child of `parent` that `name` would collide with, ignoring `except`.
    pub fn conflict(
        &self,
        parent: u64,
        name: &str,
        policy: NamePolicy,
        except: Option<u64>,
    ) -> Option<u64> {
        self.children(parent)
            .filter(|e| Some(e.id) != except)
            .filter(|e| !e.trashed || policy.trashed_blocks)
            .find(|e| names::same(&e.name, name, policy.case_sensitive))
            .map(|e| e.id)
    }

    /// The live child of `parent` named exactly `name`.
    pub fn live_child(&self, parent: u64, name: &str) -> Option<u64> {
        self.children(parent)
            .find(|e| !e.trashed && e.name == name)
            .map(|e| e.id)
    }

    /// Add an entry without any checks; returns its id.
    pub fn insert(
        &mut self,
        parent: u64,
        name: &str,
        file: Option<(u64, String)>,
        now: i64,
    ) -> u64 {
        let id = self.reserve_id();
        self.insert_as(id, parent, name, file, now)
    }

    /// Hand out an id now for an entry that appears later (the web upload's `FileId` is known
    /// at `upload_request`, the file only exists after `upload_complete/v2`).
    pub fn reserve_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Add an entry under an id from `reserve_id` (or `insert`), without any checks.
    pub fn insert_as(
        &mut self,
        id: u64,
        parent: u64,
        name: &str,
        file: Option<(u64, String)>,
        now: i64,
    ) -> u64 {
        let (is_dir, size, md5) = match file {
            Some((size, md5)) => (false, size, md5),
            None => (true, 0, String::new()),
        };
        self.entries.insert(
            id,
            Entry {
                id,
                parent,
                name: name.to_string(),
                is_dir,
                size,
                md5,
                trashed: false,
                created: now,
                updated: now,
                children: BTreeSet::new(),
            },
        );
        if let Some(p) = self.entries.get_mut(&parent) {
            p.children.insert(id);
        }
        id
    }

    /// Resolve `/a/b` through live entries (exact names); `/` and `""` are the root.
    pub fn resolve(&self, path: &str) -> Option<u64> {
        let mut cur = ROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur = self.live_child(cur, part)?;
        }
        Some(cur)
    }

    /// Make sure the folder `path` exists (exact names, live entries), creating what is missing;
    /// a file in the way is trashed. Returns the folder's id.
    pub fn mkdir_p(&mut self, path: &str, now: i64) -> u64 {
        let mut cur = ROOT;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur = match self.live_child(cur, part) {
                Some(id) if self.get(id).is_some_and(|e| e.is_dir) => id,
                Some(id) => {
                    self.trash(id, now);
                    self.insert(cur, part, None, now)
                }
                None => self.insert(cur, part, None, now),
            };
        }
        cur
    }

    /// The path of an entry from the root, e.g. `/a/b.txt`.
    pub fn path_of(&self, id: u64) -> Option<String> {
        let mut parts = Vec::new();
        let mut cur = id;
        while cur != ROOT {
            let e = self.entries.get(&cur)?;
            parts.push(e.name.as_str());
            cur = e.parent;
        }
        parts.reverse();
        Some(format!("/{}", parts.join("/")))
    }

    /// Whether `anc` is `id` or one of its ancestors.
    pub fn is_ancestor_or_self(&self, anc: u64, id: u64) -> bool {
        let mut cur = id;
        loop {
            if cur == anc {
                return true;
            }
            if cur == ROOT {
                return false;
            }
            match self.entries.get(&cur) {
                Some(e) => cur = e.parent,
                None => return false,
            }
        }
    }

    /// Put an entry into the recycle bin.
    pub fn trash(&mut self, id: u64, now: i64) {
        if id == ROOT {
            return;
        }
        if let Some(e) = self.entries.get_mut(&id) {
            e.trashed = true;
            e.updated = now;
        }
    }

    /// Delete an entry and everything below it for good.
    pub fn remove(&mut self, id: u64) {
        if id == ROOT {
            return;
        }
        let Some(e) = self.entries.remove(&id) else {
            return;
        };
        if let Some(p) = self.entries.get_mut(&e.parent) {
            p.children.remove(&id);
        }
        let mut stack: Vec<u64> = e.children.into_iter().collect();
        while let Some(c) = stack.pop() {
            if let Some(ce) = self.entries.remove(&c) {
                stack.extend(ce.children);
            }
        }
    }

    /// Re-parent an entry (no name checks).
    pub fn set_parent(&mut self, id: u64, new_parent: u64) {
        let Some(old) = self.entries.get(&id).map(|e| e.parent) else {
            return;
        };
        if let Some(p) = self.entries.get_mut(&old) {
            p.children.remove(&id);
        }
        if let Some(p) = self.entries.get_mut(&new_parent) {
            p.children.insert(id);
        }
        if let Some(e) = self.entries.get_mut(&id) {
            e.parent = new_parent;
        }
    }

    /// Move `ids` into the folder `target`, all or nothing. Refused when the target is not a live
    /// folder, an id is unknown, trashed or the root (`NotFound`), a folder would go into itself
    /// or below (`Cycle`), or a name is taken in the target, also by another moved item
    /// (`Conflict`). Items already in `target` stay put. Shared by the Open API's `file/move`
    /// and the web API's `mod_pid`, so both answer the same.
    pub fn move_entries(
        &mut self,
        ids: &[u64],
        target: u64,
        policy: NamePolicy,
        now: i64,
    ) -> Result<(), TreeError> {
        self.live_dir(target)?;
        let mut names_moving: Vec<String> = Vec::new();
        for &id in ids {
            if id == ROOT || !self.is_live(id) {
                return Err(TreeError::NotFound);
            }
            let e = self.get(id).ok_or(TreeError::NotFound)?;
            if e.is_dir && self.is_ancestor_or_self(id, target) {
                return Err(TreeError::Cycle);
            }
            if e.parent == target {
                continue;
            }
            let taken = self
                .conflict(target, &e.name, policy, None)
                .filter(|c| !ids.contains(c));
            if let Some(c) = taken {
                return Err(TreeError::Conflict(c));
            }
            if names_moving
                .iter()
                .any(|n| names::same(n, &e.name, policy.case_sensitive))
            {
                return Err(TreeError::Conflict(id));
            }
            names_moving.push(e.name.clone());
        }
        for &id in ids {
            self.set_parent(id, target);
            if let Some(e) = self.get_mut(id) {
                e.updated = now;
            }
        }
        Ok(())
    }

    /// Rename a live entry: the name must follow 123's rules (`Name`), the entry must be live
    /// and not the root (`NotFound`), and no sibling may hold the name (`Conflict`). Shared by
    /// the Open API's `file/name` and the web API's `file/rename`.
    pub fn rename(
        &mut self,
        id: u64,
        name: &str,
        policy: NamePolicy,
        now: i64,
    ) -> Result<(), TreeError> {
        names::validate(name)?;
        if id == ROOT || !self.is_live(id) {
            return Err(TreeError::NotFound);
        }
        let parent = self.get(id).map(|e| e.parent).unwrap_or(ROOT);
        if let Some(c) = self.conflict(parent, name, policy, Some(id)) {
            return Err(TreeError::Conflict(c));
        }
        if let Some(e) = self.get_mut(id) {
            e.name = name.to_string();
            e.updated = now;
        }
        Ok(())
    }

    /// Put `ids` into the recycle bin, all or nothing: an unknown id or the root is `NotFound`;
    /// an item already trashed is fine. Shared by both APIs' trash calls.
    pub fn trash_all(&mut self, ids: &[u64], now: i64) -> Result<(), TreeError> {
        if ids.iter().any(|id| *id == ROOT || self.get(*id).is_none()) {
            return Err(TreeError::NotFound);
        }
        for &id in ids {
            self.trash(id, now);
        }
        Ok(())
    }

    /// Total bytes of all files (trash included, as a drive's quota counts it).
    pub fn space_used(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| !e.is_dir)
            .map(|e| e.size)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: NamePolicy = NamePolicy {
        case_sensitive: true,
        trashed_blocks: false,
    };

    #[test]
    fn insert_resolve_trash_remove() {
        let mut t = Tree::new();
        let a = t.insert(ROOT, "a", None, 1);
        let f = t.insert(a, "f.txt", Some((3, "x".into())), 1);
        assert_eq!(t.resolve("/a/f.txt"), Some(f));
        assert_eq!(t.path_of(f).as_deref(), Some("/a/f.txt"));
        assert_eq!(t.conflict(a, "f.txt", P, None), Some(f));
        assert_eq!(t.conflict(a, "F.TXT", P, None), None);
        let ci = NamePolicy {
            case_sensitive: false,
            ..P
        };
        assert_eq!(t.conflict(a, "F.TXT", ci, None), Some(f));
        t.trash(a, 2);
        assert_eq!(t.resolve("/a/f.txt"), None);
        assert!(!t.is_live(f));
        assert_eq!(t.conflict(ROOT, "a", P, None), None);
        let tb = NamePolicy {
            trashed_blocks: true,
            ..P
        };
        assert_eq!(t.conflict(ROOT, "a", tb, None), Some(a));
        t.remove(a);
        assert!(t.get(f).is_none());
        assert_eq!(t.children(ROOT).count(), 0);
    }

    #[test]
    fn reserved_ids_and_batch_operations() {
        let mut t = Tree::new();
        let a = t.insert(ROOT, "a", None, 1);
        let b = t.insert(ROOT, "b", None, 1);
        let f = t.insert(a, "f.txt", Some((1, "x".into())), 1);
        t.insert(b, "f.txt", Some((1, "y".into())), 1);
        let reserved = t.reserve_id();
        let later = t.insert(ROOT, "later", None, 1);
        assert!(later > reserved && t.get(reserved).is_none());
        assert_eq!(t.insert_as(reserved, a, "r.txt", None, 2), reserved);
        assert_eq!(t.resolve("/a/r.txt"), Some(reserved));
        // all or nothing: a taken name moves nothing
        assert!(matches!(
            t.move_entries(&[reserved, f], b, P, 3),
            Err(TreeError::Conflict(_))
        ));
        assert_eq!(t.get(reserved).map(|e| e.parent), Some(a));
        assert_eq!(t.move_entries(&[a], a, P, 3), Err(TreeError::Cycle));
        assert_eq!(t.move_entries(&[999], b, P, 3), Err(TreeError::NotFound));
        assert_eq!(t.move_entries(&[reserved], b, P, 3), Ok(()));
        assert_eq!(t.resolve("/b/r.txt"), Some(reserved));
        assert_eq!(
            t.rename(reserved, "f.txt", P, 4),
            Err(TreeError::Conflict(t.resolve("/b/f.txt").unwrap_or(0)))
        );
        assert!(matches!(
            t.rename(reserved, "a:b", P, 4),
            Err(TreeError::Name(_))
        ));
        assert_eq!(t.rename(reserved, "s.txt", P, 4), Ok(()));
        assert_eq!(t.trash_all(&[reserved, 999], 5), Err(TreeError::NotFound));
        assert!(t.is_live(reserved));
        assert_eq!(t.trash_all(&[reserved], 5), Ok(()));
        assert_eq!(
            t.trash_all(&[reserved], 6),
            Ok(()),
            "already trashed is fine"
        );
        assert!(!t.is_live(reserved));
    }

    #[test]
    fn ancestors() {
        let mut t = Tree::new();
        let a = t.insert(ROOT, "a", None, 1);
        let b = t.insert(a, "b", None, 1);
        assert!(t.is_ancestor_or_self(a, b));
        assert!(!t.is_ancestor_or_self(b, a));
        t.set_parent(b, ROOT);
        assert_eq!(t.resolve("/b"), Some(b));
    }
}
