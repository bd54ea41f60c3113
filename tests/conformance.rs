//! One conformance suite, run over every backend × download policy. A backend row is a
//! fixture plus a mount; the cases are shared. Later backends add a row, not a copy.

mod common;

use common::*;
use pan123_emulator::{Emulator, EmulatorConfig};

/// Hostile but legal names: everything 123 accepts (its forbidden characters are
/// `" \ / : * ? | > <`) that tends to break encoders, decoders and normalisers.
const HOSTILE_NAMES: &[&str] = &[
    "plain.txt",
    "a b  c.txt",
    "电影 清单.txt",
    "100% real #1.txt",
    "%41 literal percent.txt",
    "semi;colon&amp=+.txt",
    "[brackets]{braces}(parens).txt",
    "'single' quotes.txt",
    "emoji 🎬.mkv",
    ".hidden",
    "trailing dots..",
    "~tilde$dollar@at,comma",
    "caf\u{e9} nfc.txt",
];

/// The size of the file ranges are read from: a few CDN chunks.
const BIG: usize = 300_000;

/// Where the rows put their files, inside the account.
fn seed(emu: &Emulator, root: &str) {
    emu.put_file(&format!("{root}/big.bin"), bytes_of(BIG, 9));
    for (i, name) in HOSTILE_NAMES.iter().enumerate() {
        emu.put_file(&format!("{root}/names/{name}"), bytes_of(100 + i, i as u8));
    }
    emu.put_file(
        &format!("{root}/sub/deeper/leaf.txt"),
        "leaf".as_bytes().to_vec(),
    );
}

/// Starts a row: `direct` puts the files in the emulator's direct-link space and mounts that
/// folder with direct links on.
async fn row(download: &str, direct: bool) -> TestEnv {
    let cfg = EmulatorConfig {
        direct_link_space: Some("/direct".into()),
        ..Default::default()
    };
    let root = if direct { "/direct" } else { "/lib" };
    TestEnv::start(cfg, |emu| {
        seed(emu, root);
        let id = emu.lookup(root).map(|e| e.id).unwrap_or(0);
        let extra = format!(
            "root_id = {id}\n{}",
            if direct { "direct_link = true\n" } else { "" }
        );
        open_mount("/m", download, &extra)
    })
    .await
}

mod cases {
    use super::*;

    pub async fn root_lists_the_mount(env: TestEnv) {
        let (status, body) = env.propfind("/", "1").await;
        assert_eq!(status, 207, "{body}");
        assert!(body.contains("<D:href>/m/</D:href>"), "{body}");
    }

    pub async fn lists_hostile_names_with_properties(env: TestEnv) {
        let (status, body) = env.propfind("/m/names/", "1").await;
        assert_eq!(status, 207, "{body}");
        assert_eq!(responses(&body), HOSTILE_NAMES.len() + 1, "{body}");
        for (i, name) in HOSTILE_NAMES.iter().enumerate() {
            let md5 = env
                .emu
                .lookup(&format!("{}/names/{name}", env_root(&env)))
                .expect("seeded")
                .md5;
            assert!(
                body.contains(&format!("MD5:{md5}")),
                "checksum of {name} missing:\n{body}"
            );
            assert!(
                body.contains(&format!(
                    "<D:getcontentlength>{}</D:getcontentlength>",
                    100 + i
                )),
                "{name}"
            );
        }
        assert!(body.contains("<D:getetag>"), "{body}");
    }

    pub async fn gets_hostile_names(env: TestEnv) {
        for (i, name) in HOSTILE_NAMES.iter().enumerate() {
            let path = format!(
                "/m/names/{}",
                pan123_webdav::server::paths::encode_segment(name)
            );
            let res = env.get_following(&path, &[]).await;
            assert_eq!(res.status().as_u16(), 200, "GET {name}");
            let body = res.bytes().await.expect("body");
            assert_eq!(
                body.as_ref(),
                bytes_of(100 + i, i as u8).as_slice(),
                "bytes of {name}"
            );
        }
    }

