//! Class-2 locks of one mount: dav-server's `DavLockSystem`, kept in memory, bounded.
//!
//! dav-server's own `MemLs` panicked on a lock of the mount root (and its mutex then stayed
//! poisoned, so every later request on the mount got an empty reply), never expired a lock, and
//! held any number of locks with owners of any size. This store never panics (its mutex
//! recovers from poison, and nothing in it unwraps), keeps a lock for the `Timeout` asked, at
//! most `lock_timeout_max`, prunes expired locks, and caps locks per resource and per user and
//! the owner's size.
//!
//! A mount holds it as a `LockStore` trait object, so a store shared between instances
//! (`shared_locks.rs`, issue 19) takes its place in a cluster.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use futures_util::FutureExt;
use xmltree::Element;

/// Most locks on one resource (they can only be shared ones beyond the first).
pub const LOCKS_PER_RESOURCE_MAX: usize = 16;
/// Most bytes of a lock's `owner` element, serialized.
pub const OWNER_MAX_BYTES: usize = 4096;
/// A lock whose request had no usable timeout lasts this long (the router sends LOCKs without
/// a `Timeout` header on with this value).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Expired locks are swept from the whole store at most this often (and checked on every use).
const PRUNE_EVERY: Duration = Duration::from_secs(30);

/// Why a new lock is refused although nothing conflicts with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The user holds `locks_per_user_max` locks in this mount.
    UserFull,
    /// The resource has `LOCKS_PER_RESOURCE_MAX` locks.
    ResourceFull,
    /// The owner element is over `OWNER_MAX_BYTES`.
    OwnerTooLarge,
}

impl Refusal {
    /// What the client is told.
    pub fn message(self) -> &'static str {
        match self {
            Self::UserFull => "Too many locks held by this user in this mount; unlock some first",
            Self::ResourceFull => "Too many locks on this resource",
            Self::OwnerTooLarge => "The lock owner is larger than 4 KiB",
        }
    }
}

/// What a mount needs of its lock store: dav-server's trait, plus a check of the caps before a
/// LOCK is handed to dav-server (which can only answer 423 to a refused lock).
pub trait LockStore: DavLockSystem {
    /// Would a new lock on `path` by `principal` be refused for a cap?
    fn admit(&self, path: &DavPath, principal: &str) -> Result<(), Refusal>;

    /// A handle on the same locks for a dav-server handler.
    fn dav(&self) -> Box<dyn DavLockSystem>;
}

/// The in-memory lock store of one mount. Cheap to clone; clones share the locks.
#[derive(Clone, Debug)]
pub struct MemoryLocks {
    state: Arc<Mutex<State>>,
    timeout_max: Duration,
    per_user_max: usize,
}

#[derive(Debug)]
struct Held {
    lock: DavLock,
    expires: Instant,
}

#[derive(Debug)]
struct State {
    /// Path key ("/a/b", "" for the mount root) → the locks rooted there.
    by_path: BTreeMap<String, Vec<Held>>,
    /// Principal ("" for none) → live locks it holds.
    per_user: HashMap<String, usize>,
    next_prune: Instant,
}

/// The key of a lock path: NFC segments joined like the side stores' keys.
fn key_of(path: &DavPath) -> String {
    match super::segments(path) {
        Ok(segs) => super::store_key(&segs),
        Err(_) => String::from_utf8_lossy(path.as_bytes())
            .trim_end_matches('/')
            .to_string(),
    }
}

/// The keys of the folders above `key`, root first ("" for "/a"; none for the root itself).
fn ancestors(key: &str) -> impl Iterator<Item = &str> {
    key.match_indices('/').map(move |(i, _)| &key[..i])
}

/// The bounds of every key strictly below `key`: they start with `key` + "/", and "0" is the
/// character after "/".
fn below(key: &str) -> (String, String) {
    (format!("{key}/"), format!("{key}0"))
}

fn owner_size(owner: &Element) -> usize {
    let mut out = Vec::new();
    match owner.write(&mut out) {
        Ok(()) => out.len(),
        Err(_) => usize::MAX,
    }
}

