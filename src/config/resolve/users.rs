//! `[[users]]`: names, password hashes and the mounts each may use.

use super::*;

pub(super) fn resolve_user(
    report: &mut Report,
    index: usize,
    mut table: toml::Table,
    mount_paths: &[&str],
) -> UserConfig {
    let mut s = Section::new(format!("users[{index}]"));
    let valid = fields_of::<RawUser>();
    s.strip_unknown(report, &mut table, valid, |key| {
        if key == "password" {
            // A plain password in a config file is a secret at rest; only hashes are accepted.
            return (
                "plain passwords are not accepted".to_string(),
                "run `pan123-webdav hash-password`, put its output in password_hash, and remove password".to_string(),
            );
        }
        let fix = format!("valid keys for a user are: {}", list(valid));
        ("unknown key".to_string(), fix)
    });
    let raw: RawUser = s.deserialize(report, table);

    let name = match raw.name {
        None => {
            s.missing(report, "name", "set it to the user's login name");
            String::new()
        }
        Some(name) => {
            if name.is_empty() {
                report.add(s.key("name"), "empty; set it to the user's login name");
            } else if name.contains(':') {
                report.add(
                    s.key("name"),
                    "must not contain \":\": HTTP Basic authentication splits the user name from \
                     the password at the first colon; choose another name",
                );
            }
            name
        }
    };
    let password_hash = match raw.password_hash {
        None => {
            s.missing(
                report,
                "password_hash",
                "generate one with `pan123-webdav hash-password`",
            );
            String::new()
        }
        Some(hash) => {
            if let Err(problem) = check_password_hash(&hash) {
                report.add(
                    s.key("password_hash"),
                    format!("{problem}; generate one with `pan123-webdav hash-password`"),
                );
            }
            hash
        }
    };
    let mounts = match raw.mounts {
        None => vec!["*".to_string()],
        Some(entries) => {
            if entries.is_empty() {
                report.add(
                    s.key("mounts"),
                    "empty, so this user could see nothing; list mount paths like [\"/open\"], \
                     or [\"*\"] for all mounts",
                );
            }
            entries
                .iter()
                .enumerate()
                .map(|(j, entry)| user_mount(report, &s, j, entry, mount_paths))
                .collect()
        }
    };
    UserConfig {
        name,
        password_hash,
        mounts,
        write: raw.write.unwrap_or(false),
    }
}

/// One entry of a user's `mounts`: "*", or the path of a mount ("/open"; "open" is accepted).
pub(super) fn user_mount(
    report: &mut Report,
    s: &Section,
    j: usize,
    entry: &str,
    mounts: &[&str],
) -> String {
    if entry == "*" {
        return entry.to_string();
    }
    let path = format!("/{}", entry.trim_matches('/'));
    if !mounts.contains(&path.as_str()) {
        let mut known: Vec<&str> = mounts.iter().copied().filter(|p| !p.is_empty()).collect();
        known.dedup();
        report.add(
            format!("{}[{j}]", s.key("mounts")),
            format!(
                "no mount has the path \"{entry}\"; the mounts are: {} (or use \"*\" for all)",
                list(&known)
            ),
        );
    }
    path
}

pub(super) fn check_user_names(report: &mut Report, users: &[UserConfig]) {
    for (i, user) in users.iter().enumerate() {
        if user.name.is_empty() {
            continue;
        }
        if let Some(first) = users[..i].iter().position(|u| u.name == user.name) {
            report.add(
                format!("users[{i}].name"),
                format!(
                    "\"{}\" is already defined by users[{first}]; user names must be unique",
                    user.name
                ),
            );
        }
    }
}

/// Checks that a password hash is an argon2 PHC string that can be verified. The message never
/// includes the hash.
/// The most memory (KiB) one password hash may ask argon2 for.
const MAX_ARGON2_M_COST: u32 = 256 * 1024;

pub(crate) fn check_password_hash(phc: &str) -> Result<(), String> {
    use argon2::password_hash::PasswordHash;
    let hash = PasswordHash::new(phc).map_err(|err| format!("not a PHC password hash ({err})"))?;
    if argon2::Algorithm::try_from(hash.algorithm).is_err() {
        return Err(format!(
            "uses the algorithm \"{}\"; only argon2 hashes ($argon2id$...) are supported",
            hash.algorithm
        ));
    }
    if hash.salt.is_none() || hash.hash.is_none() {
        return Err("has no salt or no hash value".to_string());
    }
    let params = argon2::Params::try_from(&hash)
        .map_err(|err| format!("has invalid argon2 parameters ({err})"))?;
    // Each check holds m KiB; two run at once. 256 MiB is far above what hash-password writes.
    if params.m_cost() > MAX_ARGON2_M_COST {
        return Err(format!(
            "asks for {} MiB of memory per check (m={}); at most {} MiB is allowed: make a new hash with `pan123-webdav hash-password`",
            params.m_cost() / 1024,
            params.m_cost(),
            MAX_ARGON2_M_COST / 1024
        ));
    }
    Ok(())
}
