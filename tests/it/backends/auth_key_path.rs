//! `auth_key` over the encoded or the decoded path (docs/123.md, web §6 and §7): each
//! `auth_key_path` value of a mount (`auto`, `encoded`, `decoded`) under each reading of the
//! direct-link host (emulator switch `auth_key_path`), on link mounts and Open direct-link mounts:
//! what works, what is refused, the exact direct-host calls, redirects after learning, and `check
//! --probe`.

use std::process::Command;

use crate::common::*;
use pan123_emulator::{AuthKeyPath, Emulator, EmulatorConfig, Switches};

const KEY: &str = "auth-key-path-key";

/// Files whose two path forms differ (a space, Chinese), and one whose forms are equal.
const SPACED: (&str, &str, &str) = ("/direct/a b.txt", "a%20b.txt", "spaced");
const CHINESE: (&str, &str, &str) = ("/direct/视频.txt", "%E8%A7%86%E9%A2%91.txt", "chinese");
const PLAIN: (&str, &str, &str) = ("/direct/plain.txt", "plain.txt", "plain");

fn cfg(host: AuthKeyPath) -> EmulatorConfig {
    EmulatorConfig {
        direct_link_space: Some("/direct".into()),
        direct_link_key: Some(KEY.into()),
        switches: Switches {
            auth_key_path: host,
            ..Switches::default()
        },
        ..Default::default()
    }
}

fn seed(emu: &Emulator) -> String {
    for (path, _, body) in [SPACED, CHINESE, PLAIN] {
        emu.put_file(path, body);
    }
    seed_urls(emu)
}

fn signing(emu: &Emulator, form: &str) -> String {
    format!(
        "direct_link_key = \"{KEY}\"\nuid = {}\nauth_key_path = \"{form}\"\n",
        emu.uid()
    )
}

fn name(host: AuthKeyPath) -> &'static str {
    match host {
        AuthKeyPath::Decoded => "decoded",
        AuthKeyPath::Encoded => "encoded",
    }
}

/// A redirect to `file` on `mount`: the Location, and the direct-host calls it cost.
async fn redirect(env: &TestEnv, mount: &str, file: &str) -> (String, u64) {
    env.emu.reset_stats();
    let res = env
        .req("GET", &format!("/{mount}/{file}"))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 302, "{mount}/{file}");
    (header(&res, "location"), env.emu.stats().calls("direct"))
}

/// What the direct-link host answers a client that follows `location`.
async fn follow(location: &str) -> (u16, String) {
    let res = reqwest::get(location).await.expect("direct host");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

/// Every mount setting under one host reading: fixed forms are signed without a check (and
/// work only when they are the host's); `auto` checks the first name whose forms differ (one
/// HEAD when its first guess, decoded, is right, two when not), then redirects with the learned
/// form at no cost; names whose forms are equal are never checked; a proxying mount with the
/// wrong fixed form gets one fresh signature, then 502.
async fn one_reading(host: AuthKeyPath) {
    let env = TestEnv::start(cfg(host), |emu| {
        let urls = seed(emu);
        let wrong = match host {
            AuthKeyPath::Decoded => "encoded",
            AuthKeyPath::Encoded => "decoded",
        };
        [
            link_mount("/auto", "redirect", &urls, &signing(emu, "auto")),
            link_mount("/enc", "redirect", &urls, &signing(emu, "encoded")),
            link_mount("/dec", "redirect", &urls, &signing(emu, "decoded")),
            link_mount("/autoproxy", "proxy", &urls, &signing(emu, "auto")),
            link_mount("/wrongproxy", "proxy", &urls, &signing(emu, wrong)),
        ]
        .concat()
    })
    .await;
    let reading = name(host);

    // auto: the first differing name costs its checks, and the link works.
    let checks = match host {
        AuthKeyPath::Decoded => 1,
        AuthKeyPath::Encoded => 2,
    };
    let (location, calls) = redirect(&env, "auto", SPACED.1).await;
    assert_eq!(calls, checks, "{reading}: checks of the first name");
    assert_eq!(follow(&location).await, (200, SPACED.2.into()), "{reading}");
    // After learning: redirects with the learned form, no call.
    for (_, file, body) in [CHINESE, SPACED, PLAIN] {
        let (location, calls) = redirect(&env, "auto", file).await;
        assert_eq!(calls, 0, "{reading}: {file} after learning");
        assert_eq!(
            follow(&location).await,
            (200, body.into()),
            "{reading}: {file}"
        );
    }

    // Fixed forms: no check; the host's form works, the other is refused (plain names work).
    for (mount, form) in [("enc", AuthKeyPath::Encoded), ("dec", AuthKeyPath::Decoded)] {
        for (_, file, body) in [SPACED, CHINESE, PLAIN] {
            let (location, calls) = redirect(&env, mount, file).await;
            assert_eq!(calls, 0, "{reading}: {mount}/{file}");
            let want = if form == host || file == PLAIN.1 {
                (200, body.to_string())
            } else {
                let (status, _) = follow(&location).await;
                assert_eq!(status, 403, "{reading}: {mount}/{file} is refused");
                continue;
            };
            assert_eq!(follow(&location).await, want, "{reading}: {mount}/{file}");
        }
    }

    // A proxying auto mount: its checks, then one GET; then one GET per file.
    env.emu.reset_stats();
    let res = env
        .get_following(&format!("/autoproxy/{}", SPACED.1), &[])
        .await;
    assert_eq!(res.status().as_u16(), 200, "{reading}");
    assert_eq!(res.text().await.expect("body"), SPACED.2);
    assert_eq!(env.emu.stats().calls("direct"), checks + 1, "{reading}");
    env.emu.reset_stats();
    let res = env
        .get_following(&format!("/autoproxy/{}", CHINESE.1), &[])
        .await;
    assert_eq!(res.text().await.expect("body"), CHINESE.2);
    assert_eq!(env.emu.stats().calls("direct"), 1, "{reading}: learned");

    // A proxying mount with the wrong fixed form: refused, re-signed once, refused: 502.
    env.emu.reset_stats();
    let res = env
        .req("GET", &format!("/wrongproxy/{}", SPACED.1))
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 502, "{reading}");
    assert_eq!(env.emu.stats().calls("direct"), 2, "{reading}");
    let res = env
        .get_following(&format!("/wrongproxy/{}", PLAIN.1), &[])
        .await;
    assert_eq!(res.text().await.expect("body"), PLAIN.2, "{reading}");
    assert_no_wrong_host(&env.emu);
}

