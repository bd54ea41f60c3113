//! Start-up configuration and the run-time switches for behaviour docs/123.md leaves open.
//!
//! Everything a test or the CLI can choose lives here, so that `main.rs` stays a thin parser and
//! the library's `Default` is the single place where defaults are written down (the README
//! repeats them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the emulator is started. `Default` gives a loopback emulator on an ephemeral port with the
/// demo credentials, an empty account and the default switches.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address of the Open API host; port 0 picks a free port (read it back with
    /// `Emulator::addr`). Every other host listens on the same IP (see `hosts_port_base`).
    pub listen: SocketAddr,
    /// Ports of the other hosts: `None` = free ports; `Some(p)` = `p`, `p + 1`, … in the order
    /// of `Host::ALL` after the Open API (upload, cdn, direct, web, login, web-pro, s3, renew).
    pub hosts_port_base: Option<u16>,
    /// The one developer client id the Open API accepts.
    pub client_id: String,
    /// Its secret.
    pub client_secret: String,
    /// The account uid (appears in user/info, direct links and `auth_key`).
    pub uid: u64,
    /// A local folder whose files and folders become the account root (read lazily, never written).
    pub data_dir: Option<PathBuf>,
    /// Generated content to add at start (deterministic bodies that cost no memory).
    pub generate: Vec<GenerateSpec>,
    /// Share links to publish at start.
    pub shares: Vec<ShareSpec>,
    /// Path of the root-level folder that is the direct-link space, e.g. `/direct`; created if missing.
    pub direct_link_space: Option<String>,
    /// Direct-link URL authentication key; when set, direct links need a valid `auth_key`.
    pub direct_link_key: Option<String>,
    /// Enforce the per-endpoint QPS table (`default_qps`).
    pub qps: bool,
    /// Where uploads and the MD5 memo live; default: the system temp dir.
    pub temp_dir: Option<PathBuf>,
    /// The personal account's login name for the web API (`passport`: a phone number, or an
    /// e-mail address logged in with `mail`). Open and web APIs serve the same account tree.
    pub web_user: String,
    /// Its password.
    pub web_password: String,
    /// The client id of the user's OAuth app ("third-party mount app", docs/123.md, open §2); the
    /// renewal service uses the same app.
    pub oauth_client_id: String,
    /// Its secret.
    pub oauth_client_secret: String,
    /// Behaviour switches (also changeable at run time).
    pub switches: Switches,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            hosts_port_base: None,
            client_id: "demo-client".to_string(),
            client_secret: "demo-secret".to_string(),
            uid: 1814435920,
            data_dir: None,
            generate: Vec::new(),
            shares: Vec::new(),
            direct_link_space: None,
            direct_link_key: None,
            qps: true,
            temp_dir: None,
            web_user: "13800138000".to_string(),
            web_password: "demo-password".to_string(),
            oauth_client_id: "demo-oauth-app".to_string(),
            oauth_client_secret: "demo-oauth-secret".to_string(),
            switches: Switches::default(),
        }
    }
}

/// A batch of generated files: `count` files of `size` bytes under folder `path`, named
/// `file-00001.bin` …; file k gets seed `seed + k - 1`, so every file has distinct content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerateSpec {
    /// Folder that receives the files (created as needed).
    pub path: String,
    /// Number of files.
    pub count: u64,
    /// Size of each file in bytes.
    pub size: u64,
    /// Seed of the first file.
    pub seed: u64,
}

impl GenerateSpec {
    /// Parse the CLI form `[/folder=]COUNT:SIZE[@SEED]`, e.g. `10000:4KiB` or `/big=1:20GiB@7`.
    pub fn parse(s: &str) -> Result<GenerateSpec, String> {
        let (path, rest) = match s.split_once('=') {
            Some((p, r)) => (p.to_string(), r),
            None => ("/generated".to_string(), s),
        };
        let (rest, seed) = match rest.split_once('@') {
            Some((r, seed)) => (
                r,
                seed.parse::<u64>()
                    .map_err(|_| format!("bad seed in {s:?}"))?,
            ),
            None => (rest, 1),
        };
        let (count, size) = rest
            .split_once(':')
            .ok_or_else(|| format!("expected COUNT:SIZE in {s:?}"))?;
        let count = count
            .parse::<u64>()
            .map_err(|_| format!("bad count in {s:?}"))?;
        let size = parse_size(size)?;
        if !path.starts_with('/') {
            return Err(format!("folder must start with '/' in {s:?}"));
        }
        Ok(GenerateSpec {
            path,
            count,
            size,
            seed,
        })
    }
}

