//! Each validation rule, asserted by its message.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use super::file::{fields_of, BackendKind, RawMount, RawServer, RawUser};
use super::resolve::parse_with_env;
use super::*;
use crate::backend::auth_key::{AuthKeyPath, PathForm};

/// A cheap argon2id hash (m=8 KiB, t=1), so tests stay fast in debug builds.
const HASH: &str =
    "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$Bq4mCCO6ySGXVXzQ4HVjS6IYt5LTbkjnOdxHUqHRI0c";

const MOUNT: &str = r#"
[[mounts]]
path = "/open"
backend = "open"
client_id = "id"
client_secret = "secret"
"#;

const USER: &str = r#"
[[users]]
name = "alice"
password_hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$Bq4mCCO6ySGXVXzQ4HVjS6IYt5LTbkjnOdxHUqHRI0c"
"#;

fn parse_env(text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars: HashMap<String, OsString> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), OsString::from(v)))
        .collect();
    parse_with_env(text, Path::new("/etc/pan/config.toml"), &|name| {
        vars.get(name).cloned()
    })
}

fn ok(text: &str) -> Config {
    match parse_env(text, &[]) {
        Ok(config) => config,
        Err(err) => panic!("unexpected problems:\n{err}"),
    }
}

/// The problems as "key: message" lines.
fn problems(text: &str) -> Vec<String> {
    problems_env(text, &[])
}

fn problems_env(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
    match parse_env(text, vars) {
        Ok(_) => panic!("expected problems in:\n{text}"),
        Err(err) => err
            .problems()
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect(),
    }
}

/// Asserts exactly one problem, on `key`, whose message contains every one of `parts`.
#[track_caller]
fn one_problem(text: &str, key: &str, parts: &[&str]) {
    let found = problems(text);
    assert_eq!(found.len(), 1, "expected one problem, got {found:#?}");
    assert!(
        found[0].starts_with(&format!("{key}: ")),
        "expected a problem on {key}, got {found:#?}"
    );
    for part in parts {
        assert!(found[0].contains(part), "{:?} lacks {part:?}", found[0]);
    }
}

