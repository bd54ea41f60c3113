//! Dead properties and client modification times (`dav/props.rs`) shared by every instance
//! (issue 19), in the shape client junk uses (`junk.rs`): a versioned value per key, read before
//! a request and stored after one that changed it, before its answer.
//!
//! Per mount, Redis holds one hash of nodes (field: a digest of the path; value: the path and
//! its node), a meta hash (`epoch`, `seq`: bumped by every change) and a short log of which
//! paths each change touched. Before a request an instance reads `seq` (one small HMGET); when
//! it moved, it reads the log's entries since the one it saw and only those paths' nodes, or,
//! when it fell too far behind (or the epoch changed: Redis lost its data), the whole hash.
//! After a request it stores the nodes of the paths it changed with one script. Every
//! instance keeps its own copy (on its `state_dir`), which requests read and which stands in
//! while Redis is unavailable; when Redis comes back empty, the first instance to notice seeds
//! it from that copy. Two instances changing one path at the same moment: a PROPPATCH stores
//! only the properties it changed, merged into the node in Redis (the script below), so both
//! keep theirs; a MOVE, COPY or DELETE replaces the node, and the last stored wins.

use std::sync::{Arc, LazyLock, Mutex};

use sha2::{Digest, Sha256};

use super::{lock, Cluster, Unavailable};
use crate::dav::props::{PropChange, PropStore, Touched};

/// The log keeps this many changes; an instance further behind reads the whole hash.
const LOG_MAX: u64 = 1000;
/// A change touching paths longer than this in all is logged as "read everything" instead.
const ENTRY_MAX_BYTES: usize = 16 * 1024;

/// Stores the changed nodes (`ARGV[3..]`: field, value, keys; an empty value deletes), bumps
/// `seq` and logs `ARGV[1]` (the paths, JSON, or `null`), keeping `ARGV[2]` entries. With keys
/// (a JSON list of property keys, `""` for the client mtime) only those are taken from the
/// value, into the node stored there; without (`''`) the value replaces the node. Answers
/// `{seq, epoch}`, or `{-1, ''}` when the mount has no meta yet (to be seeded first).
const PUSH: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {-1, ''}
end
local function node_of(text)
  local ok, pair = pcall(cjson.decode, text)
  if not ok or type(pair) ~= 'table' or type(pair[1]) ~= 'string' then
    return nil
  end
  local ok2, node = pcall(cjson.decode, pair[2])
  if not ok2 or type(node) ~= 'table' then
    return nil
  end
  if type(node.props) ~= 'table' then
    node.props = {}
  end
  return pair[1], node
end
local function merged(old, value, keys)
  local path, node = node_of(old)
  if not path then
    return value
  end
  local mine = {props = {}}
  if value ~= '' then
    local my_path, my_node = node_of(value)
    if my_path ~= path then
      return value
    end
    mine = my_node
  end
  local ok, list = pcall(cjson.decode, keys)
  if not ok or type(list) ~= 'table' then
    return value
  end
  for _, k in ipairs(list) do
    if k == '' then
      node.mtime = mine.mtime
    else
      node.props[k] = mine.props[k]
    end
  end
  if next(node.props) == nil and (node.mtime == nil or node.mtime == cjson.null) then
    return ''
  end
  return cjson.encode({path, cjson.encode(node)})
end
for i = 3, #ARGV, 3 do
  local value = ARGV[i + 1]
  if ARGV[i + 2] ~= '' then
    local old = redis.call('HGET', KEYS[2], ARGV[i])
    if old then
      value = merged(old, value, ARGV[i + 2])
    end
  end
  if value == '' then
    redis.call('HDEL', KEYS[2], ARGV[i])
  else
    redis.call('HSET', KEYS[2], ARGV[i], value)
  end
end
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('RPUSH', KEYS[3], '[' .. seq .. ',' .. ARGV[1] .. ']')
redis.call('LTRIM', KEYS[3], -tonumber(ARGV[2]), -1)
return {seq, redis.call('HGET', KEYS[1], 'epoch')}
";

/// Seeds an empty mount: the nodes (`ARGV[2..]`: field, value) and a new epoch `ARGV[1]`.
/// Answers 0 (changing nothing) when the mount already has a meta.
const SEED: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'seq', 0)
return 1
";

static PUSH_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUSH));
static SEED_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SEED));

