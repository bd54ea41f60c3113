//! Uploads pending on one instance, seen by all (issue 19): an upload stays with the instance
//! that accepted the PUT (its spool and queue are on its own `state_dir`), which publishes each
//! pending file of a folder in a Redis hash (`pending:<mount>:<folder>`, one field per name,
//! owner and address in the value). Every instance lists them; a GET of one on another instance
//! is proxied from the owner over `/-/internal/pending`, and a DELETE or MOVE of one there is
//! forwarded to the owner over the same route, each request signed (method and every parameter,
//! `PendingOp`) with a secret every instance reads from Redis.
//!
//! An entry lives `ENTRY_TTL` unless its owner publishes it again (it does every
//! `REFRESH_EVERY` while the upload is pending), so an instance that died leaves nothing listed
//! for long; it publishes its pending files again when it restarts and resumes them.

use std::sync::{LazyLock, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use hmac::Mac;
use serde::{Deserialize, Serialize};

use super::{lock, Cluster, Unavailable};

/// How long a published pending entry lives without being published again.
pub const ENTRY_TTL: Duration = Duration::from_secs(60);
/// How often an owner publishes its pending entries again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(20);
/// How long a signed internal request stays valid.
pub const SIGNATURE_TTL: Duration = Duration::from_secs(60);
/// The header the internal signature travels in (never in the URL, which may be logged).
pub const SIGNATURE_HEADER: &str = "x-pan123-internal-signature";
/// Most entries read from one folder's hash.
const MAX_ENTRIES: usize = 10_000;
/// Longest value read (one entry's JSON).
const MAX_VALUE: usize = 8 * 1024;

/// One pending file as published: where it will land, what it is, who holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecord {
    /// The mount (by name) and folder it will land in.
    pub mount: String,
    pub dir: u64,
    /// The 123-side name.
    pub name: String,
    pub size: u64,
    pub md5: String,
    /// Unix milliseconds of the client's modification time.
    pub modified_ms: u64,
    /// The owner's instance id and the URL other instances reach it at.
    pub owner: String,
    pub url: String,
    /// Unix milliseconds after which the entry counts as gone.
    pub expires_ms: u64,
}

impl PendingRecord {
    /// The client's modification time.
    pub fn modified(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_millis(self.modified_ms)
    }
}

/// What this instance needs to publish and verify: its own address and the shared secret.
#[derive(Default)]
pub(super) struct PendingState {
    advertise: Mutex<Option<String>>,
    secret: Mutex<Option<Vec<u8>>>,
}

/// Publishes this instance's pending files of one folder (replacing what it published there
/// before; other owners' entries are left, expired ones dropped).
const PUBLISH: &str = r"
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local ok, rec = pcall(cjson.decode, all[i + 1])
  if (not ok) or type(rec) ~= 'table' or rec.owner == ARGV[1]
     or tonumber(rec.expires_ms or 0) < tonumber(ARGV[2]) then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
for i = 4, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if redis.call('HLEN', KEYS[1]) > 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return 1
";

/// Other instances' pending files of a folder and the folder's listing generation (see
/// `listings`), together: a listing request reads both in one call.
const READ: &str = r"
local all = redis.call('HGETALL', KEYS[1])
return {redis.call('GET', KEYS[2]) or '0', all}
";

/// The cluster's secret for internal requests: made once by whichever instance asks first.
const SECRET: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('GET', KEYS[1])
";

static PUBLISH_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PUBLISH));
static SECRET_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SECRET));
static READ_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(READ));

/// What `Cluster::remote_pending` read of one folder.
#[derive(Debug, Default)]
pub struct RemotePending {
    /// Other instances' pending files there.
    pub records: Vec<PendingRecord>,
    /// The folder's cluster-wide listing generation (`None`: Redis did not answer): a
    /// listing older than it misses a write and must not be served.
    pub generation: Option<u64>,
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn folder_key(mount: &str, dir: u64) -> String {
    Cluster::key("pending", &format!("{mount}:{dir}"))
}

/// What an internal request asks of the instance holding a pending upload. The signature
/// covers it, so a signature made for one operation authorises no other (a GET's cannot
/// cancel the upload, a DELETE's cannot move it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingOp {
    /// Its bytes: GET (or HEAD, the same without the body).
    Read,
    /// Cancel it (DELETE): it never lands.
    Delete,
    /// Land it as `name` (123-side) in folder `dir` of the same mount instead (MOVE).
    Move { dir: u64, name: String },
}

