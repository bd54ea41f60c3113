//! `[[mounts]]`: the keys every mount has, the mount path, and the checks across mounts.

use super::*;

pub(super) fn resolve_mount(
    report: &mut Report,
    index: usize,
    table: toml::Table,
    has_signing_key: bool,
    has_public_url: bool,
    env: Env,
) -> MountConfig {
    let mut s = Section::new(format!("mounts[{index}]"));
    let common = fields_of::<RawMount>();
    let (common_table, mut backend_table): (toml::Table, toml::Table) = table
        .into_iter()
        .partition(|(key, _)| common.contains(&key.as_str()));
    let raw: RawMount = s.deserialize(report, common_table);

    // The backend decides which of the other keys are valid.
    let kind = match raw.backend.as_deref() {
        None => {
            s.missing(
                report,
                "backend",
                &format!("set it to one of: {}", available_backends()),
            );
            None
        }
        Some(name) => match BackendKind::from_name(name) {
            Some(kind) => Some(kind),
            None => {
                report.add(
                    s.key("backend"),
                    format!(
                        "unknown backend \"{name}\"; use one of: {}",
                        available_backends()
                    ),
                );
                None
            }
        },
    };

    let mut valid: Vec<&str> = common.to_vec();
    match kind {
        Some(kind) => {
            valid.extend(kind.keys());
            s.strip_unknown(report, &mut backend_table, &valid, |key| {
                let owners: Vec<String> = BackendKind::ALL
                    .into_iter()
                    .filter(|other| *other != kind && other.keys().contains(&key))
                    .map(|other| format!("\"{}\"", other.name()))
                    .collect();
                let problem = if owners.is_empty() {
                    "unknown key".to_string()
                } else {
                    format!(
                        "not a key of backend \"{}\" (it belongs to backend {})",
                        kind.name(),
                        owners.join(" and ")
                    )
                };
                let fix = format!(
                    "valid keys for a mount with backend = \"{}\" are: {}",
                    kind.name(),
                    list(&valid)
                );
                (problem, fix)
            });
        }
        None => {
            // Without a usable backend, only keys that no backend knows are reported.
            valid.extend(BackendKind::ALL.into_iter().flat_map(|kind| kind.keys()));
            s.strip_unknown(report, &mut backend_table, &valid, |_| {
                let fix = format!(
                    "valid keys for a mount are: {}, and those of its backend",
                    list(common)
                );
                ("unknown key".to_string(), fix)
            });
        }
    }

    let path = mount_path(report, &s, raw.path);
    let download = match raw.download {
        None => DownloadPolicy::Auto,
        Some(name) => DownloadPolicy::from_name(&name).unwrap_or_else(|| {
            let names: Vec<&str> = DownloadPolicy::ALL.iter().map(|p| p.as_str()).collect();
            report.add(
                s.key("download"),
                format!(
                    "\"{name}\" is not a download policy; use one of: {}",
                    list(&names)
                ),
            );
            DownloadPolicy::Auto
        }),
    };
    let proxy_url = raw
        .proxy_url
        .map(|url| http_url(report, s.key("proxy_url"), &url, "https://dl.example.com"));
    if download == DownloadPolicy::ProxyUrl {
        if proxy_url.is_none() && !has_public_url && !s.is_bad("proxy_url") {
            report.add(
                s.key("proxy_url"),
                "missing; download = \"proxy-url\" needs it: set it to the base URL at which this \
                 server's /-/d/ route is reachable, like \"https://dl.example.com\" (or set \
                 server.public_url, which it then defaults to)",
            );
        }
        if !has_signing_key {
            report.add(
                s.key("download"),
                "\"proxy-url\" signs download URLs with server.signing_key, which is not set; add \
                 signing_key to [server] (at least 16 random characters, e.g. from \
                 `openssl rand -hex 32`)",
            );
        }
    }
    let cache_ttl = duration(
        report,
        &s,
        "cache_ttl",
        raw.cache_ttl,
        DEFAULT_CACHE_TTL,
        true,
    );
    let cache_ttl_by_depth = ttl_by_depth(report, &s, raw.cache_ttl_by_depth);
    let traffic_budget = traffic_budget(report, s.key("traffic_budget"), raw.traffic_budget);

    let mut upload = (UploadMode::default(), DEFAULT_UPLOAD_SLICES);
    let mut delete = DeleteMode::default();
    let backend = match kind {
        Some(BackendKind::Open) => {
            let raw_open: RawOpen = s.deserialize(report, backend_table);
            upload = super::upload::resolve_mount_upload(
                report,
                &s,
                raw_open.upload.clone(),
                raw_open.upload_slices,
            );
            delete = super::super::delete::resolve(report, &s, raw_open.delete.clone());
            BackendConfig::Open(resolve_open(report, &s, raw_open, env))
        }
        Some(BackendKind::Share) => {
            let raw_share: RawShare = s.deserialize(report, backend_table);
            BackendConfig::Share(resolve_share(report, &s, raw_share))
        }
        Some(BackendKind::Link) => {
            let raw_link: RawLink = s.deserialize(report, backend_table);
            BackendConfig::Link(resolve_link(report, &s, raw_link))
        }
        Some(BackendKind::Web) => {
            let raw_web: RawWeb = s.deserialize(report, backend_table);
            upload = super::upload::resolve_mount_upload(
                report,
                &s,
                raw_web.upload.clone(),
                raw_web.upload_slices,
            );
            delete = super::super::delete::resolve(report, &s, raw_web.delete.clone());
            BackendConfig::Web(resolve_web(report, &s, raw_web, env))
        }
        // The backend's problem is reported already; a placeholder keeps the other checks going.
        _ => BackendConfig::Open(OpenMountConfig {
            client_id: String::new(),
            client_secret: Secret::from(""),
            login: OpenLogin::Developer,
            root_id: 0,
            api_base: String::new(),
            direct_link: false,
            direct_link_key: None,
            direct_link_valid: DEFAULT_DIRECT_LINK_VALID,
            auth_key_path: AuthKeyPath::default(),
        }),
    };

    MountConfig {
        path,
        download,
        proxy_url,
        cache_ttl,
        cache_ttl_by_depth,
        traffic_budget,
        read_only: raw.read_only.unwrap_or(false),
        anonymous: raw.anonymous.unwrap_or(false),
        backend,
        upload: upload.0,
        upload_slices: upload.1,
        delete,
    }
}

