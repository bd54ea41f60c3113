//! One conformance suite, run over every backend × download policy. A backend row is a
//! fixture plus a mount; the cases are shared. Later backends add a row, not a copy.

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig, Host};

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

/// Files in a folder that lists on more than one page (123 pages by 100).
const MANY: usize = 150;

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
    for i in 0..MANY {
        emu.put_file(&format!("{root}/many/f{i:03}.txt"), format!("file {i}"));
    }
}

/// The backends of the matrix. Each is a fixture (where the files live and how the mount
/// reaches them); the cases are shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// Open API, `download_info` links.
    Open,
    /// Open API over the account's direct-link space.
    OpenDirect,
    /// A password-protected share of the folder.
    Share,
    /// A personal account through the web API (login, signed listing, the `params` hop).
    Web,
    /// A link tree of the direct-link space's URLs; the `names/` files have no size in the
    /// text, so their sizes come from HEAD requests.
    Link,
}

impl Backend {
    /// Where the files are, inside the account.
    fn root(self) -> &'static str {
        match self {
            Backend::Open | Backend::Share | Backend::Web => "/lib",
            Backend::OpenDirect | Backend::Link => "/direct",
        }
    }
}

/// One row: a backend under a download policy, with what the row expects of it. The
/// expectations are written in the table below, never asked of the backend (`capabilities()`),
/// so a backend that misreports itself fails its row instead of skipping the checks that would
/// catch it.
#[derive(Clone, Copy, Debug)]
struct Row {
    backend: Backend,
    download: &'static str,
    /// Listings carry 123's MD5 (ETag and `oc:checksums`). Whether the mount is writable and
    /// whether its links need headers decide which cases the row gets (`row!`).
    md5: bool,
}

/// The link tree of everything `seed` put under `/direct`.
fn link_urls(emu: &Emulator) -> String {
    let url = |p: &str| direct_url(emu, &format!("/direct{p}"));
    let mut text = format!("{BIG}:1700000000:{}\nnames:\n", url("/big.bin"));
    for name in HOSTILE_NAMES {
        text += &format!("  {}\n", url(&format!("/names/{name}")));
    }
    text += &format!(
        "sub:\n  deeper:\n    4:{}\nmany:\n",
        url("/sub/deeper/leaf.txt")
    );
    for i in 0..MANY {
        let len = format!("file {i}").len();
        text += &format!("  {len}:{}\n", url(&format!("/many/f{i:03}.txt")));
    }
    text
}

/// Starts a row's emulator and gateway, with one mount at `/m`.
async fn row(row: Row) -> TestEnv {
    let cfg = EmulatorConfig {
        direct_link_space: Some("/direct".into()),
        ..Default::default()
    };
    TestEnv::start(cfg, |emu| {
        let root = row.backend.root();
        seed(emu, root);
        let id = emu.lookup(root).map(|e| e.id).unwrap_or(0);
        match row.backend {
            Backend::Open => open_mount("/m", row.download, &format!("root_id = {id}\n")),
            Backend::OpenDirect => open_mount(
                "/m",
                row.download,
                &format!("root_id = {id}\ndirect_link = true\n"),
            ),
            Backend::Share => {
                emu.add_share("conformance", Some("pw42"), root);
                share_mount("/m", row.download, "conformance", Some("pw42"), "")
            }
            Backend::Web => web_mount("/m", row.download, &format!("root_id = {id}\n")),
            Backend::Link => link_mount("/m", row.download, &link_urls(emu), ""),
        }
    })
    .await
}

mod cases {
    use super::*;

    pub async fn root_lists_the_mount(env: &TestEnv, _row: Row) {
        let (status, body) = env.propfind("/", "1").await;
        assert_eq!(status, 207, "{body}");
        assert!(body.contains("<D:href>/m/</D:href>"), "{body}");
    }

