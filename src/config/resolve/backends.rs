//! The keys of each backend (`open`, `share`, `web`, `link`) and the secrets they read from
//! the environment.

use super::*;

pub(super) fn resolve_open(
    report: &mut Report,
    s: &Section,
    raw: RawOpen,
    env: Env,
) -> OpenMountConfig {
    let (client_id, client_secret, login) = super::open_login::resolve(
        report,
        s,
        super::open_login::RawLogin {
            client_id: raw.client_id,
            client_secret: raw.client_secret,
            client_secret_env: raw.client_secret_env,
            refresh_token: raw.refresh_token,
            renew_url: raw.renew_url,
            access_token: raw.access_token,
            redirect_uri: raw.redirect_uri,
            authorize_url: raw.authorize_url,
        },
        env,
    );
    let api_base = http_url(
        report,
        s.key("api_base"),
        raw.api_base.as_deref().unwrap_or(DEFAULT_OPEN_API_BASE),
        DEFAULT_OPEN_API_BASE,
    );
    let direct_link_valid = duration(
        report,
        s,
        "direct_link_valid",
        raw.direct_link_valid,
        DEFAULT_DIRECT_LINK_VALID,
        false,
    );
    OpenMountConfig {
        client_id,
        client_secret,
        login,
        root_id: raw.root_id.unwrap_or(0),
        api_base,
        direct_link: raw.direct_link.unwrap_or(false),
        direct_link_key: raw
            .direct_link_key
            .filter(|key| !key.is_empty())
            .map(Secret::from),
        direct_link_valid,
        auth_key_path: auth_key_path(report, s, raw.auth_key_path),
    }
}

pub(super) fn resolve_share(report: &mut Report, s: &Section, raw: RawShare) -> ShareMountConfig {
    const FIX: &str = "set it to the last part of the share's URL, like \"vj8eVv-QQ413\" for \
                       https://www.123pan.com/s/vj8eVv-QQ413.html";
    let share_key = match raw.share_key {
        None => {
            s.missing(report, "share_key", FIX);
            String::new()
        }
        Some(key) => {
            let trimmed = key.trim();
            if trimmed.is_empty() {
                report.add(s.key("share_key"), format!("empty; {FIX}"));
            } else if trimmed.contains(['/', '?', '#', ' ']) || trimmed.ends_with(".html") {
                let last = trimmed
                    .split(['?', '#'])
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .trim_end_matches(".html");
                report.add(
                    s.key("share_key"),
                    format!(
                        "\"{key}\" is not a share key; write only the part after /s/, without \
                         .html, like \"{last}\""
                    ),
                );
            }
            trimmed.to_string()
        }
    };
    let api_base = http_url(
        report,
        s.key("api_base"),
        raw.api_base.as_deref().unwrap_or(DEFAULT_WEB_API_BASE),
        DEFAULT_WEB_API_BASE,
    );
    if api_base.ends_with("/b/api") {
        report.add(
            s.key("api_base"),
            format!(
                "\"{api_base}\" includes the API path; requests go to <api_base>/b/api/..., so \
                 write only the scheme and host, like \"{DEFAULT_WEB_API_BASE}\""
            ),
        );
    }
    ShareMountConfig {
        share_key,
        share_password: raw
            .share_password
            .filter(|p| !p.is_empty())
            .map(Secret::from),
        root_id: raw.root_id.unwrap_or(0),
        access_token: raw
            .access_token
            .filter(|t| !t.trim().is_empty())
            .map(|t| Secret::from(t.trim())),
        api_base,
    }
}