#[tokio::test]
async fn link_mounts_under_a_decoding_host() {
    one_reading(AuthKeyPath::Decoded).await;
}

#[tokio::test]
async fn link_mounts_under_an_encoding_host() {
    one_reading(AuthKeyPath::Encoded).await;
}

/// An Open mount with direct links learns the same way: under an encoding host, the first
/// differing name costs one `direct-link/url` and two checks; the next only its
/// `direct-link/url`.
#[tokio::test]
async fn open_direct_links_learn_the_form() {
    for host in [AuthKeyPath::Decoded, AuthKeyPath::Encoded] {
        let env = TestEnv::start(cfg(host), |emu| {
            seed(emu);
            let id = emu.lookup("/direct").map(|e| e.id).unwrap_or(0);
            open_mount(
                "/o",
                "redirect",
                &format!("root_id = {id}\ndirect_link = true\ndirect_link_key = \"{KEY}\"\n"),
            )
        })
        .await;
        let reading = name(host);
        // Warm the listing so the counts below are the link's alone.
        let (status, _) = env.propfind("/o/", "1").await;
        assert_eq!(status, 207);
        let checks = match host {
            AuthKeyPath::Decoded => 1,
            AuthKeyPath::Encoded => 2,
        };
        let (location, calls) = redirect(&env, "o", SPACED.1).await;
        assert_eq!(calls, checks, "{reading}");
        assert_eq!(follow(&location).await, (200, SPACED.2.into()), "{reading}");
        let (location, calls) = redirect(&env, "o", CHINESE.1).await;
        assert_eq!(calls, 0, "{reading}: learned");
        assert_eq!(
            follow(&location).await,
            (200, CHINESE.2.into()),
            "{reading}"
        );
        assert_eq!(
            env.emu.stats().calls("/api/v1/direct-link/url"),
            1,
            "{reading}"
        );
    }
}

/// `check --probe` says which form the host accepts, asked with a name whose forms differ; a
/// fixed form the host refuses fails the probe (exit 1) with the fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probe_reports_the_accepted_form() {
    let env = TestEnv::start(cfg(AuthKeyPath::Encoded), |emu| {
        let urls = seed(emu);
        link_mount("/unsigned", "redirect", &urls, "")
    })
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let id = env.emu.lookup("/direct").map(|e| e.id).unwrap_or(0);
    let probe = |file: &str, mounts: String| {
        let config = dir.path().join(file);
        let text = format!(
            "[server]\nstate_dir = \"{}\"\n\n{}",
            dir.path().join("state").display(),
            fill_hosts(&mounts, &env.emu, "http://unused")
                .replace("proxy_url = \"http://unused\"\n", "")
        );
        std::fs::write(&config, text).expect("write config");
        let out = Command::new(env!("CARGO_BIN_EXE_pan123-webdav"))
            .args(["check", "--probe", "-c"])
            .arg(&config)
            .output()
            .expect("check runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let urls = seed_urls(&env.emu);
    let good = [
        link_mount("/auto", "redirect", &urls, &signing(&env.emu, "auto")),
        open_mount(
            "/o",
            "redirect",
            &format!("root_id = {id}\ndirect_link = true\ndirect_link_key = \"{KEY}\"\n"),
        ),
    ]
    .concat();
    let (code, stdout) = tokio::task::block_in_place(|| probe("good.toml", good));
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "probe /auto: auth_key path form: the direct-link host accepts \"encoded\" (asked with \"/a b.txt\")"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("probe /o: auth_key path form: the direct-link host accepts \"encoded\" (asked with \"/"),
        "{stdout}"
    );
    let bad = link_mount("/dec", "redirect", &urls, &signing(&env.emu, "decoded"));
    let (code, stdout) = tokio::task::block_in_place(|| probe("bad.toml", bad));
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains(
            "probe /dec: auth_key path form: the direct-link host accepts \"encoded\" (asked with \"/a b.txt\"), but auth_key_path = \"decoded\": set it to \"encoded\" or \"auto\""
        ),
        "{stdout}"
    );
}

/// The `urls` text of the seeded files (already in the emulator).
fn seed_urls(emu: &Emulator) -> String {
    [SPACED, CHINESE, PLAIN]
        .iter()
        .map(|(path, _, body)| format!("{}:{}\n", body.len(), direct_url(emu, path)))
        .collect()
}