/// The `owner` element as a standalone XML text that parses back: dav-server renames it
/// `D:owner` whatever prefix the client used, so the `D` prefix is declared on it when the
/// client's document did not (litmus sends `<lockinfo xmlns='DAV:'>`).
fn owner_xml(owner: &Element) -> Option<String> {
    let mut o = owner.clone();
    if let Some(prefix) = o.prefix.clone() {
        let ns = o.namespace.clone().unwrap_or_else(|| "DAV:".to_string());
        let declared = o
            .namespaces
            .as_ref()
            .is_some_and(|n| n.get(&prefix).is_some());
        if !declared {
            o.namespaces
                .get_or_insert_with(xmltree::Namespace::empty)
                .force_put(prefix, ns);
        }
    }
    let mut out = Vec::new();
    o.write(&mut out).ok()?;
    String::from_utf8(out).ok()
}

/// Is `owner` over the size cap? (The router checks a LOCK body with this before dav-server.)
pub fn owner_too_large(owner: &Element) -> bool {
    owner_size(owner) > OWNER_MAX_BYTES
}

fn new_token() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

impl MemoryLocks {
    /// An empty store; locks last at most `timeout_max`; a user holds at most `per_user_max`.
    pub fn new(timeout_max: Duration, per_user_max: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                by_path: BTreeMap::new(),
                per_user: HashMap::new(),
                next_prune: Instant::now() + PRUNE_EVERY,
            })),
            timeout_max,
            per_user_max,
        }
    }

    /// The state, pruned of expired locks when a sweep is due. A panic elsewhere while it was
    /// held cannot leave it unusable: the guard is taken back from a poisoned mutex.
    fn state(&self) -> MutexGuard<'_, State> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if now >= state.next_prune {
            state.prune(now);
        }
        state
    }

    /// The timeout a lock gets: what was asked, at most `timeout_max`.
    fn timeout(&self, asked: Option<Duration>) -> Duration {
        asked
            .unwrap_or(DEFAULT_TIMEOUT)
            .min(self.timeout_max)
            .max(Duration::from_secs(1))
    }

    /// How many locks the store holds (live or not yet swept).
    pub fn len(&self) -> usize {
        self.state().by_path.values().map(Vec::len).sum()
    }

    /// Whether the store holds no lock.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The live locks, in a form another instance can read back (`import`).
    pub fn export(&self) -> Vec<StoredLock> {
        let now = Instant::now();
        let wall = unix_ms(SystemTime::now());
        self.state()
            .by_path
            .values()
            .flatten()
            .filter(|h| h.expires > now)
            .map(|h| {
                let full = h.lock.path.with_prefix().as_url_string();
                let rel = h.lock.path.as_url_string();
                let prefix = full.strip_suffix(rel.as_str()).unwrap_or("").to_string();
                StoredLock {
                    token: h.lock.token.clone(),
                    url: full,
                    prefix,
                    principal: h.lock.principal.clone(),
                    owner: h.lock.owner.as_ref().and_then(|o| owner_xml(o)),
                    expires_ms: wall + (h.expires - now).as_millis() as u64,
                    timeout_ms: h.lock.timeout.map(|t| t.as_millis() as u64),
                    shared: h.lock.shared,
                    deep: h.lock.deep,
                }
            })
            .collect()
    }

    /// A store holding `stored` (as `export` wrote them; expired and unreadable ones left out).
    pub fn import(timeout_max: Duration, per_user_max: usize, stored: Vec<StoredLock>) -> Self {
        let store = Self::new(timeout_max, per_user_max);
        let now = Instant::now();
        let wall = unix_ms(SystemTime::now());
        {
            let mut state = store.state();
            for s in stored {
                let Some(left) = s.expires_ms.checked_sub(wall).filter(|ms| *ms > 0) else {
                    continue;
                };
                let Ok(mut path) = DavPath::new(&s.url) else {
                    continue;
                };
                if !s.prefix.is_empty() {
                    let prefix =
                        percent_encoding::percent_decode_str(&s.prefix).decode_utf8_lossy();
                    if path.set_prefix(&prefix).is_err() {
                        continue;
                    }
                }
                let left = Duration::from_millis(left);
                let lock = DavLock {
                    token: s.token,
                    path: Box::new(path),
                    principal: s.principal,
                    owner: s
                        .owner
                        .and_then(|o| Element::parse(o.as_bytes()).ok())
                        .map(Box::new),
                    timeout_at: Some(SystemTime::now() + left),
                    timeout: s.timeout_ms.map(Duration::from_millis),
                    shared: s.shared,
                    deep: s.deep,
                };
                *state
                    .per_user
                    .entry(principal_key(lock.principal.as_deref()))
                    .or_insert(0) += 1;
                state
                    .by_path
                    .entry(key_of(&lock.path))
                    .or_default()
                    .push(Held {
                        lock,
                        expires: now + left,
                    });
            }
        }
        store
    }
}