/// A share link: anyone with `key` (and `password`, if set) may list and download `path`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareSpec {
    /// The share key (last segment of `https://www.123pan.com/s/<key>`).
    pub key: String,
    /// Extraction code; `None` = no password.
    pub password: Option<String>,
    /// Folder or file shared, by path from the account root.
    pub path: String,
}

impl ShareSpec {
    /// Parse the CLI form `KEY[:PASSWORD]=/path`.
    pub fn parse(s: &str) -> Result<ShareSpec, String> {
        let (left, path) = s
            .split_once('=')
            .ok_or_else(|| format!("expected KEY[:PASSWORD]=/path in {s:?}"))?;
        let (key, password) = match left.split_once(':') {
            Some((k, p)) => (k.to_string(), Some(p.to_string())),
            None => (left.to_string(), None),
        };
        if key.is_empty() || !path.starts_with('/') {
            return Err(format!("expected KEY[:PASSWORD]=/path in {s:?}"));
        }
        Ok(ShareSpec {
            key,
            password,
            path: path.to_string(),
        })
    }
}

/// When a `duplicate: 2` (overwrite) upload replaces the existing file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverwriteAt {
    /// The old file goes to the trash when `create` is called (before any byte arrives).
    Create,
    /// The old file stays live until `upload_complete` succeeds.
    Complete,
}

/// What `create` does with a zero-byte file (nobody could confirm 123's behaviour; docs/123.md, open §12).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroByteUpload {
    /// Instant upload: `reuse: true` at once (the empty content is always "known").
    Reuse,
    /// The ordinary flow with zero slices, then `upload_complete`.
    Normal,
    /// Refused with an error envelope.
    Reject,
}

/// Why web logins (`/api/user/sign_in`) are refused, whatever the password (docs/123.md, web §8: risk
/// control for logins from abroad or a new place, a verification step, a locked account).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebLoginRefusal {
    /// Logins with the right password succeed.
    #[default]
    None,
    /// `当前账号存在安全风险，请使用短信验证码或者微信进行登录。` (the `web_risk_control` switch).
    RiskControl,
    /// Risk control for a login from abroad (`境外登录风险`).
    Abroad,
    /// `请进行验证`: a captcha / slider step the API cannot pass.
    Verify,
    /// The account is locked (too many wrong passwords; the real text is unpublished).
    Locked,
}

/// The HTTP status of an API error (docs/123.md, open §1, §11 "the envelope").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorStatus {
    /// Every API error is HTTP 200 with the envelope, as 123's docs say.
    #[default]
    Ok,
    /// Errors also carry a matching non-2xx status (429 for code 429, 401 for 401, 404 for
    /// 5066, 403 for 5113, a 4xx/5xx code as itself, 400 otherwise), as a gateway in front of
    /// 123 or the Go SDKs' reading implies.
    Mirror,
}

/// How the web API (share, personal) says "too many requests" (docs/123.md, web §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebRateLimitStyle {
    /// HTTP 200, envelope code 429 (the Open API's documented answer).
    #[default]
    Code429,
    /// HTTP 429 with an HTML body and `Retry-After: 1` (a gateway in front of 123).
    Http429,
    /// HTTP 200 with another code and a message: code 1 `下载操作频繁，请稍后再试` on the
    /// download-link endpoints, code 100011 `rate limit type min` elsewhere (both reported).
    Message,
}