    pub async fn lists_hostile_names_with_properties(env: &TestEnv, row: Row) {
        let (status, body) = env.propfind("/m/names/", "1").await;
        assert_eq!(status, 207, "{body}");
        assert_eq!(responses(&body), HOSTILE_NAMES.len() + 1, "{body}");
        for (i, name) in HOSTILE_NAMES.iter().enumerate() {
            let md5 = env
                .emu
                .lookup(&format!("{}/names/{name}", row.backend.root()))
                .expect("seeded")
                .md5;
            // A link tree has no MD5, and must never publish anything else as one.
            assert_eq!(
                body.contains(&format!("MD5:{md5}")),
                row.md5,
                "checksum of {name}:\n{body}"
            );
            assert!(
                body.contains(&format!(
                    "<D:getcontentlength>{}</D:getcontentlength>",
                    100 + i
                )),
                "{name}"
            );
        }
        assert_eq!(
            body.matches("<D:getetag>").count(),
            HOSTILE_NAMES.len(),
            "{body}"
        );
        assert!(body.contains("<D:getlastmodified>"), "{body}");
    }

    pub async fn lists_a_folder_of_several_pages(env: &TestEnv, _row: Row) {
        let (status, body) = env.propfind("/m/many/", "1").await;
        assert_eq!(status, 207, "{body}");
        assert_eq!(responses(&body), MANY + 1);
        for i in [0, 99, 100, MANY - 1] {
            assert!(
                body.contains(&format!("/m/many/f{i:03}.txt</D:href>")),
                "f{i:03}"
            );
        }
    }