#[test]
fn the_example_file_is_valid_and_documents_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = match parse_with_env(&text, &path, &|_| Some("from-env".into())) {
        Ok(config) => config,
        Err(err) => panic!("config.example.toml is invalid:\n{err}"),
    };
    assert!(!config.mounts.is_empty() && !config.users.is_empty());

    let documented = |key: &str| {
        text.lines().any(|line| {
            let line = line.trim_start().trim_start_matches('#').trim_start();
            line.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    };
    let keys = fields_of::<RawServer>()
        .iter()
        .chain(fields_of::<RawUser>())
        .chain(fields_of::<RawMount>())
        .chain(BackendKind::Open.keys())
        .chain(BackendKind::Share.keys())
        .chain(BackendKind::Link.keys())
        .chain(BackendKind::Web.keys())
        .chain(fields_of::<super::clients::RawClient>())
        .chain(fields_of::<super::cluster::RawCluster>());
    for key in keys {
        assert!(
            documented(key),
            "config.example.toml does not document {key}"
        );
    }
}

#[test]
fn defaults() {
    let config = ok(&format!("{MOUNT}{USER}"));
    assert_eq!(config.source, Path::new("/etc/pan/config.toml"));
    let server = &config.server;
    assert_eq!(server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(server.public_url, None);
    assert!(server.signing_key.is_none());
    assert_eq!(server.sign_ttl, Duration::from_secs(3600));
    assert_eq!(server.state_dir, Path::new("/etc/pan/state"));
    assert!(server.tls_cert.is_none() && server.tls_key.is_none());

    let user = &config.users[0];
    assert_eq!(user.name, "alice");
    assert_eq!(user.mounts, ["*"]);
    assert!(!user.write);

    let mount = &config.mounts[0];
    assert_eq!(mount.path, "/open");
    assert_eq!(mount.name(), "open");
    assert_eq!(mount.download, DownloadPolicy::Auto);
    assert_eq!(mount.proxy_url, None);
    assert_eq!(mount.cache_ttl, Duration::from_secs(600));
    assert!(!mount.read_only);
    let BackendConfig::Open(open) = &mount.backend else {
        panic!("an open mount")
    };
    assert_eq!(open.client_id, "id");
    assert_eq!(open.client_secret.expose(), "secret");
    assert_eq!(open.root_id, 0);
    assert_eq!(open.api_base, "https://open-api.123pan.com");
    assert!(!open.direct_link);
    assert!(open.direct_link_key.is_none());
    assert_eq!(open.direct_link_valid, Duration::from_secs(1800));
}

#[test]
fn every_key_set() {
    let config = ok(r#"
[server]
listen = "[::]:9000"
public_url = "https://dav.example.com/"
signing_key = "0123456789abcdef"
sign_ttl = "2h"
state_dir = "/var/lib/pan"
tls_cert = "cert.pem"
tls_key = "/abs/key.pem"

[[users]]
name = "bob"
password_hash = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$Bq4mCCO6ySGXVXzQ4HVjS6IYt5LTbkjnOdxHUqHRI0c"
mounts = ["/a", "b/"]
write = true

[[mounts]]
path = "/a/"
backend = "open"
client_id = "id"
client_secret = "s"
root_id = 42
api_base = "http://127.0.0.1:5000/"
download = "proxy-url"
proxy_url = "https://dl.example.com/"
direct_link = true
direct_link_key = "k"
direct_link_valid = "1h30m"
cache_ttl = "0s"
read_only = true

[[mounts]]
path = "/b"
backend = "open"
client_id = "id2"
client_secret = "s2"
download = "redirect"
direct_link_key = ""
"#);
    let server = &config.server;
    assert_eq!(server.listen, "[::]:9000".parse().unwrap());
    assert_eq!(
        server.public_url.as_deref(),
        Some("https://dav.example.com")
    );
    assert_eq!(
        server.signing_key.as_ref().unwrap().expose(),
        "0123456789abcdef"
    );
    assert_eq!(server.sign_ttl, Duration::from_secs(7200));
    assert_eq!(server.state_dir, Path::new("/var/lib/pan"));
    assert_eq!(
        server.tls_cert.as_deref(),
        Some(Path::new("/etc/pan/cert.pem"))
    );
    assert_eq!(server.tls_key.as_deref(), Some(Path::new("/abs/key.pem")));

    assert_eq!(config.users[0].mounts, ["/a", "/b"]);
    assert!(config.users[0].write);

    let a = &config.mounts[0];
    assert_eq!(a.path, "/a");
    assert_eq!(a.download, DownloadPolicy::ProxyUrl);
    assert_eq!(a.proxy_url.as_deref(), Some("https://dl.example.com"));
    assert_eq!(a.cache_ttl, Duration::ZERO);
    assert!(a.read_only);
    let BackendConfig::Open(open) = &a.backend else {
        panic!("an open mount")
    };
    assert_eq!(open.root_id, 42);
    assert_eq!(open.api_base, "http://127.0.0.1:5000");
    assert!(open.direct_link);
    assert_eq!(open.direct_link_key.as_ref().unwrap().expose(), "k");
    assert_eq!(open.direct_link_valid, Duration::from_secs(5400));

    let b = &config.mounts[1];
    assert_eq!(b.download, DownloadPolicy::Redirect);
    let BackendConfig::Open(open) = &b.backend else {
        panic!("an open mount")
    };
    assert!(
        open.direct_link_key.is_none(),
        "an empty key means unsigned"
    );
}

#[test]
fn a_lone_mount_may_sit_at_the_root() {
    let config = ok(&MOUNT.replace("\"/open\"", "\"/\""));
    assert_eq!(config.mounts[0].path, "/");
    assert_eq!(config.mounts[0].name(), "");
}

#[test]
fn secrets_never_print() {
    let config = ok(&format!(
        "[server]\nsigning_key = \"0123456789abcdefXYZ\"\n{MOUNT}{USER}"
    ));
    let debug = format!("{config:?}");
    for secret in ["0123456789abcdefXYZ", "\"secret\"", "argon2id"] {
        assert!(!debug.contains(secret), "{secret} in {debug}");
    }
    assert!(debug.contains("<redacted>"));
    assert_eq!(Secret::from("x").to_string(), "<redacted>");
}

#[test]
fn syntax_errors_give_line_and_column() {
    let err = parse_env("[server]\nlisten = \n", &[]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("/etc/pan/config.toml: line 2, column 10: invalid TOML:"),
        "{text}"
    );
}

#[test]
fn unknown_keys_list_the_valid_ones() {
    let text = format!("{}{USER}", MOUNT.replace("client_id", "clinet_id"));
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(
        found[0],
        "mounts[0].clinet_id: unknown key (did you mean client_id?); valid keys for a mount with \
         backend = \"open\" are: path, backend, download, proxy_url, cache_ttl, \
         cache_ttl_by_depth, read_only, anonymous, traffic_budget, client_id, client_secret, client_secret_env, refresh_token, renew_url, \
         access_token, root_id, api_base, direct_link, direct_link_key, direct_link_valid, \
         auth_key_path, upload, upload_slices, delete, redirect_uri, authorize_url"
    );
    let err = parse_env(&text, &[]).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("/etc/pan/config.toml: mounts[0].clinet_id: unknown key"));

    one_problem(
        &format!("[server]\nlisen = \"x\"\n{MOUNT}{USER}"),
        "server.lisen",
        &[
            "unknown key (did you mean listen?)",
            "valid keys in [server] are: listen, public_url",
        ],
    );
    one_problem(
        &format!("{MOUNT}{USER}admin = true\n"),
        "users[0].admin",
        &["unknown key; valid keys for a user are: name, password_hash, mounts, write"],
    );
    one_problem(
        &format!("[servr]\n{MOUNT}{USER}"),
        "servr",
        &["unknown key (did you mean server?); valid top-level keys are: server, users, mounts"],
    );
}

#[test]
fn every_unknown_key_is_reported() {
    let found = problems(&format!("{MOUNT}colour = 1\nsize = 2\n{USER}"));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("mounts[0].colour: unknown key"));
    assert!(found[1].starts_with("mounts[0].size: unknown key"));
}

#[test]
fn a_key_of_another_backend_says_so() {
    one_problem(
        &format!("{MOUNT}share_key = \"abc\"\n{USER}"),
        "mounts[0].share_key",
        &[
            "not a key of backend \"open\" (it belongs to backend \"share\")",
            "valid keys for a mount with backend = \"open\" are: path,",
        ],
    );
    one_problem(
        &format!("{MOUNT}password_env = \"X\"\n{USER}"),
        "mounts[0].password_env",
        &["it belongs to backend \"web\""],
    );
}

#[test]
fn backends() {
    one_problem(
        &format!(
            "{}{USER}",
            MOUNT.replace("\"open\"\nclient", "\"web\"\nclient")
        )
        .replace(
            "client_id = \"id\"\nclient_secret = \"secret\"\n",
            "password = \"pw\"\n",
        ),
        "mounts[0].username",
        &["missing; set it to the phone number (or e-mail address)"],
    );
    one_problem(
        &format!(
            "{}{USER}",
            MOUNT.replace("\"open\"\nclient", "\"ftp\"\nclient")
        ),
        "mounts[0].backend",
        &["unknown backend \"ftp\"; use one of: open, share, link, web"],
    );
    one_problem(
        &format!("{}{USER}", MOUNT.replace("backend = \"open\"\n", "")),
        "mounts[0].backend",
        &["missing; set it to one of: open, share, link, web"],
    );
    // Without a backend, only keys no backend knows are reported.
    let found = problems(&format!(
        "{}nonsense = 1\n{USER}",
        MOUNT.replace("backend = \"open\"\n", "")
    ));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[1].starts_with("mounts[0].nonsense: unknown key; valid keys for a mount are: path,")
    );
}

#[test]
fn wrong_types_are_each_reported() {
    let found = problems(&format!(
        "{MOUNT}root_id = \"x\"\nread_only = \"yes\"\n{USER}write = 1\n"
    ));
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0]
        .starts_with("mounts[0].read_only: invalid type: string \"yes\", expected a boolean"));
    assert!(found[1].starts_with("mounts[0].root_id: invalid type: string \"x\", expected u64"));
    assert!(found[2].starts_with("users[0].write: invalid type: integer `1`, expected a boolean"));
    one_problem(
        &format!("{MOUNT}root_id = -1\n{USER}"),
        "mounts[0].root_id",
        &["invalid value: integer `-1`, expected u64"],
    );
    one_problem(
        &format!("{MOUNT}{USER}mounts = [\"*\", 3]\n"),
        "users[0].mounts[1]",
        &["invalid type: integer `3`, expected a string"],
    );
    // A wrongly typed key is not also called missing.
    one_problem(
        &format!(
            "{}{USER}",
            MOUNT.replace("client_id = \"id\"", "client_id = 7")
        ),
        "mounts[0].client_id",
        &["invalid type: integer `7`, expected a string"],
    );
}