impl PendingOp {
    /// The HTTP method the request travels with.
    pub fn method(&self) -> &'static str {
        match self {
            Self::Read => "GET",
            Self::Delete => "DELETE",
            Self::Move { .. } => "MOVE",
        }
    }
}

/// Why an internal request to the instance holding a pending upload could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unsigned {
    /// No secret to sign with (Redis was never reached).
    NoSecret,
    /// The owner published no usable address.
    BadAddress,
}

/// What a signature covers: the operation (method and, for a MOVE, the destination), the
/// file, and the expiry, as a JSON array so that no name can run into the next field.
fn signed_text(op: &PendingOp, mount: &str, dir: u64, name: &str, expires: u64) -> String {
    let (to_dir, to_name) = match op {
        PendingOp::Move { dir, name } => (Some(*dir), Some(name.as_str())),
        PendingOp::Read | PendingOp::Delete => (None, None),
    };
    serde_json::json!([
        "pending",
        op.method(),
        mount,
        dir,
        name,
        to_dir,
        to_name,
        expires
    ])
    .to_string()
}

impl Cluster {
    /// Sets the URL other instances reach this one at (`cluster.advertise_url`, or derived from
    /// the listen address), `server.base_path` included.
    pub fn set_advertise_url(&self, url: &str) {
        *lock(&self.pending.advertise) = Some(url.trim_end_matches('/').to_string());
    }

