//! `server.base_path`: everything served under a prefix (`/dav`) — hrefs in multistatus
//! answers, `Location` of signed links, `Destination` of COPY and MOVE, the internal routes —
//! and nothing outside it.

use crate::common::*;
use pan123_emulator::EmulatorConfig;

async fn start(download: &str) -> TestEnv {
    let download = download.to_string();
    TestEnv::builder(EmulatorConfig::default())
        .mounts(move |emu| {
            emu.put_file("/lib/dir/a b.txt", b"prefixed bytes".to_vec());
            let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            open_mount("/m", &download, &format!("root_id = {id}"))
        })
        .server("base_path = \"/dav\"")
        .start()
        .await
}

#[tokio::test]
async fn propfind_hrefs_carry_the_prefix() {
    let env = start("proxy").await;
    let (status, body) = env.propfind("/dav/m/dir/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("<D:href>/dav/m/dir/</D:href>"), "{body}");
    assert!(
        body.contains("<D:href>/dav/m/dir/a%20b.txt</D:href>"),
        "{body}"
    );
    // The reference writer (dav-server) says the same.
    let res = env
        .req("PROPFIND", "/dav/m/dir/")
        .header("Depth", "1")
        .header("X-Propfind-Writer", "dav-server")
        .send()
        .await
        .expect("propfind");
    let body = res.text().await.expect("body");
    assert!(body.contains("/dav/m/dir/a%20b.txt</D:href>"), "{body}");
    assert!(!body.contains("<D:href>/m/"), "{body}");
    // The virtual root lists the mounts under the prefix.
    let (status, body) = env.propfind("/dav/", "1").await;
    assert_eq!(status, 207, "{body}");
    assert!(body.contains("/dav/m/</D:href>"), "{body}");
}

#[tokio::test]
async fn outside_the_prefix_is_404_and_internal_routes_move_under_it() {
    let env = start("proxy").await;
    for path in ["/m/dir/a%20b.txt", "/", "/davx/m/", "/-/healthz"] {
        let res = env.req("GET", path).send().await.expect("get");
        assert_eq!(res.status().as_u16(), 404, "{path}");
    }
    let res = env
        .client
        .get(env.url("/dav/-/healthz"))
        .send()
        .await
        .expect("health");
    assert_eq!(res.status().as_u16(), 200);
    let res = env
        .req("GET", "/dav/m/dir/a%20b.txt")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), "prefixed bytes");
    let page = env
        .req("GET", "/dav/m/dir/")
        .send()
        .await
        .expect("index")
        .text()
        .await
        .expect("page");
    assert!(page.contains("href=\"/dav/m/dir/a%20b.txt\""), "{page}");
}

#[tokio::test]
async fn signed_links_live_under_the_prefix() {
    let env = start("proxy-url").await;
    let res = env
        .req("GET", "/dav/m/dir/a%20b.txt")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 302);
    let location = res.headers()["location"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(
        location.starts_with(&format!("{}/dav/-/d/m/dir/a%20b.txt?sign=", env.base)),
        "{location}"
    );
    let res = env.client.get(&location).send().await.expect("signed get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), "prefixed bytes");
    // The same link without the prefix is outside the gateway.
    let outside = location.replacen("/dav/-/d/", "/-/d/", 1);
    let res = env.client.get(&outside).send().await.expect("outside");
    assert_eq!(res.status().as_u16(), 404);
}

#[tokio::test]
async fn copy_and_move_destinations_are_read_under_the_prefix() {
    let env = start("proxy").await;
    let copy = env
        .req("COPY", "/dav/m/dir/a%20b.txt")
        .header("Destination", env.url("/dav/m/dir/copy.txt"))
        .send()
        .await
        .expect("copy");
    assert!(copy.status().is_success(), "{}", copy.status());
    let moved = env
        .req("MOVE", "/dav/m/dir/copy.txt")
        .header("Destination", "/dav/m/moved.txt")
        .send()
        .await
        .expect("move");
    assert!(moved.status().is_success(), "{}", moved.status());
    let res = env
        .req("GET", "/dav/m/moved.txt")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), "prefixed bytes");
    let res = env
        .req("GET", "/dav/m/dir/copy.txt")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 404);
    // A Destination outside the prefix names nothing this gateway serves.
    let res = env
        .req("COPY", "/dav/m/moved.txt")
        .header("Destination", env.url("/m/elsewhere.txt"))
        .send()
        .await
        .expect("copy out");
    assert_eq!(res.status().as_u16(), 400);
}
