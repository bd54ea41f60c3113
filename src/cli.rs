//! The command line: `serve`, `check`, `authorize`, `hash-password`, `demo`.
//!
//! Exit codes: 0 success; 1 the server or demo failed while running; 2 bad usage, a bad config
//! file or a bad password input.

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argon2::password_hash::{PasswordHasher, SaltString};
use clap::{Parser, Subcommand, ValueEnum};
use rand::RngCore;

use crate::config::{self, format_duration, BackendConfig, Config};

mod authorize;

#[derive(Debug, Parser)]
#[command(
    name = "pan123-webdav",
    version,
    about = "A WebDAV gateway for 123pan storage"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve WebDAV with the given config file.
    Serve {
        /// The config file (see config.example.toml).
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Log line format. The level comes from RUST_LOG (default "info").
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Validate a config file and print what it sets up; lists every problem at once.
    Check {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// Also list each mount's root folder on 123 and print how long it took.
        #[arg(long)]
        probe: bool,
    },
    /// Authorize an Open mount's own OAuth app: prints the authorization URL, reads the code
    /// (or the whole redirected address) from stdin and keeps the tokens in state_dir.
    Authorize {
        #[arg(short, long, value_name = "FILE")]
        config: PathBuf,
        /// The mount's path, like /o.
        #[arg(long, value_name = "PATH")]
        mount: String,
    },
    /// Exit 0 when the URL answers 200 (for container health checks, where no curl exists).
    Healthcheck {
        #[arg(
            long,
            value_name = "URL",
            default_value = "http://127.0.0.1:8080/-/healthz"
        )]
        url: String,
    },
    /// Read a password from the terminal (or one line of stdin) and print its argon2id hash,
    /// for a user's password_hash.
    HashPassword,
    /// Run an emulated 123 cloud and the gateway in one process, to try things out.
    ///
    /// Only in builds with the `demo` feature (the default); the Docker image leaves it out.
    Demo {
        /// Where the gateway listens (default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Parses the command line and runs the command.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    match cli.command {
        Command::Serve { config, log_format } => serve(&config, log_format),
        Command::Check { config, probe } => check(&config, probe),
        Command::Authorize { config, mount } => authorize::run(&config, &mount),
        Command::Healthcheck { url } => run_async(crate::server::health::healthcheck(url)),
        Command::HashPassword => hash_password(),
        Command::Demo { listen } => demo(listen),
    }
}

#[cfg(feature = "demo")]
fn demo(listen: Option<SocketAddr>) -> ExitCode {
    init_tracing(LogFormat::Text);
    run_async(crate::demo::run(listen))
}

/// The subcommand stays known so that a production build says how to get the demo instead of
/// calling it an unknown command.
#[cfg(not(feature = "demo"))]
fn demo(_listen: Option<SocketAddr>) -> ExitCode {
    eprintln!(
        "error: this build has no demo (built without the `demo` feature); \
         build with the default features to get it: cargo install --path . or cargo run --release -- demo"
    );
    ExitCode::from(2)
}

fn serve(path: &Path, log_format: LogFormat) -> ExitCode {
    crate::malloc::tune_for_server();
    let config = match config::load(path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    init_tracing(log_format);
    run_async(crate::server::run(config))
}

/// Runs a future on a multi-thread runtime; an error is printed with its causes, exit 1.
fn run_async(future: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(future) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a future on a current-thread runtime and hands back its value; a runtime that cannot
/// start is reported and becomes the exit code.
fn run_async_value<T>(future: impl std::future::Future<Output = T>) -> Result<T, ExitCode> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Ok(runtime.block_on(future)),
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Logs to stderr, filtered by RUST_LOG (default "info").
fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A subscriber may already be set (tests running commands in-process); keep it then.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn check(path: &Path, probe: bool) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            print!("{}", describe(&config));
            if probe {
                return run_async(crate::server::health::probe_mounts(config));
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::from(2)
        }
    }
}