/// One mount's dead properties and client modification times as the cluster shares them.
pub struct SharedProps {
    cluster: Arc<Cluster>,
    meta: String,
    nodes: String,
    log: String,
    /// The epoch and change number this instance's copy is up to.
    seen: Mutex<Option<(String, u64)>>,
}

/// The field of `path` in the nodes hash: a digest, so fields are short whatever the path.
fn field(path: &str) -> String {
    crate::backend::auth_key::hex(&Sha256::digest(path.as_bytes())[..16])
}

impl SharedProps {
    /// The properties of mount `mount` (its name) in `cluster`.
    pub fn new(cluster: Arc<Cluster>, mount: &str) -> SharedProps {
        SharedProps {
            cluster,
            meta: Cluster::key("props-meta", mount),
            nodes: Cluster::key("props", mount),
            log: Cluster::key("props-log", mount),
            seen: Mutex::default(),
        }
    }

    /// Notes that this instance's copy is up to change `seq` of `epoch` (never going back
    /// within one epoch).
    fn saw(&self, epoch: &str, seq: u64) {
        let mut seen = lock(&self.seen);
        match seen.as_ref() {
            Some((e, s)) if e == epoch && *s >= seq => {}
            _ => *seen = Some((epoch.to_string(), seq)),
        }
    }

