//! Link mounts beyond the conformance suite: the `urls` grammar's errors as `check` reports
//! them, sizes learned by HEAD, `auth_key` signing and re-signing, unknown sizes, and
//! validators that survive a restart.

use std::process::Command;
use std::time::Duration;

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig, Fault, FaultKind};

const KEY: &str = "link-signing-key";

fn cfg(key: Option<&str>) -> EmulatorConfig {
    EmulatorConfig {
        direct_link_space: Some("/direct".into()),
        direct_link_key: key.map(str::to_string),
        ..Default::default()
    }
}

fn seed(emu: &Emulator) {
    emu.put_file("/direct/a.txt", "hello");
    emu.put_file("/direct/sized.bin", bytes_of(5000, 1));
    emu.put_file("/direct/unsized.bin", bytes_of(7000, 2));
}

fn signing(emu: &Emulator, valid: &str) -> String {
    format!(
        "direct_link_key = \"{KEY}\"\nuid = {}\ndirect_link_valid = \"{valid}\"\n",
        emu.uid()
    )
}

/// `check` (the real binary) reports each error case of the `urls` grammar (docs/123.md, web §3.2) with the key, the
/// line number, the line and the reason, and exits 2.
#[test]
fn check_reports_every_parse_error_with_line_and_reason() {
    let hash =
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$Bq4mCCO6ySGXVXzQ4HVjS6IYt5LTbkjnOdxHUqHRI0c";
    let cases: &[(&str, &str)] = &[
        (
            "Films:\n   https://a/b",
            "line 2 (\"   https://a/b\"): indented by 3 spaces, which is not a multiple of 2",
        ),
        (
            "123: https://a/b",
            "line 1 (\"123: https://a/b\"): the text before the URL (\"123: \") must end with ':'",
        ),
        (":https://a/b", "line 1 (\":https://a/b\"): nothing before the ':'"),
        (
            "https://a/ok\nname:https://a/b",
            "line 2 (\"name:https://a/b\"): the file size \"name\" must be an integer",
        ),
        (
            "just text",
            "line 1 (\"just text\"): a file line needs an http:// or https:// URL",
        ),
        (
            "https://a/?u=http://b",
            "line 1 (\"https://a/?u=http://b\"): the text before the URL (\"https://a/?u=\") must end with ':'",
        ),
    ];
    for (urls, expected) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("pan.toml");
        let text = format!(
            "[[users]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n\n[[mounts]]\npath = \"/l\"\nbackend = \"link\"\nurls = '''\n{urls}\n'''\n"
        );
        std::fs::write(&path, text).expect("write");
        let out = Command::new(env!("CARGO_BIN_EXE_pan123-webdav"))
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .expect("run check");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{urls:?}: {stderr}");
        assert!(
            stderr.contains(&format!("mounts[0].urls: {expected}")),
            "{urls:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

/// Files without a size in the text get one by HEAD at start-up; with a key, those HEADs are
/// signed (the emulator refuses unsigned ones). A file whose size cannot be learned stays
/// listed, with size 0, and does not stop the others.
#[tokio::test]
async fn head_sized_files_show_their_size() {
    let env = TestEnv::start(cfg(Some(KEY)), |emu| {
        seed(emu);
        let urls = format!(
            "5000:{}\n{}\n{}\n{}\n",
            direct_url(emu, "/direct/sized.bin"),
            direct_url(emu, "/direct/unsized.bin"),
            direct_url(emu, "/direct/a.txt"),
            direct_url(emu, "/direct/gone.bin"),
        );
        link_mount("/l", "proxy", &urls, &signing(emu, "30m"))
    })
    .await;
    let (status, body) = env.propfind("/l/", "1").await;
    assert_eq!(status, 207, "{body}");
    for (name, size) in [
        ("sized.bin", 5000),
        ("unsized.bin", 7000),
        ("a.txt", 5),
        ("gone.bin", 0),
    ] {
        let at = body.find(&format!("/l/{name}</D:href>")).expect(name);
        let rest = &body[at..];
        let end = rest.find("</D:response>").unwrap_or(rest.len());
        assert!(
            rest[..end].contains(&format!("<D:getcontentlength>{size}</D:getcontentlength>")),
            "{name}: {}",
            &rest[..end]
        );
    }
    // One HEAD per unsized file (the listing waited for the start-up probe's), and for the
    // missing one a one-byte GET as well: 2 + 2.
    assert_eq!(env.emu.stats().calls("direct"), 4);
    let res = env.get_following("/l/unsized.bin", &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.bytes().await.expect("body").as_ref(),
        bytes_of(7000, 2).as_slice()
    );
}

/// A size the gateway does not know is never served as an empty 200: proxying mounts send the
/// client to the link instead.
#[tokio::test]
async fn an_unknown_size_is_redirected_never_an_empty_200() {
    let env = TestEnv::start(cfg(None), |emu| {
        seed(emu);
        // The file exists, but both mounts' HEAD and one-byte GET fail.
        emu.inject(Fault {
            endpoint: "direct".into(),
            kind: FaultKind::Http {
                status: 500,
                count: 4,
            },
        });
        let urls = format!("{}\n", direct_url(emu, "/direct/unsized.bin"));
        format!(
            "{}{}",
            link_mount("/p", "proxy", &urls, ""),
            link_mount("/u", "proxy-url", &urls, "")
        )
    })
    .await;
    for mount in ["/p", "/u"] {
        let (status, body) = env.propfind(&format!("{mount}/"), "1").await;
        assert_eq!(status, 207, "{body}");
        assert!(
            body.contains("<D:getcontentlength>0</D:getcontentlength>"),
            "{body}"
        );
    }
    assert_eq!(env.emu.stats().calls("direct"), 4, "the fault is used up");
    for mount in ["/p", "/u"] {
        let res = env
            .req("GET", &format!("{mount}/unsized.bin"))
            .send()
            .await
            .expect("get");
        assert_eq!(res.status().as_u16(), 302, "{mount}");
        let mut location = header(&res, "location");
        if location.contains("/-/d/") {
            // proxy-url: the signed route redirects too, instead of proxying.
            let hop = env.client.get(&location).send().await.expect("signed");
            assert_eq!(hop.status().as_u16(), 302, "{mount}");
            location = header(&hop, "location");
        }
        assert!(location.ends_with("/direct/unsized.bin"), "{location}");
        let fetched = reqwest::get(&location).await.expect("direct");
        assert_eq!(fetched.status().as_u16(), 200);
        assert_eq!(fetched.bytes().await.expect("body").len(), 7000);
    }
}

/// With a key, links carry `auth_key`; one is reused (cached) while it is valid, and once it
/// has expired the gateway hands out a freshly signed one.
#[tokio::test]
async fn an_expired_auth_key_is_re_signed() {
    let env = TestEnv::start(cfg(Some(KEY)), |emu| {
        seed(emu);
        let urls = format!("5:{}\n", direct_url(emu, "/direct/a.txt"));
        format!(
            "{}{}",
            link_mount("/long", "redirect", &urls, &signing(emu, "30m")),
            link_mount("/short", "redirect", &urls, &signing(emu, "1s"))
        )
    })
    .await;
    // A 30-minute link is cached: the same URL twice.
    let first = env.req("GET", "/long/a.txt").send().await.expect("get");
    assert_eq!(first.status().as_u16(), 302);
    let long = header(&first, "location");
    assert!(long.contains("auth_key="), "{long}");
    let again = env.req("GET", "/long/a.txt").send().await.expect("get");
    assert_eq!(header(&again, "location"), long);
    assert_eq!(
        reqwest::get(&long)
            .await
            .expect("direct")
            .text()
            .await
            .expect("t"),
        "hello"
    );

    // A 1-second link expires at the CDN; the next GET carries a new signature that works.
    let res = env.req("GET", "/short/a.txt").send().await.expect("get");
    let old = header(&res, "location");
    assert_eq!(
        reqwest::get(&old).await.expect("direct").status().as_u16(),
        200
    );
    // Let the expiry (whole seconds) pass; no assertion on time, only on what the CDN says.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(
        reqwest::get(&old).await.expect("direct").status().as_u16(),
        403
    );
    let res = env.req("GET", "/short/a.txt").send().await.expect("get");
    let fresh = header(&res, "location");
    assert_ne!(fresh, old);
    let fetched = reqwest::get(&fresh).await.expect("direct");
    assert_eq!(fetched.status().as_u16(), 200);
    assert_eq!(fetched.text().await.expect("body"), "hello");
    // The long link's signature really has an expiry: the CDN refuses it an hour later.
    env.emu.set_clock_offset(3600);
    assert_eq!(
        reqwest::get(&long).await.expect("direct").status().as_u16(),
        403
    );
}

/// When the CDN refuses a cached signed link, the proxy gets a freshly signed one once.
#[tokio::test]
async fn a_refused_signed_link_is_re_signed_by_the_proxy() {
    let env = TestEnv::start(cfg(Some(KEY)), |emu| {
        seed(emu);
        let urls = format!("5000:{}\n", direct_url(emu, "/direct/sized.bin"));
        link_mount("/l", "proxy", &urls, &signing(emu, "30m"))
    })
    .await;
    let all = bytes_of(5000, 1);
    let res = env
        .get_following("/l/sized.bin", &[("Range", "bytes=0-9")])
        .await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(res.bytes().await.expect("body").as_ref(), &all[..10]);
    env.emu.reset_stats();
    env.emu.inject(Fault {
        endpoint: "direct".into(),
        kind: FaultKind::Http {
            status: 403,
            count: 1,
        },
    });
    let res = env
        .get_following("/l/sized.bin", &[("Range", "bytes=10-19")])
        .await;
    assert_eq!(res.status().as_u16(), 206);
    assert_eq!(res.bytes().await.expect("body").as_ref(), &all[10..20]);
    assert_eq!(
        env.emu.stats().calls("direct"),
        2,
        "the refused link, then a fresh one"
    );
}

/// ETags and modification times come from the text (and HEAD sizes), never from the clock:
/// two starts of the gateway show the same validators.
#[tokio::test]
async fn etags_are_equal_across_two_starts() {
    let mut env = TestEnv::start(cfg(None), |emu| {
        seed(emu);
        let urls = format!(
            "5:{}\n5000:1600000000:{}\nDeep:\n  {}\n",
            direct_url(emu, "/direct/a.txt"),
            direct_url(emu, "/direct/sized.bin"),
            direct_url(emu, "/direct/unsized.bin"),
        );
        link_mount("/l", "auto", &urls, "")
    })
    .await;
    let paths = ["/l/a.txt", "/l/sized.bin", "/l/Deep/unsized.bin"];
    let mut before = Vec::new();
    for path in paths {
        let res = env.req("HEAD", path).send().await.expect("head");
        assert_eq!(res.status().as_u16(), 200, "{path}");
        before.push((header(&res, "etag"), header(&res, "last-modified")));
    }
    assert_eq!(
        before[0].1, "Thu, 01 Jan 1970 00:00:00 GMT",
        "no mtime: the epoch"
    );
    assert_eq!(before[1].1, "Sun, 13 Sep 2020 12:26:40 GMT");
    assert!(before.iter().all(|(etag, _)| etag.len() > 2));
    assert_ne!(before[0].0, before[1].0);
    let (_, propfind_before) = env.propfind("/l/Deep/", "1").await;

    env.start_gateway().await;
    for (path, old) in paths.iter().zip(&before) {
        let res = env.req("HEAD", path).send().await.expect("head");
        assert_eq!(
            &(header(&res, "etag"), header(&res, "last-modified")),
            old,
            "{path}"
        );
    }
    let (_, propfind_after) = env.propfind("/l/Deep/", "1").await;
    let etag_of = |xml: &str| {
        let start = xml.find("<D:getetag>").map(|i| i + "<D:getetag>".len());
        start.and_then(|s| {
            xml[s..]
                .find("</D:getetag>")
                .map(|e| xml[s..s + e].to_string())
        })
    };
    assert!(etag_of(&propfind_before).is_some(), "{propfind_before}");
    assert_eq!(etag_of(&propfind_before), etag_of(&propfind_after));
    // The validator works for conditional requests (answered before any redirect).
    let res = env
        .get_following("/l/sized.bin", &[("If-None-Match", &before[1].0)])
        .await;
    assert_eq!(res.status().as_u16(), 304);
}