#[test]
fn tables_of_the_wrong_shape() {
    one_problem(
        &format!("server = 1\n{MOUNT}{USER}"),
        "server",
        &["expected a table; write it as a [server] section"],
    );
    let found = problems(&format!("[mounts]\npath = \"/x\"\n{USER}"));
    assert_eq!(
        found,
        [
            "mounts: expected an array of tables; write each entry as a [[mounts]] table (two brackets)",
            "mounts: no mounts are defined; add at least one [[mounts]] table (see config.example.toml)",
        ]
    );
    one_problem(
        &format!("users = [1]\n{MOUNT}"),
        "users[0]",
        &["expected a table"],
    );
}

#[test]
fn server_listen() {
    one_problem(
        &format!("[server]\nlisten = \"localhost:8080\"\n{MOUNT}{USER}"),
        "server.listen",
        &["\"localhost:8080\" is not a socket address; write an IP address and a port, like \"127.0.0.1:8080\""],
    );
}

#[test]
fn store_limits() {
    assert_eq!(
        ok(&format!("{MOUNT}{USER}")).server.stores,
        StoreLimits::default()
    );
    let config = ok(&format!(
        "[server]\nlock_timeout_max = \"2m\"\nlocks_per_user_max = 20\nprops_max_bytes = \"1MiB\"\n\
         props_per_user_max_bytes = \"600KiB\"\njunk_max_files = 60\njunk_per_user_max_files = 40\n\
         {MOUNT}{USER}"
    ));
    assert_eq!(
        config.server.stores,
        StoreLimits {
            lock_timeout_max: Duration::from_secs(120),
            locks_per_user_max: 20,
            props_max_bytes: 1 << 20,
            props_per_user_max_bytes: 600 << 10,
            junk_max_files: 60,
            junk_per_user_max_files: 40,
        }
    );
    one_problem(
        &format!("[server]\nlock_timeout_max = \"0s\"\n{MOUNT}{USER}"),
        "server.lock_timeout_max",
        &["must be longer than 0s"],
    );
    one_problem(
        &format!("[server]\nlocks_per_user_max = 0\n{MOUNT}{USER}"),
        "server.locks_per_user_max",
        &["0 is out of range; use a number from 1 to 1000000 (default 1000)"],
    );
    one_problem(
        &format!("[server]\nprops_max_bytes = \"1KiB\"\n{MOUNT}{USER}"),
        "server.props_max_bytes",
        &["\"1KiB\" is too small", "at least \"64KiB\""],
    );
    one_problem(
        &format!("[server]\nprops_per_user_max_bytes = \"lots\"\n{MOUNT}{USER}"),
        "server.props_per_user_max_bytes",
        &["\"lots\" is not a size", "like \"16MiB\""],
    );
    one_problem(
        &format!("[server]\njunk_per_user_max_files = -5\n{MOUNT}{USER}"),
        "server.junk_per_user_max_files",
        &["-5 is out of range"],
    );
    // The error names the file.
    let err = parse_env(&format!("[server]\njunk_max_files = 0\n{MOUNT}{USER}"), &[])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("/etc/pan/config.toml"), "{err}");
}

#[test]
fn server_urls_and_durations() {
    one_problem(
        &format!("[server]\npublic_url = \"dav.example.com\"\n{MOUNT}{USER}"),
        "server.public_url",
        &[
            "\"dav.example.com\" is not a URL",
            "write it like \"https://dav.example.com\"",
        ],
    );
    one_problem(
        &format!("[server]\nsign_ttl = \"1 parsec\"\n{MOUNT}{USER}"),
        "server.sign_ttl",
        &[
            "\"1 parsec\" is not a duration: unknown time unit \"parsec\"",
            "; write e.g. \"90s\", \"10m\" or \"1h30m\" (units: d, h, m, s, ms)",
        ],
    );
    one_problem(
        &format!("[server]\nsign_ttl = \"0s\"\n{MOUNT}{USER}"),
        "server.sign_ttl",
        &["must be longer than 0s"],
    );
    one_problem(
        &format!("[server]\nstate_dir = \"\"\n{MOUNT}{USER}"),
        "server.state_dir",
        &["empty; set it to a writable directory"],
    );
}

#[test]
fn signing_key_length() {
    one_problem(
        &format!("[server]\nsigning_key = \"short\"\n{MOUNT}{USER}"),
        "server.signing_key",
        &[
            "too short (5 characters); use at least 16 random characters",
            "openssl rand -hex 32",
        ],
    );
}

#[test]
fn tls_needs_both_files() {
    one_problem(
        &format!("[server]\ntls_cert = \"c.pem\"\n{MOUNT}{USER}"),
        "server.tls_key",
        &["missing; tls_cert is set, and HTTPS needs both tls_cert and tls_key"],
    );
    one_problem(
        &format!("[server]\ntls_key = \"k.pem\"\n{MOUNT}{USER}"),
        "server.tls_cert",
        &[
            "missing; tls_key is set",
            "or remove tls_key to serve plain HTTP",
        ],
    );
}

#[test]
fn mount_paths() {
    let cases = [
        ("open", "\"open\" must start with \"/\"; write \"/open\""),
        (
            "/a/b",
            "\"/a/b\" is nested; a mount is a single segment under the root, like \"/a\"",
        ),
        ("//a", "\"//a\" is nested"),
        ("/-", "\"/-\" is reserved for the server's own routes"),
        ("/..", "\"/..\" is not a usable name"),
        ("/a?b", "contains a character a mount name cannot have"),
    ];
    for (path, message) in cases {
        one_problem(
            &format!("{}{USER}", MOUNT.replace("\"/open\"", &format!("{path:?}"))),
            "mounts[0].path",
            &[message],
        );
    }
    one_problem(
        &format!("{}{USER}", MOUNT.replace("path = \"/open\"\n", "")),
        "mounts[0].path",
        &["missing; set it to the URL path of the mount, like \"/open\""],
    );
    // A dash inside a name is fine.
    assert_eq!(
        ok(&MOUNT.replace("/open", "/my-files")).mounts[0].path,
        "/my-files"
    );
}

#[test]
fn mount_paths_are_unique() {
    one_problem(
        &format!("{MOUNT}{}{USER}", MOUNT.replace("\"/open\"", "\"/open/\"")),
        "mounts[1].path",
        &["\"/open\" is already used by mounts[0]; give each mount its own path"],
    );
}

#[test]
fn the_root_mount_stands_alone() {
    one_problem(
        &format!("{}{}", MOUNT.replace("\"/open\"", "\"/\""), MOUNT),
        "mounts[0].path",
        &["\"/\" can only be used when it is the only mount"],
    );
}