/// How the web API answers a request whose signature fails (docs/123.md, web §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebSignatureFailure {
    /// HTTP 403 with `{"code": 403, "message": "签名校验失败: …"}` (the emulator's first guess).
    #[default]
    Code,
    /// HTTP 200 with `{"status": 0, "info": "签名错误,请检查您的本地时间是否为东八区时间-platform
    /// forbidden"}` and no `code` (a capture in a public bug report).
    StatusInfo,
}

/// Which message `download_info` sends with code 5113 once the traffic cap is reached (docs/123.md,
/// open §1: the free quota moved from daily to monthly in 2025, and the message says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrafficMessage {
    /// `您今日自用下载流量已超出1GB上限` (the daily quota; the emulator's first message).
    #[default]
    Daily,
    /// `本月免费流量不足` (the monthly quota, as reported since 2025).
    Monthly,
    /// A message naming no period: `下载流量已超出上限`.
    None,
}

impl TrafficMessage {
    /// 123's message for this variant.
    pub fn text(self) -> &'static str {
        match self {
            Self::Daily => "您今日自用下载流量已超出1GB上限",
            Self::Monthly => "本月免费流量不足",
            Self::None => "下载流量已超出上限",
        }
    }
}

/// Which form of a direct link's path the direct-link host hashes to check `auth_key` (docs/123.md,
/// web §6: 123's official samples sign the path as written, OpenList the decoded path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthKeyPath {
    /// The percent-decoded path (OpenList's reading; the emulator's behaviour before the switch).
    #[default]
    Decoded,
    /// The path as sent in the request line, escapes kept (123's official samples).
    Encoded,
}

/// What the personal web API's `upload_request` hands out for the bytes (docs/123.md, web §1.4 steps
/// 4 and 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadCredentials {
    /// Empty S3 credentials: the client asks for presigned part URLs (the norm since 2023).
    #[default]
    Presigned,
    /// Static S3 credentials (`AccessKeyId`, `SecretAccessKey`, `SessionToken`, `EndPoint`):
    /// the client signs S3 requests itself (SigV4, region `123pan`, path style), then calls
    /// `upload_complete` with `fileId` (OpenList still implements this).
    Static,
}

/// What a create-like call (`/upload/v2/file/create`, the web `upload_request`) does with a
/// taken name when the request has no `duplicate` (or 0). 123 documents only 1 and 2
/// (docs/123.md, open §4.1, §11; web §1.4: "0 = default").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TakenName {
    /// Code 1 `该目录下已经有同名文件`, as p123client reads it.
    #[default]
    Refuse,
    /// The new file is named `name(1)`, as `duplicate: 1` does.
    KeepBoth,
    /// The old file is replaced, as `duplicate: 2` does.
    Replace,
}

impl TakenName {
    /// The documented `duplicate` value this reading behaves as (0 = refuse).
    pub fn as_duplicate(self) -> i64 {
        match self {
            TakenName::Refuse => 0,
            TakenName::KeepBoth => 1,
            TakenName::Replace => 2,
        }
    }
}

/// The `expires_in` the OAuth token endpoint announces (docs/123.md, open §2: a downstream fork
/// notes it is sometimes 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OAuthExpiresIn {
    /// 7200, as the doc sample says (the token does live 2 hours).
    #[default]
    Normal,
    /// 0, although the token still lives 2 hours.
    Zero,
}