pub(super) fn resolve_web(
    report: &mut Report,
    s: &Section,
    raw: RawWeb,
    env: Env,
) -> WebMountConfig {
    const USER_FIX: &str =
        "set it to the phone number (or e-mail address) you log in to 123pan with";
    let username = match raw.username {
        None => {
            s.missing(report, "username", USER_FIX);
            String::new()
        }
        Some(name) => {
            let name = name.trim().to_string();
            if name.is_empty() {
                report.add(s.key("username"), format!("empty; {USER_FIX}"));
            }
            name
        }
    };
    // Exactly one of a password (the gateway logs in) and a pasted browser token (issue 21).
    const WAYS: &str = "a personal mount logs in with exactly one of: password (or \
                        password_env), or token (the JWT a logged-in browser holds; README: \
                        \"Personal mounts with a browser token\")";
    let has_password = raw.password.is_some() || raw.password_env.is_some();
    let token = match raw.token {
        Some(_) if has_password => {
            let other = if raw.password.is_some() {
                "password"
            } else {
                "password_env"
            };
            report.add(s.key("token"), format!("set together with {other}; {WAYS}"));
            None
        }
        Some(t) if t.trim().is_empty() => {
            report.add(
                s.key("token"),
                "empty; paste the token a logged-in browser holds (README: \"Personal mounts \
                 with a browser token\"), or log in with password",
            );
            None
        }
        // Copied from local storage the value may keep its JSON quotes, or from a request its
        // "Bearer " prefix.
        Some(t) => Some(Secret::from(
            t.trim()
                .trim_matches('"')
                .trim_start_matches("Bearer ")
                .trim()
                .to_string(),
        )),
        None => None,
    };
    let password = match (raw.password, raw.password_env) {
        (Some(_), Some(_)) => {
            report.add(
                s.key("password"),
                "set either password or password_env, not both",
            );
            String::new()
        }
        (None, None) if token.is_some() || s.is_bad("token") => String::new(),
        (None, None) => {
            if !s.is_bad("password_env") {
                s.missing(
                    report,
                    "password",
                    &format!(
                        "set password, or password_env to the name of an environment variable \
                         that holds it, or token; {WAYS}"
                    ),
                );
            }
            String::new()
        }
        (Some(password), None) => {
            if password.is_empty() {
                report.add(
                    s.key("password"),
                    "empty; set it to the account's password, or use password_env",
                );
            }
            password
        }
        (None, Some(var)) => secret_from_env(report, s.key("password_env"), &var, env),
    };
    let mut base = |key: &str, value: Option<String>, default: &str| {
        let url = http_url(
            report,
            s.key(key),
            value.as_deref().unwrap_or(default),
            default,
        );
        if url.ends_with("/b/api") || url.ends_with("/api") {
            report.add(
                s.key(key),
                format!(
                    "\"{url}\" includes the API path; write only the scheme and host, like \
                     \"{default}\""
                ),
            );
        }
        url
    };
    let api_base = base("api_base", raw.api_base, DEFAULT_WEB_API_BASE);
    let login_base = base("login_base", raw.login_base, DEFAULT_WEB_LOGIN_BASE);
    WebMountConfig {
        username,
        password: Secret::from(password),
        token,
        root_id: raw.root_id.unwrap_or(0),
        api_base,
        login_base,
    }
}

pub(super) fn resolve_link(report: &mut Report, s: &Section, raw: RawLink) -> LinkMountConfig {
    const GRAMMAR: &str = "one file per line as [size:][mtime:]URL, folders as lines ending in \
                           ':', nested by two spaces (see config.example.toml)";
    let empty = crate::backend::link::LinkTree { nodes: Vec::new() };
    let tree = match raw.urls {
        None => {
            s.missing(report, "urls", &format!("list the files: {GRAMMAR}"));
            empty
        }
        Some(text) => match crate::backend::link::tree::parse(&text) {
            Ok(tree) if tree.nodes.len() <= 1 => {
                report.add(s.key("urls"), format!("has no files; write {GRAMMAR}"));
                tree
            }
            Ok(tree) => tree,
            Err(err) => {
                report.add(s.key("urls"), format!("{err}; write {GRAMMAR}"));
                empty
            }
        },
    };
    let direct_link_key = raw
        .direct_link_key
        .filter(|key| !key.is_empty())
        .map(Secret::from);
    let uid = match raw.uid {
        Some(uid) => uid,
        None => {
            if direct_link_key.is_some() {
                s.missing(
                    report,
                    "uid",
                    "direct_link_key signs links with your account's uid: set uid to the number \
                     shown on 123's direct-link settings page (it is the first path segment of \
                     your direct links)",
                );
            }
            0
        }
    };
    let direct_link_valid = duration(
        report,
        s,
        "direct_link_valid",
        raw.direct_link_valid,
        DEFAULT_DIRECT_LINK_VALID,
        false,
    );
    LinkMountConfig {
        tree,
        direct_link_key,
        uid,
        direct_link_valid,
        auth_key_path: auth_key_path(report, s, raw.auth_key_path),
    }
}

/// `auth_key_path`: `auto` (default), `encoded` or `decoded` (docs/123.md, web §6).
pub(super) fn auth_key_path(report: &mut Report, s: &Section, raw: Option<String>) -> AuthKeyPath {
    let Some(name) = raw else {
        return AuthKeyPath::default();
    };
    AuthKeyPath::from_name(&name).unwrap_or_else(|| {
        report.add(
            s.key("auth_key_path"),
            format!(
                "\"{name}\" is not a path form; use one of: {}",
                list(&AuthKeyPath::NAMES)
            ),
        );
        AuthKeyPath::default()
    })
}

/// The value of the environment variable a `*_env` key names.
pub(in crate::config) fn secret_from_env(
    report: &mut Report,
    key: String,
    var: &str,
    env: Env,
) -> String {
    let secret_key = key.trim_end_matches("_env");
    let problem = if var.is_empty() {
        "empty; set it to the name of an environment variable".to_string()
    } else {
        match env(var).map(OsString::into_string) {
            Some(Ok(value)) if !value.is_empty() => return value,
            Some(Ok(_)) => format!(
                "the environment variable {var} is empty; set it to the secret before starting, \
                 or put the secret in {secret_key}"
            ),
            Some(Err(_)) => format!("the environment variable {var} is not valid UTF-8"),
            None => format!(
                "the environment variable {var} is not set; export it before starting, or put \
                 the secret in {secret_key}"
            ),
        }
    };
    report.add(key, problem);
    String::new()
}