#[test]
fn at_least_one_mount() {
    one_problem(
        USER,
        "mounts",
        &["no mounts are defined; add at least one [[mounts]] table"],
    );
}

#[test]
fn download_policies() {
    one_problem(
        &format!("{MOUNT}download = \"stream\"\n"),
        "mounts[0].download",
        &["\"stream\" is not a download policy; use one of: auto, redirect, proxy, proxy-url"],
    );
    for (name, policy) in [
        ("auto", DownloadPolicy::Auto),
        ("redirect", DownloadPolicy::Redirect),
        ("proxy", DownloadPolicy::Proxy),
    ] {
        let config = ok(&format!("{MOUNT}download = \"{name}\"\n"));
        assert_eq!(config.mounts[0].download, policy);
        assert_eq!(policy.to_string(), name);
    }
}

#[test]
fn proxy_url_needs_a_url_and_a_signing_key() {
    let found = problems(&format!("{MOUNT}download = \"proxy-url\"\n"));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with(
        "mounts[0].proxy_url: missing; download = \"proxy-url\" needs it: set it to the base URL"
    ));
    assert!(found[1].starts_with(
        "mounts[0].download: \"proxy-url\" signs download URLs with server.signing_key, which is not set"
    ));
    one_problem(
        &format!("[server]\nsigning_key = \"0123456789abcdef\"\n{MOUNT}download = \"proxy-url\"\nproxy_url = \"ftp://x\"\n"),
        "mounts[0].proxy_url",
        &["\"ftp://x\" is not an http(s) URL; write it like \"https://dl.example.com\""],
    );
    one_problem(
        &format!("{MOUNT}download = \"proxy-url\"\nproxy_url = \"https://dl.example.com\"\n"),
        "mounts[0].download",
        &["add signing_key to [server]"],
    );
}

#[test]
fn open_client_id() {
    one_problem(
        &MOUNT.replace("client_id = \"id\"\n", ""),
        "mounts[0].client_id",
        &["missing; set it to the client id of your app on the 123 open platform"],
    );
    one_problem(
        &MOUNT.replace("client_id = \"id\"", "client_id = \" \""),
        "mounts[0].client_id",
        &["empty; set it to the client id"],
    );
}

#[test]
fn open_client_secret() {
    let without = MOUNT.replace("client_secret = \"secret\"\n", "");
    one_problem(
        &without,
        "mounts[0].client_secret",
        &["missing; set client_secret, or client_secret_env to the name of an environment variable"],
    );
    one_problem(
        &format!("{MOUNT}client_secret_env = \"S\"\n"),
        "mounts[0].client_secret",
        &["set either client_secret or client_secret_env, not both"],
    );
    one_problem(
        &MOUNT.replace("client_secret = \"secret\"", "client_secret = \"\""),
        "mounts[0].client_secret",
        &["empty; set it to your app's client secret"],
    );

    let with_env = format!("{without}client_secret_env = \"PAN_SECRET\"\n");
    let config = parse_env(&with_env, &[("PAN_SECRET", "from-env")]).unwrap();
    let BackendConfig::Open(open) = &config.mounts[0].backend else {
        panic!("an open mount")
    };
    assert_eq!(open.client_secret.expose(), "from-env");

    assert_eq!(
        problems_env(&with_env, &[]),
        ["mounts[0].client_secret_env: the environment variable PAN_SECRET is not set; export it \
          before starting, or put the secret in mounts[0].client_secret"]
    );
    assert_eq!(
        problems_env(&with_env, &[("PAN_SECRET", "")]),
        ["mounts[0].client_secret_env: the environment variable PAN_SECRET is empty; set it to the \
          secret before starting, or put the secret in mounts[0].client_secret"]
    );
    one_problem(
        &format!("{without}client_secret_env = \"\"\n"),
        "mounts[0].client_secret_env",
        &["empty; set it to the name of an environment variable"],
    );
}

#[test]
fn open_api_base_and_durations() {
    one_problem(
        &format!("{MOUNT}api_base = \"open-api.123pan.com\"\n"),
        "mounts[0].api_base",
        &[
            "is not a URL",
            "write it like \"https://open-api.123pan.com\"",
        ],
    );
    one_problem(
        &format!("{MOUNT}api_base = \"https://x.example/?a=b\"\n"),
        "mounts[0].api_base",
        &["must not have a query or a fragment"],
    );
    one_problem(
        &format!("{MOUNT}cache_ttl = \"10\"\n"),
        "mounts[0].cache_ttl",
        &["\"10\" is not a duration: time unit needed, for example 10sec or 10ms"],
    );
    one_problem(
        &format!("{MOUNT}direct_link_valid = \"0\"\n"),
        "mounts[0].direct_link_valid",
        &["must be longer than 0s"],
    );
}

#[test]
fn traffic_budgets_and_ttls_by_depth() {
    let config = ok(&format!(
        "{MOUNT}traffic_budget = \"9GiB\"\ncache_ttl_by_depth = {{ 1 = \"1m\", 0 = \"10m\" }}\n{USER}\n[[clients]]\nuser_agent = \"Jellyfin\"\ntraffic_budget = \"500MiB\"\n"
    ));
    assert_eq!(config.mounts[0].traffic_budget, Some(9 << 30));
    assert_eq!(
        config.mounts[0].cache_ttl_by_depth,
        [(0, Duration::from_secs(600)), (1, Duration::from_secs(60))]
    );
    assert_eq!(config.clients[0].traffic_budget, Some(500 << 20));
    assert_eq!(ok(&format!("{MOUNT}{USER}")).mounts[0].traffic_budget, None);
    one_problem(
        &format!("{MOUNT}traffic_budget = \"9 GiBs\"\n"),
        "mounts[0].traffic_budget",
        &["\"9 GiBs\" is not a size", "like \"9GiB\""],
    );
    one_problem(
        &format!("{MOUNT}traffic_budget = \"0\"\n"),
        "mounts[0].traffic_budget",
        &["would stop every download"],
    );
    one_problem(
        &format!("{MOUNT}{USER}\n[[clients]]\nuser_agent = \"a\"\ntraffic_budget = \"lots\"\n"),
        "clients[0].traffic_budget",
        &["is not a size"],
    );
    one_problem(
        &format!("{MOUNT}cache_ttl_by_depth = {{ top = \"1m\" }}\n"),
        "mounts[0].cache_ttl_by_depth.top",
        &["is not a folder depth"],
    );
    one_problem(
        &format!("{MOUNT}cache_ttl_by_depth = {{ 0 = \"soon\" }}\n"),
        "mounts[0].cache_ttl_by_depth.0",
        &["is not a duration"],
    );
}