/// Behaviour docs/123.md leaves open, and test knobs. Each has a CLI flag and a documented default
/// (see the README); all can be changed while running (`Emulator::set_switches`,
/// `POST /__emulator/switches`). Durations travel as milliseconds in JSON (`*_ms` keys).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Switches {
    /// When an overwrite upload replaces the old file. Default `create`.
    pub overwrite_at: OverwriteAt,
    /// Whether `a.txt` and `A.txt` are different names in one folder. Default true.
    pub case_sensitive_names: bool,
    /// Whether a trashed item still blocks its name in the folder. Default false.
    pub trashed_blocks_name: bool,
    /// Zero-byte uploads. Default `reuse`.
    pub zero_byte_upload: ZeroByteUpload,
    /// `sliceSize` handed out by `create`. Default 16 MiB.
    pub slice_size: u64,
    /// `upload_complete` answers `completed: false` this many times before verifying. Default 2.
    pub complete_pending_polls: u32,
    /// A poll sooner than this after the previous one gets the "verifying" error. Default 1 s.
    #[serde(rename = "complete_poll_interval_ms", with = "duration_ms")]
    pub complete_poll_interval: Duration,
    /// Serve the CDN's "other city" refusal with HTTP 200 instead of 403. Default false.
    pub cdn_refusal_http_200: bool,
    /// Lifetime of a `downloadUrl` (and of share CDN links). Default 30 min.
    #[serde(rename = "cdn_link_ttl_ms", with = "duration_ms")]
    pub cdn_link_ttl: Duration,
    /// Bytes per second per download response on the CDN and direct-link host. Default none.
    pub cdn_rate_limit: Option<u64>,
    /// The share hop answers 200 + JSON `redirect_url` instead of 302. Default false (302).
    pub share_redirect_json: bool,
    /// Lifetime of an access token. Default 30 days.
    #[serde(rename = "token_ttl_ms", with = "duration_ms")]
    pub token_ttl: Duration,
    /// Daily CDN traffic cap in bytes; past it `download_info` answers 5113. Default none.
    pub daily_traffic_cap: Option<u64>,
    /// The message of code 5113 past the cap: `daily`, `monthly` or `none`. Default `daily`.
    #[serde(default)]
    pub traffic_message: TrafficMessage,
    /// Web login (`/api/user/sign_in`) is refused for risk control with 123's message
    /// `当前账号存在安全风险，请使用短信验证码或者微信进行登录。`. Default false.
    #[serde(default)]
    pub web_risk_control: bool,
    /// Every web login is refused for this reason (the right password included). Default
    /// `none`.
    #[serde(default)]
    pub web_login_refusal: WebLoginRefusal,
    /// Lifetime of the presigned part URLs of personal (web) uploads; an expired URL gets HTTP 403.
    /// Default 15 min.
    #[serde(
        rename = "presign_ttl_ms",
        with = "duration_ms",
        default = "default_presign_ttl"
    )]
    pub presign_ttl: Duration,
    /// Share downloads (`/b/api/share/download/info`) need a logged-in web token in
    /// `Authorization` (a share mount's `access_token`); without one, code 5112
    /// `您需要注册登录或付费后下载`. Default false.
    #[serde(default)]
    pub share_download_needs_login: bool,
    /// The HTTP status of API errors (Open and web API). Default `ok` (always 200).
    #[serde(default)]
    pub error_status: ErrorStatus,
    /// How the web API answers rate limiting (its QPS gate and the `code429` fault). Default
    /// `code429`.
    #[serde(default)]
    pub web_rate_limit_style: WebRateLimitStyle,
    /// How the web API answers a failed signature. Default `code`.
    #[serde(default)]
    pub web_signature_failure: WebSignatureFailure,
    /// The path form the direct-link host hashes for `auth_key`. Default `decoded`.
    #[serde(default)]
    pub auth_key_path: AuthKeyPath,
    /// Presigned part URLs or static S3 credentials from personal `upload_request`. Default
    /// `presigned`.
    #[serde(default)]
    pub upload_credentials: UploadCredentials,
    /// What create (and web `upload_request`) does with a taken name when `duplicate` is
    /// absent or 0 (docs/123.md, open §11). Default `refuse`.
    #[serde(default)]
    pub create_on_taken_name: TakenName,
    /// `upload_complete` answers this many errors (cycling through 20103 `文件正在校验中`, code 1
    /// `任务队列削峰中…` and an unknown code) per upload before its normal answers (docs/123.md,
    /// open §11). Default 0.
    #[serde(default)]
    pub complete_transient_errors: u32,
    /// Known content answers `reuse: true, fileID: 0` with a normal upload session instead of
    /// an instant upload (OpenList: "秒传成功才会返回正确的 FileID，否则为 0"). Default false.
    #[serde(default)]
    pub reuse_without_file_id: bool,
    /// The first N `download_info` and `direct-link/url` calls for a file uploaded through the
    /// API in this run answer 20103 `文件正在校验中` (docs/123.md, open §11). Default 0.
    #[serde(default)]
    pub verifying_after_upload: u32,
    /// The `expires_in` OAuth grants announce (token endpoint and renewal service). Default
    /// `normal` (7200).
    #[serde(default)]
    pub oauth_expires_in: OAuthExpiresIn,
    /// Every refresh-token grant is refused (`invalid_grant`; the renewal service answers 500
    /// with its `text`). Default false.
    #[serde(default)]
    pub oauth_refresh_fails: bool,
}