/// Which token an Open mount starts with, for `check` (issue 21: "`check` says which token is in
/// use"). Never prints a token.
fn describe_open_token(
    state_dir: &std::path::Path,
    open: &crate::config::OpenMountConfig,
) -> String {
    use crate::backend::open::{login, oauth::RefreshSource};
    use crate::config::OpenLogin;
    let when = |secs: u64| {
        chrono::DateTime::from_timestamp(secs as i64, 0)
            .map(|d| d.to_rfc3339())
            .unwrap_or_else(|| secs.to_string())
    };
    match &open.login {
        OpenLogin::Developer => String::new(),
        OpenLogin::OAuth { refresh_token, .. } if refresh_token.expose().is_empty() => {
            match login::refresh_source(state_dir, open) {
                Some(RefreshSource::StateDir { updated_at }) => format!(
                    "  refresh token in use: the one `authorize` stored (or its rotation) in {} \
                     (kept {})\n",
                    login::refresh_path(state_dir, open).display(),
                    when(updated_at),
                ),
                _ => {
                    "  refresh token in use: none yet; run `pan123-webdav authorize -c <this file> \
                      --mount <this mount>` once\n"
                        .to_string()
                }
            }
        }
        OpenLogin::OAuth { .. } | OpenLogin::Renew { .. } => {
            match login::refresh_source(state_dir, open) {
                Some(RefreshSource::StateDir { updated_at }) => format!(
                    "  refresh token in use: the rotated one in {} (rotated {}); the config's \
                     refresh_token was only the first seed\n",
                    login::refresh_path(state_dir, open).display(),
                    when(updated_at),
                ),
                _ => "  refresh token in use: the config's refresh_token (first seed; each \
                      rotation is kept in state_dir/tokens)\n"
                    .to_string(),
            }
        }
        OpenLogin::AccessToken { access_token } => {
            match crate::backend::open::oauth::jwt_expiry(access_token.expose()) {
                Some(exp) => format!(
                    "  pasted access_token expires at {} (never renewed; the mount turns unready \
                     a day before)\n",
                    when(exp)
                ),
                None => "  pasted access_token: its expiry cannot be read; it is used until 123 \
                         refuses it\n"
                    .to_string(),
            }
        }
    }
}

/// How a personal mount logs in, for `check` (never the secret itself).
fn describe_web_login(web: &crate::config::WebMountConfig) -> String {
    let Some(token) = &web.token else {
        return "password set".to_string();
    };
    match crate::backend::open::oauth::jwt_expiry(token.expose()) {
        Some(exp) => format!(
            "pasted browser token (expires {}; never renewed)",
            chrono::DateTime::from_timestamp(exp as i64, 0)
                .map(|d| d.to_rfc3339())
                .unwrap_or_else(|| exp.to_string())
        ),
        None => "pasted browser token (never renewed)".to_string(),
    }
}