#[test]
fn user_names() {
    one_problem(
        &format!("{MOUNT}{USER}{USER}"),
        "users[1].name",
        &["\"alice\" is already defined by users[0]; user names must be unique"],
    );
    one_problem(
        &format!("{MOUNT}{}", USER.replace("\"alice\"", "\"\"")),
        "users[0].name",
        &["empty; set it to the user's login name"],
    );
    one_problem(
        &format!("{MOUNT}{}", USER.replace("\"alice\"", "\"a:b\"")),
        "users[0].name",
        &["must not contain \":\""],
    );
    one_problem(
        &format!("{MOUNT}{}", USER.replace("name = \"alice\"\n", "")),
        "users[0].name",
        &["missing; set it to the user's login name"],
    );
}

#[test]
fn user_password_hashes() {
    one_problem(
        &format!("{MOUNT}{}", USER.replace(HASH, "hunter2")),
        "users[0].password_hash",
        &[
            "not a PHC password hash",
            "generate one with `pan123-webdav hash-password`",
        ],
    );
    one_problem(
        &format!(
            "{MOUNT}{}",
            USER.replace(HASH, "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo")
        ),
        "users[0].password_hash",
        &["uses the algorithm \"pbkdf2-sha256\"; only argon2 hashes"],
    );
    one_problem(
        &format!(
            "{MOUNT}{}",
            USER.replace(&format!("password_hash = \"{HASH}\"\n"), "")
        ),
        "users[0].password_hash",
        &["missing; generate one with `pan123-webdav hash-password`"],
    );
    let found = problems(&format!(
        "{MOUNT}{}",
        USER.replace(HASH, "$argon2id$v=19$m=8,t=1,p=1$bad")
    ));
    assert!(
        !found[0].contains("bad"),
        "the hash must not be echoed: {found:?}"
    );
}

#[test]
fn user_mounts() {
    one_problem(
        &format!("{MOUNT}{USER}mounts = [\"/open\", \"/movies\"]\n"),
        "users[0].mounts[1]",
        &["no mount has the path \"/movies\"; the mounts are: /open (or use \"*\" for all)"],
    );
    one_problem(
        &format!("{MOUNT}{USER}mounts = []\n"),
        "users[0].mounts",
        &["empty, so this user could see nothing"],
    );
    let config = ok(&format!("{MOUNT}{USER}mounts = [\"open\"]\n"));
    assert_eq!(config.users[0].mounts, ["/open"]);
}

#[test]
fn all_problems_are_collected() {
    let text = r#"
[server]
listen = "nowhere"
sign_ttl = "forever"

[[users]]
name = "alice"
password_hash = "x"
mounts = ["/nope"]

[[mounts]]
path = "/a/b"
backend = "open"
clinet_id = "id"
download = "proxy-url"
"#;
    let err = parse_env(text, &[]).unwrap_err();
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.listen",
            "server.sign_ttl",
            "mounts[0].clinet_id",
            "mounts[0].path",
            "mounts[0].proxy_url",
            "mounts[0].download",
            "mounts[0].client_secret",
            "users[0].password_hash",
            "users[0].mounts[0]",
        ]
    );
    assert_eq!(err.to_string().lines().count(), keys.len());
    assert!(err
        .to_string()
        .lines()
        .all(|line| line.starts_with("/etc/pan/config.toml: ")));
}

#[test]
fn load_reports_an_unreadable_file() {
    let err = load(Path::new("/nonexistent/pan.toml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/nonexistent/pan.toml: cannot read the file:"),
        "{err}"
    );
}

const SHARE: &str = r#"
[[mounts]]
path = "/s"
backend = "share"
share_key = "abc-DEF"
"#;

#[test]
fn share_mounts() {
    let config = ok(&format!("{SHARE}{USER}"));
    let BackendConfig::Share(share) = &config.mounts[0].backend else {
        panic!("a share mount")
    };
    assert_eq!(share.share_key, "abc-DEF");
    assert_eq!(share.api_base, "https://yun.123pan.com");
    assert_eq!(share.root_id, 0);
    assert!(share.share_password.is_none() && share.access_token.is_none());
    assert_eq!(config.mounts[0].backend.kind(), "share");

    let config = ok(&format!(
        "{SHARE}share_password = \"pw12\"\nroot_id = 7\naccess_token = \"tok\"\n\
         api_base = \"http://127.0.0.1:9/\"\n{USER}"
    ));
    let BackendConfig::Share(share) = &config.mounts[0].backend else {
        panic!("a share mount")
    };
    assert_eq!(
        share.share_password.as_ref().map(Secret::expose),
        Some("pw12")
    );
    assert_eq!(share.access_token.as_ref().map(Secret::expose), Some("tok"));
    assert_eq!(
        (share.root_id, share.api_base.as_str()),
        (7, "http://127.0.0.1:9")
    );
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("pw12") && !shown.contains("tok\""),
        "{shown}"
    );

    one_problem(
        &format!("{}{USER}", SHARE.replace("share_key = \"abc-DEF\"\n", "")),
        "mounts[0].share_key",
        &["missing; set it to the last part of the share's URL"],
    );
    one_problem(
        &format!(
            "{}{USER}",
            SHARE.replace("abc-DEF", "https://www.123pan.com/s/abc-DEF.html")
        ),
        "mounts[0].share_key",
        &["write only the part after /s/, without .html, like \"abc-DEF\""],
    );
    one_problem(
        &format!("{SHARE}api_base = \"https://yun.123pan.com/b/api\"\n{USER}"),
        "mounts[0].api_base",
        &["includes the API path", "like \"https://yun.123pan.com\""],
    );
    one_problem(
        &format!("{SHARE}client_id = \"x\"\n{USER}"),
        "mounts[0].client_id",
        &["not a key of backend \"share\" (it belongs to backend \"open\")"],
    );
}

fn link_mount(urls: &str, extra: &str) -> String {
    format!("\n[[mounts]]\npath = \"/l\"\nbackend = \"link\"\nurls = '''\n{urls}'''\n{extra}{USER}")
}