    pub async fn reads_a_file_of_a_big_folder(env: &TestEnv, _row: Row) {
        let res = env.get_following("/m/many/f123.txt", &[]).await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.text().await.expect("body"), "file 123");
    }

    pub async fn nested_folders_resolve(env: &TestEnv, _row: Row) {
        let (status, body) = env.propfind("/m/sub/", "1").await;
        assert_eq!(status, 207, "{body}");
        assert!(body.contains("<D:href>/m/sub/deeper/</D:href>"), "{body}");
        let (status, body) = env.propfind("/m/sub/deeper/leaf.txt", "0").await;
        assert_eq!(status, 207, "{body}");
        assert!(
            body.contains("<D:getcontentlength>4</D:getcontentlength>"),
            "{body}"
        );
        let (status, _) = env.propfind("/m/sub/deeper/nope.txt", "0").await;
        assert_eq!(status, 404);
    }

    pub async fn reads_a_nested_file(env: &TestEnv, _row: Row) {
        let res = env.get_following("/m/sub/deeper/leaf.txt", &[]).await;
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.text().await.expect("body"), "leaf");
    }

    pub async fn gets_hostile_names(env: &TestEnv, _row: Row) {
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

    pub async fn ranges_are_exact(env: &TestEnv, _row: Row) {
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

    /// Under `redirect` a GET is a 302 to the upstream link.
    async fn redirected_to(env: &TestEnv) -> String {
        let res = env.req("GET", "/m/big.bin").send().await.expect("get");
        assert_eq!(res.status().as_u16(), 302);
        let location = header(&res, "location");
        assert!(location.starts_with("http"), "{location}");
        location
    }

    /// A redirect to a link any client can follow.
    pub async fn redirect_is_plain(env: &TestEnv, _row: Row) {
        let location = redirected_to(env).await;
        let fetched = reqwest::get(&location).await.expect("upstream");
        assert_eq!(fetched.status().as_u16(), 200);
        assert_eq!(fetched.bytes().await.expect("body").len(), BIG);
    }

    /// Where links need headers the client does not have (share: the Referer), the CDN refuses
    /// the plain follow-up and accepts it with the Referer, which is why `auto` proxies such
    /// mounts: the redirect is honest about what it is.
    pub async fn redirect_needs_the_referer(env: &TestEnv, _row: Row) {
        let location = redirected_to(env).await;
        let plain = reqwest::Client::new();
        let fetched = plain.get(&location).send().await.expect("upstream");
        assert_eq!(
            fetched.status().as_u16(),
            403,
            "refused without the Referer"
        );
        let with_referer = plain
            .get(&location)
            .header("Referer", format!("{}/", env.emu.host_url(Host::WebPro)))
            .send()
            .await
            .expect("upstream");
        assert_eq!(with_referer.status().as_u16(), 200);
        assert_eq!(with_referer.bytes().await.expect("body").len(), BIG);
    }

    pub async fn head_is_metadata_only(env: &TestEnv, row: Row) {
        // Let the start-up work finish first (a link mount's HEADs for missing sizes).
        let (status, _) = env.propfind("/m/names/", "1").await;
        assert_eq!(status, 207);
        env.emu.reset_stats();
        let res = env.req("HEAD", "/m/big.bin").send().await.expect("head");
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(header(&res, "content-length"), BIG.to_string());
        let etag = header(&res, "etag");
        if row.md5 {
            let md5 = env
                .emu
                .lookup(&format!("{}/big.bin", row.backend.root()))
                .expect("seeded")
                .md5;
            assert_eq!(etag, format!("\"{md5}\""));
        } else {
            assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
        }
        assert_eq!(header(&res, "accept-ranges"), "bytes");
        let stats = env.emu.stats();
        for upstream in [
            "/api/v1/file/download_info",
            "/api/v1/direct-link/url",
            "/b/api/share/download/info",
            "/b/api/file/download_info",
            "web-pro",
            "cdn",
            "direct",
        ] {
            assert_eq!(stats.calls(upstream), 0, "{upstream}");
        }
    }

    pub async fn folders_answer_get_and_head(env: &TestEnv, _row: Row) {
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

    pub async fn etag_is_one_validator(env: &TestEnv, row: Row) {
        let head = env.req("HEAD", "/m/big.bin").send().await.expect("head");
        let etag = header(&head, "etag");
        if row.md5 {
            let md5 = env
                .emu
                .lookup(&format!("{}/big.bin", row.backend.root()))
                .expect("seeded")
                .md5;
            assert_eq!(etag, format!("\"{md5}\""));
        }
        let res = env
            .get_following("/m/big.bin", &[("If-None-Match", &etag)])
            .await;
        assert_eq!(res.status().as_u16(), 304);
        let (_, body) = env.propfind("/m/big.bin", "0").await;
        assert!(body.contains(etag.trim_matches('"')), "{body}");
    }

    pub async fn hostile_requests_stay_inside(env: &TestEnv, _row: Row) {
        // Encodings that try to climb out of the mount: 4xx, whatever the backend. (Dot-segments
        // themselves are normalised by the HTTP client; tests/it/hostile/inputs.rs sends them raw.)
        for path in [
            "/m/..%2fbig.bin",
            "/m/big.bin%00",
            "/m/%ff",
            "/m/..%5cbig.bin",
        ] {
            let res = env.req("GET", path).send().await.expect("get");
            assert!(res.status().is_client_error(), "{path}: {}", res.status());
        }
        let res = env
            .req("PROPFIND", "/m/")
            .header("Depth", "2")
            .send()
            .await
            .expect("propfind");
        assert_eq!(res.status().as_u16(), 400);
        let res = env
            .req("PROPFIND", "/m/")
            .header("If", "(<unterminated")
            .send()
            .await
            .expect("propfind");
        assert_eq!(res.status().as_u16(), 400);
    }

    /// Absurd ranges: the whole file or 416, never wrong bytes (through any policy).
    pub async fn absurd_ranges_are_whole_or_416(env: &TestEnv, _row: Row) {
        let all = bytes_of(BIG, 9);
        for range in [
            "bytes=500-100",
            "bytes=0-1,5-9,0-1",
            "items=0-5",
            "bytes=99999999999999999999-",
        ] {
            let res = env.get_following("/m/big.bin", &[("Range", range)]).await;
            let status = res.status().as_u16();
            assert!(status == 200 || status == 416, "{range}: {status}");
            if status == 200 {
                assert_eq!(
                    res.bytes().await.expect("body").as_ref(),
                    all.as_slice(),
                    "{range}"
                );
            }
        }
    }

    /// A writable backend's mount advertises its writes (and a user with `write` may use them).
    pub async fn writable_mounts_say_so(env: &TestEnv, _row: Row) {
        let res = env.req("OPTIONS", "/m/").send().await.expect("options");
        assert_eq!(res.status().as_u16(), 200);
        let allow = header(&res, "allow");
        for method in [
            "PUT",
            "DELETE",
            "MKCOL",
            "MOVE",
            "COPY",
            "PROPPATCH",
            "LOCK",
        ] {
            assert!(allow.contains(method), "{method}: {allow}");
        }
        let res = env
            .req("MKCOL", "/m/made-by-conformance")
            .send()
            .await
            .expect("mkcol");
        assert_eq!(res.status().as_u16(), 201);
    }

    /// A read-only backend's mount advertises no write method, and writes get 403.
    pub async fn read_only_mounts_say_so(env: &TestEnv, _row: Row) {
        let res = env.req("OPTIONS", "/m/").send().await.expect("options");
        assert_eq!(header(&res, "dav"), "1");
        let allow = header(&res, "allow");
        for method in [
            "PUT",
            "DELETE",
            "MKCOL",
            "MOVE",
            "COPY",
            "PROPPATCH",
            "LOCK",
        ] {
            assert!(!allow.contains(method), "{allow}");
        }
        for method in [
            "PUT",
            "MKCOL",
            "MOVE",
            "COPY",
            "DELETE",
            "PROPPATCH",
            "LOCK",
        ] {
            let res = env
                .req(method, "/m/sub/new.txt")
                .header("Destination", env.url("/m/sub/other.txt"))
                .body("x")
                .send()
                .await
                .expect("write");
            assert_eq!(res.status().as_u16(), 403, "{method}");
            let text = res.text().await.expect("body");
            assert!(text.contains("read-only"), "{method}: {text}");
        }
    }
}

/// A module of tests per row. Which cases a row gets follows from its expectations: bytes are
/// read through every row but a redirect to links that need headers; the redirect cases only
/// for `redirect`; the read-only case only where the table says the backend cannot write.
macro_rules! row {
    ($name:ident, $backend:expr, $download:tt, $profile:ident,
     md5: $md5:ident, writable: $writable:ident, headers: $headers:ident) => {
        mod $name {
            use super::*;
            use crate::common::profiles::{use_profile, Profile};
            const ROW: Row = Row {
                backend: $backend,
                download: $download,
                md5: row!(@bool $md5),
            };
            const PROFILE: Profile = Profile::$profile;
            row!(@cases root_lists_the_mount, lists_hostile_names_with_properties,
                lists_a_folder_of_several_pages, nested_folders_resolve, head_is_metadata_only,
                folders_answer_get_and_head, etag_is_one_validator, hostile_requests_stay_inside);
            row!(@bytes $download, $headers);
            row!(@redirect $download, $headers);
            row!(@writable $writable);
        }
    };
    (@bool yes) => { true };
    (@bool no) => { false };
    (@bytes "redirect", yes) => {};
    (@bytes $download:tt, $headers:ident) => {
        row!(@cases reads_a_file_of_a_big_folder, reads_a_nested_file, gets_hostile_names,
            ranges_are_exact, absurd_ranges_are_whole_or_416);
    };
    (@redirect "redirect", yes) => { row!(@cases redirect_needs_the_referer); };
    (@redirect "redirect", no) => { row!(@cases redirect_is_plain); };
    (@redirect $download:tt, $headers:ident) => {};
    (@writable yes) => { row!(@cases writable_mounts_say_so); };
    (@writable no) => { row!(@cases read_only_mounts_say_so); };
    (@cases $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                use_profile(PROFILE);
                let env = row(ROW).await;
                cases::$case(&env, ROW).await;
                // Every call went to the 123 host that serves it.
                assert_no_wrong_host(&env.emu);
            }
        )*
    };
}