    /// Brings `store` up to the cluster's (before a request).
    pub async fn pull(&self, store: &PropStore) -> Result<(), Unavailable> {
        self.cluster.usable()?;
        let meta = self.meta.clone();
        let (epoch, seq): (Option<String>, Option<u64>) = self
            .cluster
            .run(|mut c| async move {
                redis::cmd("HMGET")
                    .arg(&meta)
                    .arg("epoch")
                    .arg("seq")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let Some(epoch) = epoch else {
            // A new cluster, or Redis lost its data: this instance's copy seeds it.
            return self.seed(store).await.map(|_| ());
        };
        let seq = seq.unwrap_or(0);
        let seen = lock(&self.seen).clone();
        match seen {
            Some((e, s)) if e == epoch && s >= seq => Ok(()),
            Some((e, s)) if e == epoch && seq - s < LOG_MAX => {
                match self.since(s).await? {
                    Some(paths) => self.read(store, paths).await?,
                    None => return self.read_all(store, &epoch, seq).await,
                }
                self.saw(&epoch, seq);
                Ok(())
            }
            _ => self.read_all(store, &epoch, seq).await,
        }
    }

    /// The paths changed after change `after`, from the log; `None` when the log no longer
    /// reaches back that far or a change said to read everything.
    async fn since(&self, after: u64) -> Result<Option<Vec<String>>, Unavailable> {
        let log = self.log.clone();
        let entries: Vec<String> = self
            .cluster
            .run(|mut c| async move {
                redis::cmd("LRANGE")
                    .arg(&log)
                    .arg(-(LOG_MAX as i64))
                    .arg(-1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let mut paths = Vec::new();
        let mut reaches = false;
        for text in entries {
            let Ok((seq, changed)) = serde_json::from_str::<(u64, Option<Vec<String>>)>(&text)
            else {
                return Ok(None);
            };
            if seq <= after {
                continue;
            }
            reaches |= seq == after + 1;
            match changed {
                Some(changed) => paths.extend(changed),
                None => return Ok(None),
            }
        }
        Ok(reaches.then_some(paths))
    }

    /// Reads these paths' nodes into `store`.
    async fn read(&self, store: &PropStore, mut paths: Vec<String>) -> Result<(), Unavailable> {
        paths.sort();
        paths.dedup();
        if paths.is_empty() {
            return Ok(());
        }
        let nodes = self.nodes.clone();
        let fields: Vec<String> = paths.iter().map(|p| field(p)).collect();
        let values: Vec<Option<String>> = self
            .cluster
            .run(|mut c| async move {
                redis::cmd("HMGET")
                    .arg(&nodes)
                    .arg(&fields)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let merged = paths
            .into_iter()
            .zip(values)
            .map(|(path, value)| {
                let node = value
                    .and_then(|v| serde_json::from_str::<(String, String)>(&v).ok())
                    .filter(|(p, _)| *p == path)
                    .map(|(_, node)| node);
                (path, node)
            })
            .collect();
        store.merge(merged);
        Ok(())
    }

    /// Replaces `store` with the cluster's whole copy, which is at least at change `seq`.
    async fn read_all(&self, store: &PropStore, epoch: &str, seq: u64) -> Result<(), Unavailable> {
        let nodes = self.nodes.clone();
        let all: std::collections::HashMap<String, String> = self
            .cluster
            .run(|mut c| async move { redis::cmd("HGETALL").arg(&nodes).query_async(&mut c).await })
            .await?;
        let all = all
            .into_values()
            .filter_map(|v| serde_json::from_str::<(String, String)>(&v).ok())
            .collect();
        store.replace_all(all);
        self.saw(epoch, seq);
        Ok(())
    }

    /// Seeds an empty cluster with this instance's copy; true if this instance did (another
    /// may have been first).
    async fn seed(&self, store: &PropStore) -> Result<bool, Unavailable> {
        let all = store.export();
        let epoch = format!("{:016x}", rand::random::<u64>());
        let (meta, nodes, log) = (self.meta.clone(), self.nodes.clone(), self.log.clone());
        let args: Vec<String> = all
            .iter()
            .flat_map(|(path, node)| {
                let value = serde_json::to_string(&(path, node)).unwrap_or_default();
                [field(path), value]
            })
            .collect();
        let epoch_arg = epoch.clone();
        let seeded: i64 = self
            .cluster
            .run(|mut c| async move {
                SEED_SCRIPT
                    .key(&meta)
                    .key(&nodes)
                    .key(&log)
                    .arg(&epoch_arg)
                    .arg(&args)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if seeded == 1 {
            if !all.is_empty() {
                tracing::info!(
                    nodes = all.len(),
                    "the cluster's dead properties were empty; seeded them from this instance's copy"
                );
            }
            self.saw(&epoch, 0);
        }
        Ok(seeded == 1)
    }

    /// Stores the nodes this instance's request changed for every instance (after a request,
    /// before its answer). What could not be stored is kept and stored with a later request.
    pub async fn push(&self, store: &PropStore) -> Result<(), Unavailable> {
        self.cluster.usable()?;
        let changes = store.take_changes();
        if changes.is_empty() {
            return Ok(());
        }
        let result = self.store(store, &changes).await;
        store.shared(changes, result.is_ok());
        result
    }

    async fn store(&self, store: &PropStore, changes: &[PropChange]) -> Result<(), Unavailable> {
        let paths: Vec<&String> = changes.iter().map(|c| &c.path).collect();
        let entry = serde_json::to_string(&paths)
            .ok()
            .filter(|t| t.len() <= ENTRY_MAX_BYTES)
            .unwrap_or_else(|| "null".into());
        let args: Vec<String> = changes
            .iter()
            .flat_map(|c| {
                let value = c
                    .node
                    .as_ref()
                    .and_then(|n| serde_json::to_string(&(&c.path, n)).ok())
                    .unwrap_or_default();
                let keys = match &c.touched {
                    Touched::Keys(keys) => serde_json::to_string(keys).unwrap_or_default(),
                    Touched::Whole => String::new(),
                };
                [field(&c.path), value, keys]
            })
            .collect();
        for _ in 0..2 {
            let (meta, nodes, log) = (self.meta.clone(), self.nodes.clone(), self.log.clone());
            let (entry, args) = (entry.clone(), args.clone());
            let (seq, epoch): (i64, String) = self
                .cluster
                .run(|mut c| async move {
                    PUSH_SCRIPT
                        .key(&meta)
                        .key(&nodes)
                        .key(&log)
                        .arg(&entry)
                        .arg(LOG_MAX)
                        .arg(&args)
                        .invoke_async(&mut c)
                        .await
                })
                .await?;
            if seq >= 1 {
                // Up to date if this was the only change since the last one seen.
                let mut seen = lock(&self.seen);
                if seen
                    .as_ref()
                    .is_some_and(|(e, s)| *e == epoch && *s + 1 == seq as u64)
                {
                    *seen = Some((epoch, seq as u64));
                }
                return Ok(());
            }
            // No meta: Redis is new or lost its data. Seed it with this copy (which holds
            // these changes), or, if another instance was first, store them on top.
            if self.seed(store).await? {
                return Ok(());
            }
        }
        Err(Unavailable("the shared properties were reset twice".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_short_digests() {
        let f = field(&format!("/{}", "x".repeat(5000)));
        assert_eq!(f.len(), 32);
        assert_ne!(field("/a"), field("/b"));
    }
}