#[test]
fn link_mounts() {
    let config = ok(&link_mount(
        "100:https://h/1/a.bin\nFilms:\n  https://h/1/f%20g.mkv\n",
        "",
    ));
    let BackendConfig::Link(link) = &config.mounts[0].backend else {
        panic!("a link mount")
    };
    assert_eq!(link.tree.files().count(), 2);
    assert!(link.direct_link_key.is_none());
    assert_eq!(link.direct_link_valid, Duration::from_secs(1800));

    let config = ok(&link_mount(
        "https://h/1/a.bin\n",
        "direct_link_key = \"k\"\nuid = 1\ndirect_link_valid = \"1h\"\n",
    ));
    let BackendConfig::Link(link) = &config.mounts[0].backend else {
        panic!("a link mount")
    };
    assert_eq!(link.uid, 1);
    assert_eq!(link.direct_link_valid, Duration::from_secs(3600));
    assert_eq!(link.direct_link_key.as_ref().map(Secret::expose), Some("k"));
    assert_eq!(link.auth_key_path, AuthKeyPath::Auto, "the default");

    let config = ok(&link_mount(
        "https://h/1/a.bin\n",
        "direct_link_key = \"k\"\nuid = 1\nauth_key_path = \"encoded\"\n",
    ));
    let BackendConfig::Link(link) = &config.mounts[0].backend else {
        panic!("a link mount")
    };
    assert_eq!(link.auth_key_path, AuthKeyPath::Fixed(PathForm::Encoded));
    one_problem(
        &link_mount("https://h/1/a.bin\n", "auth_key_path = \"raw\"\n"),
        "mounts[0].auth_key_path",
        &["\"raw\" is not a path form; use one of: auto, encoded, decoded"],
    );

    one_problem(
        &link_mount("https://h/1/a.bin\n", "direct_link_key = \"k\"\n"),
        "mounts[0].uid",
        &["missing; direct_link_key signs links with your account's uid"],
    );
    one_problem(
        &format!("\n[[mounts]]\npath = \"/l\"\nbackend = \"link\"\n{USER}"),
        "mounts[0].urls",
        &["missing; list the files"],
    );
    one_problem(
        &link_mount("\n  \n", ""),
        "mounts[0].urls",
        &["has no files"],
    );
    one_problem(
        &link_mount("https://h/1/a.bin\n", "direct_link_valid = \"0s\"\n"),
        "mounts[0].direct_link_valid",
        &["must be longer than 0s"],
    );
}

/// Each error case of the grammar (docs/123.md, web §3.2) is reported by `check` on `urls`, with
/// the line number, the line and the reason.
#[test]
fn link_urls_errors_name_line_and_reason() {
    let cases: &[(&str, &str)] = &[
        (
            "ok.txt:\n   https://a/b\n",
            "line 2 (\"   https://a/b\"): indented by 3 spaces, which is not a multiple of 2",
        ),
        (
            "123: https://a/b\n",
            "line 1 (\"123: https://a/b\"): the text before the URL (\"123: \") must end with ':'",
        ),
        (
            ":https://a/b\n",
            "line 1 (\":https://a/b\"): nothing before the ':'",
        ),
        (
            "name:https://a/b\n",
            "line 1 (\"name:https://a/b\"): the file size \"name\" must be an integer",
        ),
        (
            "https://a/b\njust text\n",
            "line 2 (\"just text\"): a file line needs an http:// or https:// URL",
        ),
        (
            "https://a/?u=http://b\n",
            "line 1 (\"https://a/?u=http://b\"): the text before the URL (\"https://a/?u=\") must \
             end with ':'",
        ),
        (
            "1:yesterday:https://a/b\n",
            "line 1 (\"1:yesterday:https://a/b\"): the modification time \"yesterday\" must be a \
             Unix timestamp",
        ),
    ];
    for (urls, message) in cases {
        one_problem(
            &link_mount(urls, ""),
            "mounts[0].urls",
            &[message, "write one file per line as [size:][mtime:]URL"],
        );
    }
}

#[test]
fn clients_table_overrides_the_built_in_rows() {
    let config = ok(&format!(
        "{MOUNT}{USER}\n[[clients]]\nuser_agent = \"kodi\"\ndownload = \"mount\"\n\n[[clients]]\nuser_agent = \"rclone\"\njunk_local = false\n"
    ));
    let rows: Vec<(&str, ClientDownload, bool, bool)> = config
        .clients
        .iter()
        .map(|r| (r.user_agent.as_str(), r.download, r.junk_local, r.builtin))
        .collect();
    assert_eq!(
        rows,
        [
            ("kodi", ClientDownload::Mount, true, false),
            ("rclone", ClientDownload::Mount, false, false),
            (
                "Microsoft-WebDAV-MiniRedir",
                ClientDownload::Proxy,
                true,
                true
            ),
            ("RaiDrive", ClientDownload::Proxy, true, true),
            ("Lavf", ClientDownload::Proxy, true, true),
        ]
    );
    assert_eq!(ok(&format!("{MOUNT}{USER}")).clients, builtin_clients());
}

#[test]
fn clients_table_problems() {
    one_problem(
        &format!("{MOUNT}{USER}\n[[clients]]\ndownload = \"proxy\"\n"),
        "clients[0].user_agent",
        &["missing", "part of the client's User-Agent"],
    );
    one_problem(
        &format!("{MOUNT}{USER}\n[[clients]]\nuser_agent = \"Kodi\"\ndownload = \"redirect\"\n"),
        "clients[0].download",
        &[
            "\"redirect\" is not a client download override",
            "mount, proxy",
        ],
    );
    one_problem(
        &format!("{MOUNT}{USER}\n[[clients]]\nuser_agent = \"\"\n"),
        "clients[0].user_agent",
        &["empty, so it would match every client"],
    );
    one_problem(
        &format!(
            "{MOUNT}{USER}\n[[clients]]\nuser_agent = \"a\"\n[[clients]]\nuser_agent = \"A\"\n"
        ),
        "clients[1].user_agent",
        &["already used by clients[0]"],
    );
    one_problem(
        &format!("{MOUNT}{USER}\n[[clients]]\nuser_agent = \"a\"\njunk_locale = true\n"),
        "clients[0].junk_locale",
        &[
            "unknown key (did you mean junk_local?)",
            "user_agent, download, junk_local",
        ],
    );
}

const WEB: &str = r#"
[[mounts]]
path = "/me"
backend = "web"
username = "13800138000"
password = "pw"
"#;