/// One lock as the instances of a cluster share it (`MemoryLocks::export`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct StoredLock {
    token: String,
    /// The locked path, URL-encoded, with dav-server's prefix.
    url: String,
    /// That prefix (the mount's path), URL-encoded.
    prefix: String,
    principal: Option<String>,
    /// The `owner` element as XML.
    owner: Option<String>,
    /// Unix ms of expiry.
    expires_ms: u64,
    timeout_ms: Option<u64>,
    shared: bool,
    deep: bool,
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn principal_key(p: Option<&str>) -> String {
    p.unwrap_or("").to_string()
}

impl State {
    /// Drops every expired lock.
    fn prune(&mut self, now: Instant) {
        let per_user = &mut self.per_user;
        self.by_path.retain(|_, held| {
            held.retain(|h| {
                let live = h.expires > now;
                if !live {
                    release(per_user, h.lock.principal.as_deref());
                }
                live
            });
            !held.is_empty()
        });
        self.next_prune = now + PRUNE_EVERY;
    }

    /// Live locks rooted at `key`.
    fn at<'a>(&'a self, key: &str, now: Instant) -> impl Iterator<Item = &'a DavLock> + 'a {
        self.by_path
            .get(key)
            .into_iter()
            .flatten()
            .filter(move |h| h.expires > now)
            .map(|h| &h.lock)
    }

    /// Live locks that cover `key`: deep ones above it, and every one at it.
    fn covering<'a>(&'a self, key: &'a str, now: Instant) -> Vec<&'a DavLock> {
        let mut out: Vec<&DavLock> = ancestors(key)
            .flat_map(|a| self.at(a, now).filter(|l| l.deep))
            .collect();
        out.extend(self.at(key, now));
        out
    }

    /// Live locks at `key` and below it.
    fn at_and_below<'a>(&'a self, key: &str, now: Instant) -> Vec<&'a DavLock> {
        let (from, to) = below(key);
        let mut out: Vec<&DavLock> = self.at(key, now).collect();
        out.extend(
            self.by_path
                .range(from..to)
                .flat_map(|(_, held)| held.iter())
                .filter(|h| h.expires > now)
                .map(|h| &h.lock),
        );
        out
    }

    /// dav-server's check: `Err` with one conflicting lock unless every lock covering `key`
    /// (and, with `deep`, every lock below it) is held by `who` or, where `shared_ok`, is
    /// shared.
    fn check(
        &self,
        key: &str,
        now: Instant,
        who: &Asker,
        deep: bool,
        shared_ok: bool,
    ) -> Result<(), DavLock> {
        let held = |l: &DavLock| who.holds(l);
        let mut holds_one = false;
        let mut first_shared: Option<&DavLock> = None;
        for lock in self.covering(key, now) {
            if held(lock) {
                holds_one = true;
            } else if !lock.shared {
                return Err(lock.clone());
            } else if !shared_ok {
                first_shared.get_or_insert(lock);
            }
        }
        if let (false, Some(lock)) = (holds_one, first_shared) {
            return Err(lock.clone());
        }
        if deep {
            for lock in self.at_and_below(key, now) {
                if (!lock.shared || !shared_ok) && !held(lock) {
                    return Err(lock.clone());
                }
            }
        }
        Ok(())
    }

    /// The caps a new lock at `key` by `principal` would break.
    fn admit(
        &self,
        key: &str,
        now: Instant,
        principal: &str,
        per_user_max: usize,
    ) -> Result<(), Refusal> {
        if self.at(key, now).count() >= LOCKS_PER_RESOURCE_MAX {
            return Err(Refusal::ResourceFull);
        }
        if self.per_user.get(principal).copied().unwrap_or(0) >= per_user_max {
            return Err(Refusal::UserFull);
        }
        Ok(())
    }

    /// The live lock `token` at `key` or, when deep, above it, as (its key, its index).
    fn find(&self, key: &str, token: &str, now: Instant) -> Option<(String, usize)> {
        let in_scope = |k: &str, must_be_deep: bool| {
            self.by_path.get(k).and_then(|held| {
                held.iter().position(|h| {
                    h.lock.token == token && h.expires > now && (!must_be_deep || h.lock.deep)
                })
            })
        };
        if let Some(i) = in_scope(key, false) {
            return Some((key.to_string(), i));
        }
        ancestors(key).find_map(|a| in_scope(a, true).map(|i| (a.to_string(), i)))
    }

    /// Removes the lock at `key`, index `i`.
    fn remove(&mut self, key: &str, i: usize) {
        let Some(held) = self.by_path.get_mut(key) else {
            return;
        };
        if i < held.len() {
            let gone = held.remove(i);
            release(&mut self.per_user, gone.lock.principal.as_deref());
        }
        if held.is_empty() {
            self.by_path.remove(key);
        }
    }
}