// The matrix: backend × download policy, each with what it expects. A link tree lists no MD5;
// Open and personal (web) mounts write; share and web links need headers (the Referer of the
// hop) that a plain client following a redirect does not send.
row!(open_redirect, Backend::Open, "redirect", Default, md5: yes, writable: yes, headers: no);
row!(open_proxy, Backend::Open, "proxy", Default, md5: yes, writable: yes, headers: no);
row!(open_proxy_url, Backend::Open, "proxy-url", Default, md5: yes, writable: yes, headers: no);
row!(open_auto, Backend::Open, "auto", Default, md5: yes, writable: yes, headers: no);
row!(open_direct_auto, Backend::OpenDirect, "auto", Default, md5: yes, writable: yes, headers: no);
row!(open_direct_proxy, Backend::OpenDirect, "proxy", Default, md5: yes, writable: yes, headers: no);
row!(share_redirect, Backend::Share, "redirect", Default, md5: yes, writable: no, headers: yes);
row!(share_proxy, Backend::Share, "proxy", Default, md5: yes, writable: no, headers: yes);
row!(share_proxy_url, Backend::Share, "proxy-url", Default, md5: yes, writable: no, headers: yes);
row!(share_auto, Backend::Share, "auto", Default, md5: yes, writable: no, headers: yes);
row!(web_redirect, Backend::Web, "redirect", Default, md5: yes, writable: yes, headers: yes);
row!(web_proxy, Backend::Web, "proxy", Default, md5: yes, writable: yes, headers: yes);
row!(web_proxy_url, Backend::Web, "proxy-url", Default, md5: yes, writable: yes, headers: yes);
row!(web_auto, Backend::Web, "auto", Default, md5: yes, writable: yes, headers: yes);
row!(link_redirect, Backend::Link, "redirect", Default, md5: no, writable: no, headers: no);
row!(link_proxy, Backend::Link, "proxy", Default, md5: no, writable: no, headers: no);
row!(link_proxy_url, Backend::Link, "proxy-url", Default, md5: no, writable: no, headers: no);
row!(link_auto, Backend::Link, "auto", Default, md5: no, writable: no, headers: no);