#[test]
fn web_mounts() {
    let config = ok(&format!("{WEB}{USER}"));
    let BackendConfig::Web(web) = &config.mounts[0].backend else {
        panic!("a web mount")
    };
    assert_eq!(web.username, "13800138000");
    assert_eq!(web.password.expose(), "pw");
    assert_eq!(web.api_base, "https://yun.123pan.com");
    assert_eq!(web.login_base, "https://login.123pan.com");
    assert_eq!(web.root_id, 0);
    assert_eq!(config.mounts[0].backend.kind(), "web");
    assert!(
        !format!("{config:?}").contains("\"pw\""),
        "the password is redacted"
    );
    let config = parse_env(
        &format!(
            "{}password_env = \"PW\"\nroot_id = 9\napi_base = \"http://127.0.0.1:1/\"\nlogin_base = \"http://127.0.0.1:2\"\n{USER}",
            WEB.replace("password = \"pw\"\n", "")
        ),
        &[("PW", "from-env")],
    )
    .expect("config");
    let BackendConfig::Web(web) = &config.mounts[0].backend else {
        panic!("a web mount")
    };
    assert_eq!(web.password.expose(), "from-env");
    assert_eq!(
        (web.root_id, web.api_base.as_str(), web.login_base.as_str()),
        (9, "http://127.0.0.1:1", "http://127.0.0.1:2")
    );
    one_problem(
        &format!("{WEB}password_env = \"PW\"\n{USER}"),
        "mounts[0].password",
        &["set either password or password_env, not both"],
    );
    one_problem(
        &format!("{}{USER}", WEB.replace("password = \"pw\"\n", "")),
        "mounts[0].password",
        &["missing; set password, or password_env"],
    );
    one_problem(
        &format!("{WEB}login_base = \"https://login.123pan.com/api\"\n{USER}"),
        "mounts[0].login_base",
        &["includes the API path"],
    );
    one_problem(
        &format!("{WEB}share_key = \"x\"\n{USER}"),
        "mounts[0].share_key",
        &["not a key of backend \"web\" (it belongs to backend \"share\")"],
    );
}

#[test]
fn plain_passwords_are_refused_with_the_way_out() {
    let text = format!(
        "{MOUNT}\n[[users]]\nname = \"bob\"\npassword = \"hunter2\"\npassword_hash = \"{HASH}\"\n"
    );
    one_problem(
        &text,
        "users[0].password",
        &["plain passwords are not accepted", "hash-password"],
    );
}

#[test]
fn client_and_deadline_limits() {
    let server = ok(&format!("{MOUNT}{USER}")).server;
    assert_eq!(server.upstream_deadline, Duration::from_secs(30));
    assert_eq!(server.header_timeout, Duration::from_secs(10));
    assert_eq!(server.keepalive_timeout, Duration::from_secs(60));
    assert_eq!(server.body_idle_timeout, Duration::from_secs(60));
    assert_eq!(server.connections_per_ip, 64);
    let server = ok(&format!(
        "[server]\nupstream_deadline = \"5s\"\nheader_timeout = \"2s\"\nkeepalive_timeout = \"15s\"\nbody_idle_timeout = \"20s\"\nconnections_per_ip = 8\n{MOUNT}{USER}"
    ))
    .server;
    assert_eq!(server.upstream_deadline, Duration::from_secs(5));
    assert_eq!(server.header_timeout, Duration::from_secs(2));
    assert_eq!(server.keepalive_timeout, Duration::from_secs(15));
    assert_eq!(server.body_idle_timeout, Duration::from_secs(20));
    assert_eq!(server.connections_per_ip, 8);
    for key in [
        "upstream_deadline",
        "header_timeout",
        "keepalive_timeout",
        "body_idle_timeout",
    ] {
        one_problem(
            &format!("[server]\n{key} = \"0s\"\n{MOUNT}{USER}"),
            &format!("server.{key}"),
            &["must be longer than 0s"],
        );
        one_problem(
            &format!("[server]\n{key} = \"soon\"\n{MOUNT}{USER}"),
            &format!("server.{key}"),
            &["\"soon\" is not a duration"],
        );
    }
    one_problem(
        &format!("[server]\nconnections_per_ip = 0\n{MOUNT}{USER}"),
        "server.connections_per_ip",
        &["0 is out of range", "default 64"],
    );
}

#[test]
fn operations_keys() {
    let server = ok(&format!("{MOUNT}{USER}")).server;
    assert_eq!(server.ready_probe_interval, Duration::from_secs(30));
    assert!(!server.metrics_auth);
    assert_eq!(server.metrics_listen, None);
    let server = ok(&format!(
        "[server]\nready_probe_interval = \"5s\"\nmetrics_auth = true\nmetrics_listen = \"127.0.0.1:9090\"\n{MOUNT}{USER}"
    ))
    .server;
    assert_eq!(server.ready_probe_interval, Duration::from_secs(5));
    assert!(server.metrics_auth);
    assert_eq!(
        server.metrics_listen,
        Some("127.0.0.1:9090".parse().unwrap())
    );
    one_problem(
        &format!("[server]\nmetrics_listen = \"localhost\"\n{MOUNT}{USER}"),
        "server.metrics_listen",
        &[
            "\"localhost\" is not a socket address",
            "or remove the key to serve /-/metrics on listen",
        ],
    );
    one_problem(
        &format!("[server]\nready_probe_interval = \"0s\"\n{MOUNT}{USER}"),
        "server.ready_probe_interval",
        &["must be longer than 0s"],
    );
}

#[test]
fn base_path_is_a_plain_prefix() {
    assert_eq!(ok(&format!("{MOUNT}{USER}")).server.base_path, "");
    assert_eq!(
        ok(&format!("[server]\nbase_path = \"/\"\n{MOUNT}{USER}"))
            .server
            .base_path,
        ""
    );
    assert_eq!(
        ok(&format!("[server]\nbase_path = \"/a/dav\"\n{MOUNT}{USER}"))
            .server
            .base_path,
        "/a/dav"
    );
    let long = format!("/{}", "a".repeat(300));
    for (bad, why) in [
        ("dav", "must start with /"),
        ("/dav/", "must not end with /"),
        ("/a/../b", "segment"),
        ("/a//b", "segment"),
        ("/d%20v", "letters, digits"),
        ("/-/d", "/-/"),
        (long.as_str(), "longer than 256"),
    ] {
        one_problem(
            &format!("[server]\nbase_path = \"{bad}\"\n{MOUNT}{USER}"),
            "server.base_path",
            &[why, "write it like \"/dav\""],
        );
    }
}

// ---- Open mount logins (issue 21) ------------------------------------------------------------

fn open_mount(keys: &str) -> String {
    format!("[[mounts]]\npath = \"/open\"\nbackend = \"open\"\n{keys}\n{USER}")
}

