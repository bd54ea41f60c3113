//! `pan123-emulator`: run the emulator by hand. Prints the Open API base URL as the first line of
//! stdout and then one `name url` line per host, then serves until Ctrl-C. Every flag maps onto
//! `EmulatorConfig`/`Switches`; see the README.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Parser, ValueEnum};
use pan123_emulator::config::{parse_duration, parse_size};
use pan123_emulator::{
    AuthKeyPath, Emulator, EmulatorConfig, ErrorStatus, GenerateSpec, OAuthExpiresIn, OverwriteAt,
    ShareSpec, Switches, TakenName, TrafficMessage, UploadCredentials, WebLoginRefusal,
    WebRateLimitStyle, WebSignatureFailure, ZeroByteUpload,
};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OverwriteAtArg {
    Create,
    Complete,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ZeroByteArg {
    Reuse,
    Normal,
    Reject,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RedirectStyle {
    #[value(name = "302")]
    Found,
    Json,
}

/// A local stand-in for 123pan's hosts: Open API, upload, CDN, direct-link, web API, login,
/// download hop and presigned part host, each on its own port.
#[derive(Debug, Parser)]
#[command(name = "pan123-emulator", version)]
struct Cli {
    /// Address of the Open API host (port 0 = any free port); the other hosts use its IP.
    #[arg(long, default_value = "127.0.0.1:40123")]
    listen: SocketAddr,
    /// Ports of the other hosts: PORT, PORT+1, … for upload, cdn, direct, web, login, web-pro,
    /// s3 (default: free ports).
    #[arg(long, value_name = "PORT")]
    hosts_port_base: Option<u16>,
    /// Seed the account root from this folder (read only, bodies read lazily).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Add generated files: `[/folder=]COUNT:SIZE[@SEED]`, e.g. `10000:4KiB`, `/big=1:20GiB`.
    #[arg(long, value_parser = GenerateSpec::parse)]
    generate: Vec<GenerateSpec>,
    /// Developer client id.
    #[arg(long, default_value = "demo-client")]
    client_id: String,
    /// Developer client secret.
    #[arg(long, default_value = "demo-secret")]
    client_secret: String,
    /// Account uid.
    #[arg(long, default_value_t = 1814435920)]
    uid: u64,
    /// Publish a share link: `KEY[:PASSWORD]=/path`.
    #[arg(long, value_parser = ShareSpec::parse)]
    share: Vec<ShareSpec>,
    /// Root-level folder that is the direct-link space, e.g. `/direct`.
    #[arg(long)]
    direct_link_space: Option<String>,
    /// Direct-link `auth_key` private key (links then need a valid `auth_key`).
    #[arg(long)]
    direct_link_key: Option<String>,
    /// Disable the QPS limits.
    #[arg(long)]
    no_qps: bool,
    /// Folder for uploads and the MD5 memo (default: the system temp dir).
    #[arg(long)]
    temp_dir: Option<PathBuf>,

    /// When an overwrite (`duplicate: 2`) upload replaces the old file.
    #[arg(long, value_enum, default_value = "create")]
    overwrite_at: OverwriteAtArg,
    /// Whether names differing only in case are different.
    #[arg(long, action = ArgAction::Set, default_value_t = true)]
    case_sensitive_names: bool,
    /// Whether a trashed item still blocks its name.
    #[arg(long, action = ArgAction::Set, default_value_t = false)]
    trashed_blocks_name: bool,
    /// What `create` does with a zero-byte file.
    #[arg(long, value_enum, default_value = "reuse")]
    zero_byte_upload: ZeroByteArg,
    /// `sliceSize` handed out by create.
    #[arg(long, value_parser = parse_size, default_value = "16MiB")]
    slice_size: u64,
    /// `completed: false` answers before upload_complete verifies.
    #[arg(long, default_value_t = 2)]
    complete_pending_polls: u32,
    /// Minimum spacing of upload_complete polls (sooner = "verifying" error).
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    complete_poll_interval: Duration,
    /// Serve the CDN's other-city refusal with HTTP 200 instead of 403.
    #[arg(long)]
    cdn_refusal_http_200: bool,
    /// Lifetime of CDN download links.
    #[arg(long, value_parser = parse_duration, default_value = "30m")]
    cdn_link_ttl: Duration,
    /// Bytes per second per CDN/direct download response (default: unlimited).
    #[arg(long, value_parser = parse_size)]
    cdn_rate_limit: Option<u64>,
    /// How the share download hop answers.
    #[arg(long, value_enum, default_value = "302")]
    share_redirect_style: RedirectStyle,
    /// Lifetime of access tokens.
    #[arg(long, value_parser = parse_duration, default_value = "30d")]
    token_ttl: Duration,
    /// Daily CDN traffic cap in bytes; past it download_info answers 5113.
    #[arg(long, value_parser = parse_size)]
    daily_traffic_cap: Option<u64>,
    /// The message of code 5113 past the cap: daily, monthly or none.
    #[arg(long, value_parser = parse_switch::<TrafficMessage>, default_value = "daily")]
    traffic_message: TrafficMessage,
    /// The personal account of the web API: `PHONE:PASSWORD` (or `MAIL:PASSWORD`).
    #[arg(long, value_parser = parse_web_user, default_value = "13800138000:demo-password")]
    web_user: (String, String),
    /// The client id of the user's OAuth app (token endpoint and renewal service).
    #[arg(long, default_value = "demo-oauth-app")]
    oauth_client_id: String,
    /// Its secret.
    #[arg(long, default_value = "demo-oauth-secret")]
    oauth_client_secret: String,
    /// Refuse web logins for risk control (123's `当前账号存在安全风险…` message).
    #[arg(long)]
    web_risk_control: bool,
    /// Refuse every web login for a reason: `none`, `risk_control`, `abroad`, `verify`, `locked`.
    #[arg(long, value_parser = parse_switch::<WebLoginRefusal>, default_value = "none")]
    web_login_refusal: WebLoginRefusal,
    /// Lifetime of the presigned part URLs of personal (web) uploads.
    #[arg(long, value_parser = parse_duration, default_value = "15m")]
    presign_ttl: Duration,
    /// Share downloads need a logged-in web token (else code 5112).
    #[arg(long)]
    share_download_needs_login: bool,
    /// HTTP status of API errors: `ok` (always 200) or `mirror` (a matching 4xx/5xx).
    #[arg(long, value_parser = parse_switch::<ErrorStatus>, default_value = "ok")]
    error_status: ErrorStatus,
    /// How the web API says "too many requests": `code429`, `http429` or `message`.
    #[arg(long, value_parser = parse_switch::<WebRateLimitStyle>, default_value = "code429")]
    web_rate_limit_style: WebRateLimitStyle,
    /// How the web API answers a failed signature: `code` or `status_info`.
    #[arg(long, value_parser = parse_switch::<WebSignatureFailure>, default_value = "code")]
    web_signature_failure: WebSignatureFailure,
    /// Which path form the direct-link host hashes for `auth_key`.
    #[arg(long, value_parser = parse_switch::<AuthKeyPath>, default_value = "decoded")]
    auth_key_path: AuthKeyPath,
    /// What personal `upload_request` hands out: presigned part URLs or static S3 credentials.
    #[arg(long, value_parser = parse_switch::<UploadCredentials>, default_value = "presigned")]
    upload_credentials: UploadCredentials,
    /// What create (and web upload_request) does with a taken name when `duplicate` is absent
    /// or 0.
    #[arg(long, value_parser = parse_switch::<TakenName>, default_value = "refuse")]
    create_on_taken_name: TakenName,
    /// Errors (20103, code 1 queue busy, an unknown code) upload_complete answers per upload
    /// before its normal answers.
    #[arg(long, default_value_t = 0, value_name = "N")]
    complete_transient_errors: u32,
    /// Known content answers `reuse: true, fileID: 0` with a normal upload session.
    #[arg(long)]
    reuse_without_file_id: bool,
    /// The first N download_info / direct-link/url calls for a file uploaded in this run
    /// answer 20103.
    #[arg(long, default_value_t = 0, value_name = "N")]
    verifying_after_upload: u32,
    /// The `expires_in` OAuth grants announce: `normal` (7200) or `zero`.
    #[arg(long, value_parser = parse_switch::<OAuthExpiresIn>, default_value = "normal")]
    oauth_expires_in: OAuthExpiresIn,
    /// Every OAuth refresh-token grant is refused.
    #[arg(long)]
    oauth_refresh_fails: bool,
}

/// A switch value by its JSON name (the same words as `POST /__emulator/switches`; `-` may
/// stand for `_`, as in `keep-both`).
fn parse_switch<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(s.replace('-', "_")))
        .map_err(|e| e.to_string())
}