// Other readings of 123 (`crate::common::profiles`): a row per backend, under the policy that sends
// the most calls to 123 (proxy reads every link; auto decides per request).
row!(open_auto_openlist_reading, Backend::Open, "auto", OpenListReading,
    md5: yes, writable: yes, headers: no);
row!(open_auto_sdk_reading, Backend::Open, "auto", SdkReading,
    md5: yes, writable: yes, headers: no);
row!(open_direct_proxy_openlist_reading, Backend::OpenDirect, "proxy", OpenListReading,
    md5: yes, writable: yes, headers: no);
row!(open_direct_proxy_sdk_reading, Backend::OpenDirect, "proxy", SdkReading,
    md5: yes, writable: yes, headers: no);
row!(share_proxy_openlist_reading, Backend::Share, "proxy", OpenListReading,
    md5: yes, writable: no, headers: yes);
row!(share_proxy_sdk_reading, Backend::Share, "proxy", SdkReading,
    md5: yes, writable: no, headers: yes);
row!(web_proxy_openlist_reading, Backend::Web, "proxy", OpenListReading,
    md5: yes, writable: yes, headers: yes);
row!(web_proxy_sdk_reading, Backend::Web, "proxy", SdkReading,
    md5: yes, writable: yes, headers: yes);
row!(link_proxy_openlist_reading, Backend::Link, "proxy", OpenListReading,
    md5: no, writable: no, headers: no);
row!(link_proxy_sdk_reading, Backend::Link, "proxy", SdkReading,
    md5: no, writable: no, headers: no);