#[test]
fn open_login_modes_resolve() {
    let login = |keys: &str| match &parse_env(&open_mount(keys), &[]).unwrap().mounts[0].backend {
        BackendConfig::Open(o) => o.login.clone(),
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        login("client_id = \"id\"\nclient_secret = \"s\""),
        OpenLogin::Developer
    ));
    assert!(matches!(
        login("client_id = \"app\"\nrefresh_token = \"rt\""),
        OpenLogin::OAuth { refresh_token, redirect_uri: None, .. } if refresh_token.expose() == "rt"
    ));
    assert!(matches!(
        login("client_id = \"app\"\nclient_secret = \"s\"\nrefresh_token = \"rt\""),
        OpenLogin::OAuth { .. }
    ));
    assert!(matches!(
        login("renew_url = \"https://renew.example/123cloud/renewapi\"\nrefresh_token = \"rt\""),
        OpenLogin::Renew { url, .. } if url == "https://renew.example/123cloud/renewapi"
    ));
    assert!(matches!(
        login("access_token = \"eyJ.x.y\""),
        OpenLogin::AccessToken { .. }
    ));
}

#[test]
fn open_login_mixes_and_gaps_are_explained() {
    let found = problems(&open_mount(
        "client_id = \"id\"\nclient_secret = \"s\"\naccess_token = \"tok\"",
    ));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(
            "mounts[0].access_token: set together with client_id, client_secret; an Open mount \
             logs in exactly one way: client_id + client_secret (developer keys); refresh_token"
        ),
        "{found:#?}"
    );
    let found = problems(&open_mount(
        "renew_url = \"https://r.example/\"\nrefresh_token = \"rt\"\nclient_id = \"x\"",
    ));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with("mounts[0].renew_url: set together with client_id;"));
    let found = problems(&open_mount("renew_url = \"https://r.example/\""));
    assert_eq!(
        found,
        [
            "mounts[0].refresh_token: missing; set it to a refresh token issued by a renewal \
          service; it is only the first seed, later ones are kept in state_dir"
        ]
    );
    let found = problems(&open_mount("refresh_token = \"rt\""));
    assert_eq!(
        found,
        [
            "mounts[0].client_id: missing; set it to the client id of your OAuth app (the refresh \
          token belongs to it)"
        ]
    );
    let found = problems(&open_mount(
        "renew_url = \"ftp://x\"\nrefresh_token = \"rt\"",
    ));
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(found[0].starts_with("mounts[0].renew_url: "), "{found:#?}");
    let found = problems(&open_mount("access_token = \" \""));
    assert_eq!(
        found,
        [
            "mounts[0].access_token: empty; paste the access token, or use one of the other ways \
          to log in"
        ]
    );
}

#[test]
fn cluster_section() {
    // Without it, no cluster.
    assert!(ok(&format!("{MOUNT}{USER}")).cluster.is_none());
    let config = ok(&format!(
        "{MOUNT}{USER}\n[cluster]\nredis_url = \"redis://:pw@redis.lan:6379/1\"\ninstances = 3\n"
    ));
    let cluster = config.cluster.expect("cluster");
    assert_eq!(cluster.redis_url.expose(), "redis://:pw@redis.lan:6379/1");
    assert_eq!(cluster.instances, Some(3));
    assert!(!format!("{cluster:?}").contains("pw"));
    let no_instances = ok(&format!(
        "{MOUNT}{USER}\n[cluster]\nredis_url = \"redis://127.0.0.1\"\n"
    ));
    assert_eq!(no_instances.cluster.expect("cluster").instances, None);

    one_problem(
        &format!("{MOUNT}{USER}\n[cluster]\ninstances = 2\n"),
        "cluster.redis_url",
        &["missing", "redis://", "remove the [cluster] section"],
    );
    one_problem(
        &format!("{MOUNT}{USER}\n[cluster]\nredis_url = \"http://:hunter2@redis.lan\"\n"),
        "cluster.redis_url",
        &["scheme is \"http\"", "redis://127.0.0.1:6379"],
    );
    assert!(!problems(&format!(
        "{MOUNT}{USER}\n[cluster]\nredis_url = \"http://:hunter2@redis.lan\"\n"
    ))[0]
        .contains("hunter2"));
    one_problem(
        &format!("{MOUNT}{USER}\n[cluster]\nredis_url = \"redis.lan:6379\"\n"),
        "cluster.redis_url",
        &["redis://"],
    );
    one_problem(
        &format!("{MOUNT}{USER}\n[cluster]\nredis_url = \"redis://r\"\ninstances = 0\n"),
        "cluster.instances",
        &["0 is out of range", "1 to 1000"],
    );
    one_problem(
        &format!("{MOUNT}{USER}\n[cluster]\nredis_uri = \"redis://r\"\n"),
        "cluster.redis_uri",
        &[
            "did you mean redis_url?",
            "valid keys in [cluster] are: redis_url, instances",
        ],
    );
    one_problem(
        &format!("cluster = \"redis://r\"\n{MOUNT}{USER}"),
        "cluster",
        &["expected a table"],
    );
}

#[test]
fn cluster_advertise_url() {
    let redis = "[cluster]\nredis_url = \"redis://127.0.0.1\"\n";
    // Derived from a listen address others can reach, base_path added.
    let config = ok(&format!(
        "[server]\nlisten = \"10.0.0.5:8080\"\nbase_path = \"/dav\"\n{MOUNT}{USER}\n{redis}"
    ));
    let cluster = config.cluster.as_ref().expect("cluster");
    assert_eq!(
        cluster.advertise(&config.server).as_deref(),
        Some("http://10.0.0.5:8080/dav")
    );
    // Given: used as is.
    let config = ok(&format!(
        "[server]\nlisten = \"0.0.0.0:8080\"\n{MOUNT}{USER}\n{redis}advertise_url = \"http://gw-a:8080/\"\n"
    ));
    let cluster = config.cluster.as_ref().expect("cluster");
    assert_eq!(
        cluster.advertise(&config.server).as_deref(),
        Some("http://gw-a:8080")
    );
    // A wildcard listen address without it, and a bad one, are refused.
    one_problem(
        &format!("[server]\nlisten = \"0.0.0.0:8080\"\n{MOUNT}{USER}\n{redis}"),
        "cluster.advertise_url",
        &["missing", "wildcard"],
    );
    one_problem(
        &format!("{MOUNT}{USER}\n{redis}advertise_url = \"redis://gw-a:8080\"\n"),
        "cluster.advertise_url",
        &["scheme"],
    );
    one_problem(
        &format!("{MOUNT}{USER}\n{redis}advertise_url = \"http://gw-a:8080/dav\"\n"),
        "cluster.advertise_url",
        &["only scheme, host and port"],
    );
}