/// `USER:PASSWORD`, split at the first colon.
fn parse_web_user(s: &str) -> Result<(String, String), String> {
    match s.split_once(':') {
        Some((user, password)) if !user.is_empty() && !password.is_empty() => {
            Ok((user.to_string(), password.to_string()))
        }
        _ => Err(format!("expected PHONE:PASSWORD in {s:?}")),
    }
}

impl Cli {
    fn into_config(self) -> EmulatorConfig {
        EmulatorConfig {
            listen: self.listen,
            hosts_port_base: self.hosts_port_base,
            client_id: self.client_id,
            client_secret: self.client_secret,
            uid: self.uid,
            data_dir: self.data,
            generate: self.generate,
            shares: self.share,
            direct_link_space: self.direct_link_space,
            direct_link_key: self.direct_link_key,
            qps: !self.no_qps,
            temp_dir: self.temp_dir,
            web_user: self.web_user.0,
            web_password: self.web_user.1,
            oauth_client_id: self.oauth_client_id,
            oauth_client_secret: self.oauth_client_secret,
            switches: Switches {
                overwrite_at: match self.overwrite_at {
                    OverwriteAtArg::Create => OverwriteAt::Create,
                    OverwriteAtArg::Complete => OverwriteAt::Complete,
                },
                case_sensitive_names: self.case_sensitive_names,
                trashed_blocks_name: self.trashed_blocks_name,
                zero_byte_upload: match self.zero_byte_upload {
                    ZeroByteArg::Reuse => ZeroByteUpload::Reuse,
                    ZeroByteArg::Normal => ZeroByteUpload::Normal,
                    ZeroByteArg::Reject => ZeroByteUpload::Reject,
                },
                slice_size: self.slice_size.max(1),
                complete_pending_polls: self.complete_pending_polls,
                complete_poll_interval: self.complete_poll_interval,
                cdn_refusal_http_200: self.cdn_refusal_http_200,
                cdn_link_ttl: self.cdn_link_ttl,
                cdn_rate_limit: self.cdn_rate_limit,
                share_redirect_json: matches!(self.share_redirect_style, RedirectStyle::Json),
                token_ttl: self.token_ttl,
                daily_traffic_cap: self.daily_traffic_cap,
                traffic_message: self.traffic_message,
                web_risk_control: self.web_risk_control,
                web_login_refusal: self.web_login_refusal,
                presign_ttl: self.presign_ttl,
                share_download_needs_login: self.share_download_needs_login,
                error_status: self.error_status,
                web_rate_limit_style: self.web_rate_limit_style,
                web_signature_failure: self.web_signature_failure,
                auth_key_path: self.auth_key_path,
                upload_credentials: self.upload_credentials,
                create_on_taken_name: self.create_on_taken_name,
                complete_transient_errors: self.complete_transient_errors,
                reuse_without_file_id: self.reuse_without_file_id,
                verifying_after_upload: self.verifying_after_upload,
                oauth_expires_in: self.oauth_expires_in,
                oauth_refresh_fails: self.oauth_refresh_fails,
            },
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = Cli::parse().into_config();
    let emu = Emulator::start(cfg).await?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", emu.base_url())?;
        for (name, url) in emu.hosts() {
            writeln!(out, "{name} {url}")?;
        }
        out.flush()?;
    }
    eprintln!(
        "pan123-emulator: client id {:?}, secret {:?}, uid {}, web user {:?}; Ctrl-C to stop",
        emu.client_id(),
        emu.client_secret(),
        emu.uid(),
        emu.web_user()
    );
    tokio::signal::ctrl_c().await?;
    emu.shutdown().await;
    Ok(())
}