/// What a valid config sets up, for `check`. Never prints a secret or a password hash.
fn describe(config: &Config) -> String {
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let server = &config.server;
    let mut out = format!("{}: OK\n", config.source.display());
    out += &format!(
        "server: listen {}, {}, state_dir {}, signing_key {}, sign_ttl {}\n",
        server.listen,
        if server.tls_cert.is_some() {
            "HTTPS"
        } else {
            "HTTP"
        },
        server.state_dir.display(),
        if server.signing_key.is_some() {
            "set"
        } else {
            "not set"
        },
        format_duration(server.sign_ttl),
    );
    if let Some(url) = &server.public_url {
        out += &format!("server: public_url {url}\n");
    }
    if !server.base_path.is_empty() {
        out += &format!("server: base_path {}\n", server.base_path);
    }
    let mut warnings = Vec::new();
    for mount in &config.mounts {
        out += &format!(
            "mount {}: backend {}, download {}, read-only {}, cache_ttl {}",
            mount.path,
            mount.backend.kind(),
            mount.download,
            // Share and link mounts are read-only whatever the file says.
            yes_no(
                mount.read_only
                    || !matches!(
                        mount.backend,
                        BackendConfig::Open(_) | BackendConfig::Web(_)
                    )
            ),
            format_duration(mount.cache_ttl),
        );
        for (depth, ttl) in &mount.cache_ttl_by_depth {
            out += &format!(", cache_ttl at depth {depth} {}", format_duration(*ttl));
        }
        if let Some(budget) = mount.traffic_budget {
            out += &format!(", traffic_budget {budget} bytes a month");
        }
        if let Some(url) = &mount.proxy_url {
            out += &format!(", proxy_url {url}");
        }
        match &mount.backend {
            BackendConfig::Open(open) => {
                out += &format!(
                    ", api_base {}{}, login {}, root_id {}, direct_link {}, delete {}\n",
                    open.api_base,
                    if open.client_id.is_empty() {
                        String::new()
                    } else {
                        format!(", client_id {}", open.client_id)
                    },
                    open.login.name(),
                    open.root_id,
                    yes_no(open.direct_link),
                    mount.delete,
                );
                out += &describe_open_token(&server.state_dir, open);
            }
            BackendConfig::Share(share) => {
                out += &format!(
                    ", api_base {}, share_key {}, root_id {}, password {}\n",
                    share.api_base,
                    share.share_key,
                    share.root_id,
                    if share.share_password.is_some() {
                        "set"
                    } else {
                        "none"
                    },
                );
            }
            BackendConfig::Web(web) => {
                out += &format!(
                    ", api_base {}, login_base {}, root_id {}, {}, delete {} (unofficial web API)\n",
                    web.api_base,
                    web.login_base,
                    web.root_id,
                    describe_web_login(web),
                    mount.delete,
                );
                // docs/123.md, web §1.1: 123 counts only the first 16 characters.
                if web.token.is_none() && web.password.expose().chars().count() > 16 {
                    warnings.push(format!(
                        "warning: mount {}: the password is longer than 16 characters; 123's \
                         login silently truncates passwords to their first 16 characters, so the \
                         account's real password may be just those: if the login is refused, try \
                         them, or paste a browser token (token)\n",
                        mount.path
                    ));
                }
            }
            BackendConfig::Link(link) => {
                let files = link.tree.files().count();
                out += &format!(
                    ", {} files in {} folders, signed {}\n",
                    files,
                    link.tree.nodes.len().saturating_sub(files + 1),
                    yes_no(link.direct_link_key.is_some()),
                );
            }
        }
    }
    for warning in warnings {
        out += &warning;
    }
    for user in &config.users {
        out += &format!(
            "user {}: mounts {}, write {}\n",
            user.name,
            user.mounts.join(", "),
            yes_no(user.write),
        );
    }
    if config.users.is_empty() {
        out += "warning: no [[users]] are defined, so every request will be refused\n";
    }
    // The client table in the order it is tried; the first matching row wins.
    for rule in &config.clients {
        out += &format!(
            "client \"{}\": download {}, junk kept locally {}{}{}\n",
            rule.user_agent,
            rule.download.as_str(),
            yes_no(rule.junk_local),
            rule.traffic_budget
                .map(|b| format!(", traffic_budget {b} bytes a month"))
                .unwrap_or_default(),
            if rule.builtin { " (built-in)" } else { "" },
        );
    }
    out
}

fn hash_password() -> ExitCode {
    let password = match read_password() {
        Ok(password) => password,
        Err(problem) => {
            eprintln!("error: {problem}");
            return ExitCode::from(2);
        }
    };
    if password.is_empty() {
        eprintln!("error: the password is empty");
        return ExitCode::from(2);
    }
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let hashed = SaltString::encode_b64(&salt).and_then(|salt| {
        argon2::Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
    });
    match hashed {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: hashing failed: {err}");
            ExitCode::FAILURE
        }
    }
}

/// From a terminal: prompted twice without echo. Otherwise: the first line of stdin, without
/// its line ending.
fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Repeat: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".to_string());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading stdin: {e}"))?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(line.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_each_command() {
        let cli = Cli::try_parse_from([
            "pan123-webdav",
            "serve",
            "-c",
            "c.toml",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Serve {
                log_format: LogFormat::Json,
                ..
            }
        ));
        let cli = Cli::try_parse_from(["pan123-webdav", "check", "--config", "c.toml"]).unwrap();
        assert!(matches!(cli.command, Command::Check { .. }));
        let cli =
            Cli::try_parse_from(["pan123-webdav", "demo", "--listen", "127.0.0.1:0"]).unwrap();
        assert!(matches!(cli.command, Command::Demo { listen: Some(_) }));
        assert!(Cli::try_parse_from(["pan123-webdav", "serve"]).is_err());
        assert!(Cli::try_parse_from(["pan123-webdav", "demo", "--listen", "nowhere"]).is_err());
    }
}
