//! `server.public_url`: the absolute URLs the gateway builds of itself (signed `proxy-url`
//! links of a mount without `proxy_url`, the browser index) use it.

use crate::common::*;
use pan123_emulator::EmulatorConfig;

const PUBLIC: &str = "https://dav.example.com";

/// A proxy-url mount without its own `proxy_url`.
fn mount(emu: &pan123_emulator::Emulator) -> String {
    let id = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
    format!(
        "[[mounts]]\npath = \"/m\"\nbackend = \"open\"\nclient_id = \"{{id}}\"\nclient_secret = \"{{secret}}\"\napi_base = \"{{api}}\"\ndownload = \"proxy-url\"\nroot_id = {id}\n"
    )
}

async fn start(server_extra: &str) -> TestEnv {
    TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            emu.put_file("/lib/a b.txt", b"public bytes".to_vec());
            mount(emu)
        })
        .server(server_extra)
        .start()
        .await
}

#[tokio::test]
async fn signed_links_point_at_public_url_when_the_mount_has_no_proxy_url() {
    let env = start(&format!("public_url = \"{PUBLIC}/\"")).await;
    let res = env.req("GET", "/m/a%20b.txt").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 302);
    let location = res.headers()["location"]
        .to_str()
        .expect("text")
        .to_string();
    let prefix = format!("{PUBLIC}/-/d/m/a%20b.txt?sign=");
    assert!(location.starts_with(&prefix), "{location}");
    // The reverse proxy at public_url passes the path through: the link works on the gateway.
    let local = location.replacen(PUBLIC, &env.base, 1);
    let res = env.client.get(&local).send().await.expect("signed get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), "public bytes");
}

#[tokio::test]
async fn public_url_with_base_path_gets_the_prefix() {
    let env = start(&format!("public_url = \"{PUBLIC}\"\nbase_path = \"/dav\"")).await;
    let res = env
        .req("GET", "/dav/m/a%20b.txt")
        .send()
        .await
        .expect("get");
    assert_eq!(res.status().as_u16(), 302);
    let location = res.headers()["location"]
        .to_str()
        .expect("text")
        .to_string();
    assert!(
        location.starts_with(&format!("{PUBLIC}/dav/-/d/m/a%20b.txt?sign=")),
        "{location}"
    );
    let local = location.replacen(PUBLIC, &env.base, 1);
    let res = env.client.get(&local).send().await.expect("signed get");
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.text().await.expect("body"), "public bytes");
}

#[tokio::test]
async fn the_browser_index_shows_the_public_address() {
    let env = start(&format!("public_url = \"{PUBLIC}\"")).await;
    let res = env.req("GET", "/m/").send().await.expect("get");
    assert_eq!(res.status().as_u16(), 200);
    let page = res.text().await.expect("page");
    assert!(
        page.contains(&format!("WebDAV address: <a href=\"{PUBLIC}/m/\">")),
        "{page}"
    );
    let page = env
        .req("GET", "/")
        .send()
        .await
        .expect("root")
        .text()
        .await
        .expect("page");
    assert!(page.contains(&format!("<a href=\"{PUBLIC}/\">")), "{page}");
}

#[test]
fn proxy_url_mounts_may_lean_on_public_url() {
    let mount = "[[mounts]]\npath = \"/m\"\nbackend = \"open\"\nclient_id = \"a\"\nclient_secret = \"b\"\ndownload = \"proxy-url\"\n";
    let users = "[[users]]\nname = \"u\"\npassword_hash = \"$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$Bq4mCCO6ySGXVXzQ4HVjS6IYt5LTbkjnOdxHUqHRI0c\"\nmounts = [\"*\"]\n";
    let key = "signing_key = \"0123456789abcdef\"\n";
    let path = std::path::Path::new("test.toml");
    let without = format!("[server]\n{key}\n{mount}{users}");
    let err = pan123_webdav::config::parse(&without, path).expect_err("needs a URL");
    assert!(
        err.to_string().contains("mounts[0].proxy_url: missing"),
        "{err}"
    );
    let with = format!("[server]\n{key}public_url = \"{PUBLIC}\"\n\n{mount}{users}");
    pan123_webdav::config::parse(&with, path).expect("public_url is enough");
}