/// Default of `Switches::presign_ttl` (also for switch JSON written before it existed).
fn default_presign_ttl() -> Duration {
    Duration::from_secs(15 * 60)
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            overwrite_at: OverwriteAt::Create,
            case_sensitive_names: true,
            trashed_blocks_name: false,
            zero_byte_upload: ZeroByteUpload::Reuse,
            slice_size: 16 * 1024 * 1024,
            complete_pending_polls: 2,
            complete_poll_interval: Duration::from_secs(1),
            cdn_refusal_http_200: false,
            cdn_link_ttl: Duration::from_secs(30 * 60),
            cdn_rate_limit: None,
            share_redirect_json: false,
            token_ttl: Duration::from_secs(30 * 24 * 3600),
            daily_traffic_cap: None,
            traffic_message: TrafficMessage::Daily,
            web_risk_control: false,
            web_login_refusal: WebLoginRefusal::None,
            presign_ttl: default_presign_ttl(),
            share_download_needs_login: false,
            error_status: ErrorStatus::Ok,
            web_rate_limit_style: WebRateLimitStyle::Code429,
            web_signature_failure: WebSignatureFailure::Code,
            auth_key_path: AuthKeyPath::default(),
            upload_credentials: UploadCredentials::default(),
            create_on_taken_name: TakenName::Refuse,
            complete_transient_errors: 0,
            reuse_without_file_id: false,
            verifying_after_upload: 0,
            oauth_expires_in: OAuthExpiresIn::Normal,
            oauth_refresh_fails: false,
        }
    }
}

/// Serde helper: a `Duration` as integer milliseconds.
mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Parse a byte count with an optional unit: `4096`, `4KiB`, `16MiB`, `20GiB`, `1G`, `500k`.
/// Decimal (`KB`, `MB`, `GB`) and binary (`K`, `KiB`, …) units are both accepted; bare `K`/`M`/`G`
/// are binary, as in most tools.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad size {s:?}"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => return Err(format!("bad size unit in {s:?}")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size too large: {s:?}"))
}

/// Parse a duration: `0`, `1500ms`, `1s`, `30m`, `2h`, `30d`; a bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        "d" => Duration::from_secs(n.saturating_mul(86400)),
        _ => return Err(format!("bad duration unit in {s:?}")),
    };
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("20GiB"), Ok(20 << 30));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert!(parse_size("x").is_err());
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn cli_specs_parse() {
        let g = GenerateSpec::parse("/big=2:1MiB@7").unwrap();
        assert_eq!(
            (g.path.as_str(), g.count, g.size, g.seed),
            ("/big", 2, 1 << 20, 7)
        );
        let g = GenerateSpec::parse("10:4k").unwrap();
        assert_eq!(
            (g.path.as_str(), g.count, g.size, g.seed),
            ("/generated", 10, 4096, 1)
        );
        let s = ShareSpec::parse("abc-DEF:pw12=/films").unwrap();
        assert_eq!(s.key, "abc-DEF");
        assert_eq!(s.password.as_deref(), Some("pw12"));
        assert_eq!(s.path, "/films");
        assert!(ShareSpec::parse("nokey").is_err());
    }

    #[test]
    fn switches_round_trip_json() {
        let s = Switches::default();
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["complete_poll_interval_ms"], 1000);
        assert_eq!(v["overwrite_at"], "create");
        let back: Switches = serde_json::from_value(v).unwrap();
        assert_eq!(back, s);
    }
}