    pub async fn ranges_are_exact(env: TestEnv) {
        let all = bytes_of(BIG, 9);
        let cases: &[(&str, usize, usize)] = &[
            ("bytes=0-0", 0, 0),
            ("bytes=0-99", 0, 99),
            ("bytes=150000-150999", 150_000, 150_999),
            ("bytes=299999-299999", BIG - 1, BIG - 1),
            ("bytes=-500", BIG - 500, BIG - 1),
            ("bytes=299000-", 299_000, BIG - 1),
            ("bytes=299000-999999999", 299_000, BIG - 1),
        ];
        for (range, start, end) in cases {
            let res = env.get_following("/m/big.bin", &[("Range", range)]).await;
            assert_eq!(res.status().as_u16(), 206, "{range}");
            let cr = res
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            assert_eq!(cr, format!("bytes {start}-{end}/{BIG}"), "{range}");
            let body = res.bytes().await.expect("body");
            assert_eq!(body.as_ref(), &all[*start..=*end], "{range}");
        }
        let res = env
            .get_following("/m/big.bin", &[("Range", "bytes=400000-")])
            .await;
        assert_eq!(res.status().as_u16(), 416);
        let full = env.get_following("/m/big.bin", &[]).await;
        assert_eq!(full.status().as_u16(), 200);
        assert_eq!(full.bytes().await.expect("body").as_ref(), all.as_slice());
    }

    pub async fn head_is_metadata_only(env: TestEnv) {
        env.emu.reset_stats();
        let res = env.req("HEAD", "/m/big.bin").send().await.expect("head");
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(
            res.headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()),
            Some(BIG.to_string().as_str())
        );
        let md5 = env
            .emu
            .lookup(&format!("{}/big.bin", env_root(&env)))
            .expect("seeded")
            .md5;
        assert_eq!(
            res.headers().get("etag").and_then(|v| v.to_str().ok()),
            Some(format!("\"{md5}\"").as_str())
        );
        assert_eq!(
            res.headers()
                .get("accept-ranges")
                .and_then(|v| v.to_str().ok()),
            Some("bytes")
        );
        let stats = env.emu.stats();
        assert_eq!(stats.calls("/api/v1/file/download_info"), 0);
        assert_eq!(stats.calls("/api/v1/direct-link/url"), 0);
    }

    pub async fn folders_answer_get_and_head(env: TestEnv) {
        let res = env.req("HEAD", "/m/sub/").send().await.expect("head");
        assert_eq!(res.status().as_u16(), 200);
        let res = env.req("GET", "/m/names/").send().await.expect("get");
        assert_eq!(res.status().as_u16(), 200);
        let html = res.text().await.expect("html");
        assert!(
            html.contains("semi;colon&amp;amp=+.txt"),
            "names are escaped: {html}"
        );
        let (status, _) = env.propfind("/m/nope/", "1").await;
        assert_eq!(status, 404);
    }

    pub async fn etag_is_one_validator(env: TestEnv) {
        let md5 = env
            .emu
            .lookup(&format!("{}/big.bin", env_root(&env)))
            .expect("seeded")
            .md5;
        let res = env
            .get_following("/m/big.bin", &[("If-None-Match", &format!("\"{md5}\""))])
            .await;
        assert_eq!(res.status().as_u16(), 304);
        let (_, body) = env.propfind("/m/big.bin", "0").await;
        assert!(body.contains(&md5), "{body}");
    }

    fn env_root(env: &TestEnv) -> &'static str {
        if env.emu.lookup("/direct/big.bin").is_some() {
            "/direct"
        } else {
            "/lib"
        }
    }
}

macro_rules! row {
    ($name:ident, $download:expr, $direct:expr) => {
        mod $name {
            use super::*;
            #[tokio::test]
            async fn root_lists_the_mount() {
                cases::root_lists_the_mount(row($download, $direct).await).await
            }
            #[tokio::test]
            async fn lists_hostile_names_with_properties() {
                cases::lists_hostile_names_with_properties(row($download, $direct).await).await
            }
            #[tokio::test]
            async fn gets_hostile_names() {
                cases::gets_hostile_names(row($download, $direct).await).await
            }
            #[tokio::test]
            async fn ranges_are_exact() {
                cases::ranges_are_exact(row($download, $direct).await).await
            }
            #[tokio::test]
            async fn head_is_metadata_only() {
                cases::head_is_metadata_only(row($download, $direct).await).await
            }
            #[tokio::test]
            async fn folders_answer_get_and_head() {
                cases::folders_answer_get_and_head(row($download, $direct).await).await
            }
            #[tokio::test]
            async fn etag_is_one_validator() {
                cases::etag_is_one_validator(row($download, $direct).await).await
            }
        }
    };
}

// The matrix: backend × download policy.
row!(open_redirect, "redirect", false);
row!(open_proxy, "proxy", false);
row!(open_proxy_url, "proxy-url", false);
row!(open_auto, "auto", false);
row!(open_direct_auto, "auto", true);
row!(open_direct_proxy, "proxy", true);