    /// Publishes `files` (name, size, MD5, modification time) as this instance's pending files
    /// of folder `dir` of `mount`, replacing what it published there before.
    pub async fn publish_pending(
        &self,
        mount: &str,
        dir: u64,
        files: &[(String, u64, String, SystemTime)],
    ) -> Result<(), Unavailable> {
        let url = lock(&self.pending.advertise).clone().unwrap_or_default();
        let now = now_ms();
        let ttl = u64::try_from(ENTRY_TTL.as_millis()).unwrap_or(60_000);
        let mut args: Vec<String> = vec![self.instance.clone(), now.to_string(), ttl.to_string()];
        for (name, size, md5, modified) in files {
            let record = PendingRecord {
                mount: mount.to_string(),
                dir,
                name: name.clone(),
                size: *size,
                md5: md5.clone(),
                modified_ms: modified
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0)),
                owner: self.instance.clone(),
                url: url.clone(),
                expires_ms: now + ttl,
            };
            let json = serde_json::to_string(&record).map_err(|e| Unavailable(e.to_string()))?;
            args.push(name.clone());
            args.push(json);
        }
        let key = folder_key(mount, dir);
        self.run(|mut c| async move {
            PUBLISH_SCRIPT
                .key(key)
                .arg(args)
                .invoke_async::<i64>(&mut c)
                .await
        })
        .await
        .map(|_| ())
    }

    /// Other instances' pending files in folder `dir` of `mount`, with the folder's listing
    /// generation (nothing while Redis is unavailable: each instance then lists its own only).
    pub async fn remote_pending(&self, mount: &str, dir: u64) -> RemotePending {
        if !self.available() {
            return RemotePending::default();
        }
        let key = folder_key(mount, dir);
        let gen_key = super::listings::generation_key(mount, dir);
        let Ok((generation, all)) = self
            .run(|mut c| async move {
                READ_SCRIPT
                    .key(key)
                    .key(gen_key)
                    .invoke_async::<(String, Vec<Vec<u8>>)>(&mut c)
                    .await
            })
            .await
        else {
            return RemotePending::default();
        };
        let now = now_ms();
        let records = all
            .chunks_exact(2)
            .take(MAX_ENTRIES)
            .map(|pair| &pair[1])
            .filter(|v| v.len() <= MAX_VALUE)
            .filter_map(|v| serde_json::from_slice::<PendingRecord>(v).ok())
            .filter(|r| r.owner != self.instance && r.expires_ms > now)
            .filter(|r| r.mount == mount && r.dir == dir)
            .collect();
        RemotePending {
            records,
            generation: generation.parse().ok(),
        }
    }

    /// The shared secret for internal requests (made in Redis by the first instance that asks;
    /// the last one read is used while Redis is unavailable).
    async fn secret(&self) -> Option<Vec<u8>> {
        let fresh = format!("{:032x}", rand::random::<u128>());
        let key = Cluster::key("internal", "secret");
        let got = self
            .run(|mut c| async move {
                SECRET_SCRIPT
                    .key(key)
                    .arg(fresh)
                    .invoke_async::<Vec<u8>>(&mut c)
                    .await
            })
            .await;
        let mut cached = lock(&self.pending.secret);
        if let Ok(secret) = got {
            if !secret.is_empty() {
                *cached = Some(secret);
            }
        }
        cached.clone()
    }

    /// Signs `op` on pending file `name` of folder `dir` of `mount`: the expiry (Unix
    /// seconds) and the signature, or `None` without a secret.
    pub async fn sign_pending(
        &self,
        op: &PendingOp,
        mount: &str,
        dir: u64,
        name: &str,
    ) -> Option<(u64, String)> {
        let secret = self.secret().await?;
        let expires = now_ms() / 1000 + SIGNATURE_TTL.as_secs();
        let mut mac = HmacSha256::new_from_slice(&secret).ok()?;
        mac.update(signed_text(op, mount, dir, name, expires).as_bytes());
        let sig =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Some((expires, sig))
    }

    /// The signed request for `op` on `record` at its owner: the URL of its internal route,
    /// every parameter in the query, and the signature, which travels in
    /// [`SIGNATURE_HEADER`] (never in the URL, which may be logged). An owner without a usable
    /// address is logged here.
    pub async fn pending_request(
        &self,
        record: &PendingRecord,
        op: &PendingOp,
    ) -> Result<(url::Url, String), Unsigned> {
        let (expires, signature) = self
            .sign_pending(op, &record.mount, record.dir, &record.name)
            .await
            .ok_or(Unsigned::NoSecret)?;
        let mut url =
            url::Url::parse(&format!("{}/-/internal/pending", record.url)).map_err(|_| {
                tracing::warn!(owner = %record.owner, "a pending upload was published without a usable address; set cluster.advertise_url on every instance");
                Unsigned::BadAddress
            })?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("mount", &record.mount)
                .append_pair("dir", &record.dir.to_string())
                .append_pair("name", &record.name)
                .append_pair("expires", &expires.to_string());
            if let PendingOp::Move { dir, name } = op {
                query
                    .append_pair("to_dir", &dir.to_string())
                    .append_pair("to_name", name);
            }
        }
        Ok((url, signature))
    }

    /// Whether `signature` is this cluster's, for this operation on this file, and not expired.
    pub async fn verify_pending(
        &self,
        op: &PendingOp,
        mount: &str,
        dir: u64,
        name: &str,
        expires: u64,
        signature: &str,
    ) -> bool {
        let now = now_ms() / 1000;
        if expires < now || expires > now + 2 * SIGNATURE_TTL.as_secs() {
            return false;
        }
        let Ok(sig) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        let Some(secret) = self.secret().await else {
            return false;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(&secret) else {
            return false;
        };
        mac.update(signed_text(op, mount, dir, name, expires).as_bytes());
        mac.verify_slice(&sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_text_names_every_part() {
        let read = PendingOp::Read;
        let a = signed_text(&read, "m", 1, "a.txt", 5);
        assert_ne!(a, signed_text(&read, "m", 1, "a.txt", 6));
        assert_ne!(a, signed_text(&read, "m", 2, "a.txt", 5));
        assert_ne!(a, signed_text(&read, "n", 1, "a.txt", 5));
        assert_ne!(a, signed_text(&read, "m", 1, "b.txt", 5));
        // The operation is covered: a GET's signature is no DELETE's, a MOVE's names where.
        assert_ne!(a, signed_text(&PendingOp::Delete, "m", 1, "a.txt", 5));
        let to = |dir, name: &str| PendingOp::Move {
            dir,
            name: name.into(),
        };
        let moved = signed_text(&to(1, "b.txt"), "m", 1, "a.txt", 5);
        assert_ne!(moved, signed_text(&to(2, "b.txt"), "m", 1, "a.txt", 5));
        assert_ne!(moved, signed_text(&to(1, "c.txt"), "m", 1, "a.txt", 5));
        assert_ne!(moved, signed_text(&PendingOp::Delete, "m", 1, "a.txt", 5));
    }
}