/// Who asks a check, and the lock tokens they submitted.
struct Asker<'a> {
    principal: Option<&'a str>,
    /// Any principal may use a submitted token.
    ignore_principal: bool,
    tokens: &'a [String],
}

impl Asker<'_> {
    /// Nobody holding anything: for a new lock.
    const NOBODY: Asker<'static> = Asker {
        principal: None,
        ignore_principal: true,
        tokens: &[],
    };

    fn holds(&self, l: &DavLock) -> bool {
        self.tokens.contains(&l.token)
            && (self.ignore_principal || self.principal == l.principal.as_deref())
    }
}

/// One lock fewer for `principal`.
fn release(per_user: &mut HashMap<String, usize>, principal: Option<&str>) {
    let p = principal.unwrap_or("");
    if let Some(n) = per_user.get_mut(p) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            per_user.remove(p);
        }
    }
}

impl LockStore for MemoryLocks {
    fn admit(&self, path: &DavPath, principal: &str) -> Result<(), Refusal> {
        let state = self.state();
        state.admit(&key_of(path), Instant::now(), principal, self.per_user_max)
    }

    fn dav(&self) -> Box<dyn DavLockSystem> {
        Box::new(self.clone())
    }
}

impl DavLockSystem for MemoryLocks {
    fn lock(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        owner: Option<&Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let timeout = self.timeout(timeout);
        let lock = DavLock {
            token: new_token(),
            path: Box::new(path.clone()),
            principal: principal.map(str::to_string),
            owner: owner.map(|o| Box::new(o.clone())),
            timeout_at: Some(SystemTime::now() + timeout),
            timeout: Some(timeout),
            shared,
            deep,
        };
        let result = (|| {
            if owner.is_some_and(owner_too_large) {
                return Err(lock.clone());
            }
            let key = key_of(path);
            let now = Instant::now();
            let mut state = self.state();
            state.check(&key, now, &Asker::NOBODY, deep, shared)?;
            let who = principal_key(principal);
            if state.admit(&key, now, &who, self.per_user_max).is_err() {
                // Expired locks may still fill the cap: sweep once before refusing.
                state.prune(now);
                if state.admit(&key, now, &who, self.per_user_max).is_err() {
                    return Err(lock.clone());
                }
            }
            *state.per_user.entry(who).or_insert(0) += 1;
            state.by_path.entry(key).or_default().push(Held {
                lock: lock.clone(),
                expires: now + timeout,
            });
            Ok(lock)
        })();
        futures_util::future::ready(result).boxed()
    }

    fn unlock(&'_ self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        let mut state = self.state();
        let result = match state.find(&key_of(path), token, Instant::now()) {
            Some((key, i)) => {
                state.remove(&key, i);
                Ok(())
            }
            None => Err(()),
        };
        futures_util::future::ready(result).boxed()
    }

    fn refresh(
        &'_ self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        let timeout = self.timeout(timeout);
        let now = Instant::now();
        let mut state = self.state();
        let result = match state.find(&key_of(path), token, now) {
            Some((key, i)) => match state.by_path.get_mut(&key).and_then(|h| h.get_mut(i)) {
                Some(held) => {
                    held.expires = now + timeout;
                    held.lock.timeout = Some(timeout);
                    held.lock.timeout_at = Some(SystemTime::now() + timeout);
                    Ok(held.lock.clone())
                }
                None => Err(()),
            },
            None => Err(()),
        };
        futures_util::future::ready(result).boxed()
    }