pub(super) fn available_backends() -> String {
    let names: Vec<&str> = BackendKind::ALL
        .into_iter()
        .map(BackendKind::name)
        .collect();
    list(&names)
}

/// Normalises a mount path to "/name" (or "/"), reporting what is not allowed.
pub(super) fn mount_path(report: &mut Report, s: &Section, raw: Option<String>) -> String {
    let Some(raw) = raw else {
        s.missing(
            report,
            "path",
            "set it to the URL path of the mount, like \"/open\"",
        );
        return String::new();
    };
    let key = s.key("path");
    let Some(rest) = raw.strip_prefix('/') else {
        report.add(
            key,
            format!("\"{raw}\" must start with \"/\"; write \"/{raw}\""),
        );
        return String::new();
    };
    let name = rest.trim_end_matches('/');
    if name.contains('/') {
        let first = name
            .split('/')
            .find(|seg| !seg.is_empty())
            .unwrap_or("name");
        report.add(
            key,
            format!(
                "\"{raw}\" is nested; a mount is a single segment under the root, like \"/{first}\""
            ),
        );
        return String::new();
    }
    if name == "-" {
        report.add(
            key,
            "\"/-\" is reserved for the server's own routes (/-/d/, /-/healthz, ...); choose another name",
        );
        return String::new();
    }
    if name == "." || name == ".." {
        report.add(
            key,
            format!("\"{raw}\" is not a usable name; choose another"),
        );
        return String::new();
    }
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '\\' | '?' | '#' | '%'))
    {
        report.add(
            key,
            format!(
                "\"{raw}\" contains a character a mount name cannot have (control characters, \
                 \\, ?, #, %); choose another name"
            ),
        );
        return String::new();
    }
    format!("/{name}")
}

/// Paths are unique, and "/" stands alone.
pub(super) fn check_mount_paths(report: &mut Report, mounts: &[MountConfig]) {
    for (i, mount) in mounts.iter().enumerate() {
        // An empty path had its problem reported already.
        if mount.path.is_empty() {
            continue;
        }
        if let Some(first) = mounts[..i].iter().position(|m| m.path == mount.path) {
            report.add(
                format!("mounts[{i}].path"),
                format!(
                    "\"{}\" is already used by mounts[{first}]; give each mount its own path",
                    mount.path
                ),
            );
        } else if mount.path == "/" && mounts.len() > 1 {
            report.add(
                format!("mounts[{i}].path"),
                "\"/\" can only be used when it is the only mount; give each mount its own path, \
                 like \"/open\"",
            );
        }
    }
}
