//! `pan123-webdav authorize -c CONFIG --mount /NAME` (issue 21): the OAuth authorization-code
//! flow for an Open mount with its own OAuth app (docs/123.md, open §2), so that the user never
//! handles a refresh token by hand. Prints the authorization URL, reads the code (or the whole
//! address 123 redirected the browser to) from stdin, exchanges it and keeps the tokens where
//! the mount's login reads them (`backend::open::login::store_authorized`).

use std::io::BufRead;
use std::path::Path;
use std::process::ExitCode;

use rand::RngCore;

use crate::backend::open::{login, oauth};
use crate::config::{self, BackendConfig, Config, OpenLogin, OpenMountConfig};

/// Longest line read from stdin (a redirected URL with its code and state fits easily).
const MAX_LINE: usize = 8 * 1024;

/// Runs the command; exit 2 for a config or mount that cannot be authorized, 1 when 123 or the
/// disk fails.
pub fn run(path: &Path, mount: &str) -> ExitCode {
    let config = match config::load(path) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::from(2);
        }
    };
    let (open, redirect_uri, authorize_url) = match oauth_mount(&config, mount) {
        Ok(found) => found,
        Err(problem) => {
            eprintln!("error: {}: {problem}", path.display());
            return ExitCode::from(2);
        }
    };
    let state = random_state();
    let url = authorization_url(authorize_url, &open.client_id, redirect_uri, &state);
    println!("{url}");
    eprintln!(
        "Open the address above in a browser logged in to 123, approve the app, then paste the \
         code or the whole address the browser was sent to, and press Enter:"
    );
    let line = match read_line() {
        Ok(line) => line,
        Err(problem) => {
            eprintln!("error: {problem}");
            return ExitCode::from(2);
        }
    };
    let code = match code_from(&line, &state) {
        Ok(code) => code,
        Err(problem) => {
            eprintln!("error: {problem}");
            return ExitCode::from(2);
        }
    };
    let upstream = match crate::server::tool_upstream(&config.server) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let exchanged = super::run_async_value(oauth::exchange_code(
        &upstream,
        &open.api_base,
        &open.client_id,
        open.client_secret.expose(),
        &code,
        redirect_uri,
    ));
    let answer = match exchanged {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            eprintln!("error: 123 refused the code: {e}");
            return ExitCode::FAILURE;
        }
        Err(code) => return code,
    };
    match login::store_authorized(&config.server.state_dir, open, answer) {
        Ok(file) => {
            println!(
                "authorized: the tokens of mount {} are kept in {}; `serve` uses them from now on",
                mount_path(mount),
                file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "error: 123 issued the tokens but they could not be kept in {}: {e}; run \
                 authorize again once the state directory is writable",
                config.server.state_dir.join("tokens").display()
            );
            ExitCode::FAILURE
        }
    }
}

fn mount_path(name: &str) -> String {
    format!("/{}", name.trim_matches('/'))
}

/// The Open mount called `name`, if it is set up for `authorize`: its config, `redirect_uri`
/// and authorization page. Otherwise what to change.
fn oauth_mount<'a>(
    config: &'a Config,
    name: &str,
) -> Result<(&'a OpenMountConfig, &'a str, &'a str), String> {
    let wanted = mount_path(name);
    let Some(mount) = config.mounts.iter().find(|m| m.path == wanted) else {
        let paths: Vec<&str> = config.mounts.iter().map(|m| m.path.as_str()).collect();
        return Err(format!(
            "no mount {wanted}; the mounts are: {}",
            paths.join(", ")
        ));
    };
    let BackendConfig::Open(open) = &mount.backend else {
        return Err(format!(
            "mount {wanted} has backend \"{}\"; authorize is for an Open mount with its own \
             OAuth app (backend = \"open\", client_id, client_secret, redirect_uri)",
            mount.backend.kind()
        ));
    };
    match &open.login {
        OpenLogin::OAuth {
            redirect_uri: Some(redirect_uri),
            authorize_url,
            ..
        } if !open.client_secret.expose().is_empty() => {
            Ok((open, redirect_uri.as_str(), authorize_url.as_str()))
        }
        OpenLogin::OAuth { .. } => Err(format!(
            "mount {wanted} has no redirect_uri (or no client_secret); set both to your OAuth \
             app's callback address and secret, as registered with 123"
        )),
        other => Err(format!(
            "mount {wanted} logs in with {}, not an OAuth app of its own; authorize needs \
             client_id, client_secret and redirect_uri of your OAuth app",
            other.name()
        )),
    }
}

/// `<authorize_url>?client_id=…&redirect_uri=…&scope=…&state=…` (docs/123.md, open §2).
fn authorization_url(base: &str, client_id: &str, redirect_uri: &str, state: &str) -> String {
    let mut url = match url::Url::parse(base) {
        Ok(u) => u,
        // The config checked it; a broken one still prints something a person can read.
        Err(_) => return format!("{base}?client_id={client_id}&state={state}"),
    };
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", oauth::SCOPE)
        .append_pair("state", state);
    url.to_string()
}

fn random_state() -> String {
    let mut bytes = [0u8; 12];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    crate::backend::auth_key::hex(&bytes)
}

fn read_line() -> Result<String, String> {
    use std::io::Read;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_LINE as u64)
        .read_line(&mut line)
        .map_err(|e| format!("reading stdin: {e}"))?;
    Ok(line.trim().to_string())
}

/// The code in what the user pasted: the redirected address (or just its query), whose
/// `state` must be ours, or the bare code.
fn code_from(pasted: &str, state: &str) -> Result<String, String> {
    if pasted.is_empty() {
        return Err("nothing was pasted; run authorize again and paste the code".to_string());
    }
    if !pasted.contains("code=") && !pasted.contains("error=") {
        return Ok(pasted.to_string());
    }
    let query = pasted.split_once('?').map_or(pasted, |(_, q)| q);
    let query = query.split('#').next().unwrap_or(query);
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(error) = get("error") {
        return Err(format!(
            "123 did not authorize the app: {}",
            get("error_description").unwrap_or(error)
        ));
    }
    if get("state").is_some_and(|s| s != state) {
        return Err(
            "the address is from another authorization (its state differs); paste the address \
             this run's link led to"
                .to_string(),
        );
    }
    match get("code") {
        Some(code) if !code.is_empty() => Ok(code.to_string()),
        _ => Err("the pasted address carries no code".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_found_in_what_is_pasted() {
        assert_eq!(code_from("abc", "s").unwrap(), "abc");
        assert_eq!(
            code_from("https://app.example/cb?code=c1&state=s", "s").unwrap(),
            "c1"
        );
        assert_eq!(code_from("?state=s&code=c2", "s").unwrap(), "c2");
        assert!(code_from("https://app.example/cb?code=c1&state=x", "s").is_err());
        assert!(code_from("https://app.example/cb?error=access_denied", "s").is_err());
        assert!(code_from("", "s").is_err());
    }

    #[test]
    fn the_authorization_url_carries_the_documented_parameters() {
        let url = authorization_url(
            "https://yun.123pan.com/auth",
            "app",
            "https://app.example/cb",
            "st",
        );
        assert_eq!(
            url,
            "https://yun.123pan.com/auth?client_id=app&redirect_uri=https%3A%2F%2Fapp.example%2Fcb\
             &scope=user%3Abase%2Cfile%3Aall%3Aread%2Cfile%3Aall%3Awrite&state=st"
        );
    }
}