    fn check(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let state = self.state();
        let who = Asker {
            principal,
            ignore_principal,
            tokens: submitted_tokens,
        };
        let result = state.check(&key_of(path), Instant::now(), &who, deep, false);
        futures_util::future::ready(result).boxed()
    }

    fn discover(&'_ self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let state = self.state();
        let key = key_of(path);
        let locks = state
            .covering(&key, Instant::now())
            .into_iter()
            .cloned()
            .collect();
        futures_util::future::ready(locks).boxed()
    }

    fn delete(&'_ self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        let mut state = self.state();
        let key = key_of(path);
        let (from, to) = below(&key);
        let mut gone: Vec<String> = state
            .by_path
            .range(from..to)
            .map(|(k, _)| k.clone())
            .collect();
        gone.push(key);
        for k in gone {
            if let Some(held) = state.by_path.remove(&k) {
                for h in held {
                    release(&mut state.per_user, h.lock.principal.as_deref());
                }
            }
        }
        futures_util::future::ready(Ok(())).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> DavPath {
        DavPath::new(s).unwrap()
    }

    fn locks() -> MemoryLocks {
        MemoryLocks::new(Duration::from_secs(3600), 5)
    }

    async fn lock(
        ls: &MemoryLocks,
        path: &str,
        user: &str,
        shared: bool,
        deep: bool,
    ) -> Option<String> {
        ls.lock(
            &p(path),
            Some(user),
            None,
            Some(Duration::from_secs(60)),
            shared,
            deep,
        )
        .await
        .ok()
        .map(|l| l.token)
    }

    #[tokio::test]
    async fn exported_locks_read_back_the_same() {
        let ls = locks();
        let owner = Element::parse(&b"<D:owner xmlns:D=\"DAV:\">me</D:owner>"[..]).unwrap();
        let mut prefixed = p("/m%20x/a/b.txt");
        prefixed.set_prefix("/m x").unwrap();
        let t = ls
            .lock(
                &prefixed,
                Some("a"),
                Some(&owner),
                Some(Duration::from_secs(60)),
                false,
                false,
            )
            .await
            .unwrap()
            .token;
        let shared = lock(&ls, "/d", "b", true, true).await.unwrap();
        let back = MemoryLocks::import(Duration::from_secs(3600), 5, ls.export());
        assert_eq!(back.len(), 2);
        let found = back.discover(&prefixed).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].token, t);
        assert_eq!(
            found[0].path.with_prefix().as_url_string(),
            "/m%20x/a/b.txt"
        );
        assert_eq!(found[0].path.as_url_string(), "/a/b.txt");
        assert!(found[0].owner.is_some());
        assert!(back
            .check(&prefixed, Some("b"), false, false, &[])
            .await
            .is_err());
        assert!(back
            .check(&p("/d/x"), Some("c"), false, false, &[])
            .await
            .is_err());
        assert!(back
            .check(
                &p("/d/x"),
                Some("b"),
                false,
                false,
                std::slice::from_ref(&shared)
            )
            .await
            .is_ok());
        // A lock read back unlocks like any other.
        assert!(back.unlock(&prefixed, &t).await.is_ok());
        assert_eq!(back.len(), 1);
        // Expired locks are left out.
        let short = locks();
        lock(&short, "/e", "a", false, false).await.unwrap();
        let mut stored = short.export();
        stored[0].expires_ms = 1;
        assert!(MemoryLocks::import(Duration::from_secs(3600), 5, stored).is_empty());
    }

    #[tokio::test]
    async fn the_root_locks_and_unlocks() {
        let ls = locks();
        let t = lock(&ls, "/", "a", false, true).await.unwrap();
        assert!(ls
            .check(&p("/x/y"), Some("b"), false, false, &[])
            .await
            .is_err());
        assert!(ls
            .check(
                &p("/x/y"),
                Some("a"),
                false,
                false,
                std::slice::from_ref(&t)
            )
            .await
            .is_ok());
        assert_eq!(ls.discover(&p("/x")).await.len(), 1);
        assert!(ls.unlock(&p("/"), &t).await.is_ok());
        assert!(ls.is_empty());
        assert!(ls.check(&p("/"), None, true, true, &[]).await.is_ok());
        // Depth 0 on the root covers nothing below it.
        let t = lock(&ls, "/", "a", false, false).await.unwrap();
        assert!(ls
            .check(&p("/x"), Some("b"), false, false, &[])
            .await
            .is_ok());
        assert!(ls
            .check(&p("/"), Some("b"), false, true, &[])
            .await
            .is_err());
        assert!(ls.unlock(&p("/x"), &t).await.is_err(), "not in its scope");
        assert!(ls.unlock(&p("/"), &t).await.is_ok());
    }

    #[tokio::test]
    async fn conflicts_follow_scope_and_sharing() {
        let ls = locks();
        let t = lock(&ls, "/d/f", "a", false, false).await.unwrap();
        assert!(lock(&ls, "/d/f", "b", true, false).await.is_none());
        assert!(
            lock(&ls, "/d", "b", false, true).await.is_none(),
            "deep over a lock below"
        );
        assert!(
            lock(&ls, "/d", "b", false, false).await.is_some(),
            "depth 0 is fine"
        );
        assert!(ls
            .check(&p("/d"), Some("b"), false, true, &[])
            .await
            .is_err());
        ls.delete(&p("/d")).await.unwrap();
        assert!(ls.is_empty());
        assert!(ls.unlock(&p("/d/f"), &t).await.is_err());
        // Shared locks coexist; an exclusive one does not join them.
        assert!(lock(&ls, "/s", "a", true, false).await.is_some());
        assert!(lock(&ls, "/s", "b", true, false).await.is_some());
        assert!(lock(&ls, "/s", "c", false, false).await.is_none());
    }

    #[tokio::test]
    async fn caps_and_expiry() {
        let ls = MemoryLocks::new(Duration::from_secs(2), 5);
        for i in 0..5 {
            assert!(lock(&ls, &format!("/f{i}"), "a", false, false)
                .await
                .is_some());
        }
        assert!(
            lock(&ls, "/g", "a", false, false).await.is_none(),
            "per user"
        );
        assert_eq!(ls.admit(&p("/g"), "a"), Err(Refusal::UserFull));
        assert_eq!(ls.admit(&p("/g"), "b"), Ok(()));
        let shared = MemoryLocks::new(Duration::from_secs(60), 100);
        for i in 0..LOCKS_PER_RESOURCE_MAX {
            assert!(lock(&shared, "/s", &format!("u{i}"), true, false)
                .await
                .is_some());
        }
        assert!(
            lock(&shared, "/s", "z", true, false).await.is_none(),
            "per resource"
        );
        assert_eq!(shared.admit(&p("/s"), "z"), Err(Refusal::ResourceFull));
        // The timeout is capped at 2 s whatever was asked.
        let l = ls
            .lock(
                &p("/h"),
                Some("b"),
                None,
                Some(Duration::from_secs(86400)),
                false,
                false,
            )
            .await
            .unwrap();
        assert_eq!(l.timeout, Some(Duration::from_secs(2)));
    }

    #[test]
    fn an_owner_in_a_default_namespace_survives_export() {
        // As dav-server hands it over from `<lockinfo xmlns='DAV:'>`: renamed `D:owner`.
        let info = Element::parse(
            &b"<lockinfo xmlns='DAV:'><owner>litmus test suite</owner></lockinfo>"[..],
        )
        .expect("xml");
        let mut owner = info.get_child("owner").expect("owner").clone();
        owner.prefix = Some("D".to_owned());
        let text = owner_xml(&owner).expect("written");
        let back = Element::parse(text.as_bytes()).expect("parses back");
        assert_eq!(back.name, "owner");
        assert_eq!(
            back.get_text().as_deref(),
            Some("litmus test suite"),
            "{text}"
        );
    }

    #[test]
    fn owners_are_capped() {
        let mut small = Element::new("owner");
        small.children.push(xmltree::XMLNode::Text("me".into()));
        assert!(!owner_too_large(&small));
        let mut big = Element::new("owner");
        big.children
            .push(xmltree::XMLNode::Text("x".repeat(OWNER_MAX_BYTES)));
        assert!(owner_too_large(&big));
        let ls = locks();
        let refused = futures_util::FutureExt::now_or_never(ls.lock(
            &p("/f"),
            Some("a"),
            Some(&big),
            None,
            false,
            false,
        ));
        assert!(matches!(refused, Some(Err(_))));
        assert!(ls.is_empty());
    }

    #[test]
    fn tokens_are_uuid_urns() {
        let t = new_token();
        assert!(t.starts_with("urn:uuid:") && t.len() == 45, "{t}");
        assert_ne!(t, new_token());
    }
}
