//! Requests that crashed, wedged or bloated the gateway (issue 14): each is answered with a
//! documented status, and the server keeps serving everyone else afterwards.

use crate::common::*;
use pan123_emulator::EmulatorConfig;

async fn env() -> TestEnv {
    TestEnv::builder(EmulatorConfig::default())
        .mounts(|emu| {
            emu.put_file("/lib/a.txt", bytes_of(1000, 1));
            emu.put_file("/pub/p.txt", bytes_of(300, 2));
            emu.put_file("/other/o.txt", b"other mount".to_vec());
            let lib = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
            let public = emu.lookup("/pub").map(|e| e.id).unwrap_or(0);
            let other = emu.lookup("/other").map(|e| e.id).unwrap_or(0);
            format!(
                "{}{}{}",
                open_mount("/m", "proxy", &format!("root_id = {lib}")),
                open_mount(
                    "/anon",
                    "proxy",
                    &format!("root_id = {public}\nanonymous = true\nread_only = true")
                ),
                open_mount("/other", "proxy", &format!("root_id = {other}")),
            )
        })
        .start()
        .await
}

/// `depth` nested elements inside `<open>…</close>`.
fn nested(open: &str, close: &str, depth: usize) -> String {
    format!(
        "<?xml version=\"1.0\"?>{open}{}{}{close}",
        "<x>".repeat(depth),
        "</x>".repeat(depth)
    )
}

/// The mount still lists, writes and reads.
async fn still_serves(env: &TestEnv) {
    let (status, body) = env.propfind("/m/", "1").await;
    assert_eq!(status, 207, "PROPFIND after the attack: {body}");
    assert!(body.contains("a.txt"));
    let r = env
        .req("PUT", "/m/after.txt")
        .body("still here")
        .send()
        .await
        .expect("put");
    assert!(
        r.status().is_success(),
        "PUT after the attack: {}",
        r.status()
    );
    let r = env.req("GET", "/m/after.txt").send().await.expect("get");
    assert_eq!(r.text().await.expect("body"), "still here");
}

#[tokio::test]
async fn deeply_nested_xml_bodies_are_refused_before_any_parser() {
    let env = env().await;
    let propfind = nested(
        "<D:propfind xmlns:D=\"DAV:\"><D:prop>",
        "</D:prop></D:propfind>",
        3000,
    );
    // Without credentials, on the anonymous mount: this used to abort the process.
    let r = env
        .client
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
            env.url("/anon/"),
        )
        .header("Depth", "1")
        .body(propfind.clone())
        .send()
        .await
        .expect("anonymous propfind");
    assert_eq!(r.status(), 400);
    let proppatch = nested(
        "<D:propertyupdate xmlns:D=\"DAV:\"><D:set><D:prop>",
        "</D:prop></D:set></D:propertyupdate>",
        3000,
    );
    let lock = nested(
        "<D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>",
        "</D:owner></D:lockinfo>",
        3000,
    );
    // Many flat elements are bounded too, and the virtual root is guarded like the mounts.
    let flood = format!(
        "<D:propfind xmlns:D=\"DAV:\"><D:prop>{}</D:prop></D:propfind>",
        "<D:x/>".repeat(6000)
    );
    for (method, path, body) in [
        ("PROPFIND", "/m/", propfind),
        ("PROPPATCH", "/m/a.txt", proppatch),
        ("LOCK", "/m/a.txt", lock),
        ("PROPFIND", "/", flood),
    ] {
        let r = env
            .req(method, path)
            .header("Depth", "0")
            .body(body)
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 400, "{method} {path}");
    }
    // What clients really send still works.
    let finder = "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propfind xmlns:D=\"DAV:\"><D:prop><D:getlastmodified/><D:getcontentlength/><D:resourcetype/></D:prop></D:propfind>";
    let r = env
        .req("PROPFIND", "/m/")
        .header("Depth", "1")
        .body(finder)
        .send()
        .await
        .expect("finder propfind");
    assert_eq!(r.status(), 207);
    still_serves(&env).await;
}

#[tokio::test]
async fn copy_or_move_onto_a_root_is_refused() {
    let env = env().await;
    for method in ["COPY", "MOVE"] {
        for dest in [
            env.url("/m"),
            env.url("/m/"),
            "/m".to_string(),
            "/m/".to_string(),
            "/other/".to_string(),
            env.url("/"),
            "/".to_string(),
        ] {
            let r = env
                .req(method, "/m/a.txt")
                .header("Destination", &dest)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} to {dest}: no answer ({e})"));
            assert_eq!(r.status(), 403, "{method} to {dest}");
        }
    }
    // A mount's root is not moved or deleted either.
    for (method, dest) in [("MOVE", "/m/x/"), ("MOVE", "/other/x/"), ("DELETE", "")] {
        let mut req = env.req(method, "/m/");
        if !dest.is_empty() {
            req = req.header("Destination", env.url(dest));
        }
        let r = req.send().await.expect("answer");
        assert_eq!(r.status(), 403, "{method} of the root");
    }
    assert!(
        env.emu.read("/lib/a.txt").is_some(),
        "the file is untouched"
    );
    still_serves(&env).await;
}

#[tokio::test]
async fn unknown_methods_are_answered_early_and_counted_as_one() {
    let env = env().await;
    let before = metrics_text(&env).await;
    for i in 0..300 {
        let name = format!("X{i:04}{}", "Q".repeat(200));
        let r = env
            .client
            .request(
                reqwest::Method::from_bytes(name.as_bytes()).expect("method"),
                env.url("/m/a.txt"),
            )
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 501, "{name}");
    }
    let after = metrics_text(&env).await;
    assert!(!after.contains("QQQQ"), "a method name became a label");
    assert!(after.contains("method=\"other\""));
    assert!(
        after.len() < before.len() + 2_000,
        "the metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    // A known method outside WebDAV is still refused after auth, as before.
    let r = env.req("POST", "/m/a.txt").send().await.expect("post");
    assert_eq!(r.status(), 405);
}

#[tokio::test]
async fn a_destination_on_another_host_is_refused() {
    let mut env = env().await;
    env.server_extra =
        "host_aliases = [\"nas.local:8080\"]\npublic_url = \"https://dav.example.com\"".into();
    env.start_gateway().await;
    for (method, dest) in [
        ("COPY", "http://evil.example.com/m/x.txt"),
        ("MOVE", "https://evil.example.com/m/y.txt"),
    ] {
        let r = env
            .req(method, "/m/a.txt")
            .header("Destination", dest)
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 502, "{method} to {dest}");
    }
    assert!(env.emu.read("/lib/x.txt").is_none() && env.emu.read("/lib/y.txt").is_none());
    assert!(env.emu.read("/lib/a.txt").is_some());
    // This server by its Host, its public_url and its alias.
    for (dest, name) in [
        (env.url("/m/b.txt"), "b.txt"),
        ("https://DAV.example.com/m/c.txt".to_string(), "c.txt"),
        ("http://nas.local:8080/m/d.txt".to_string(), "d.txt"),
        ("/m/e.txt".to_string(), "e.txt"),
    ] {
        let r = env
            .req("COPY", "/m/a.txt")
            .header("Destination", &dest)
            .send()
            .await
            .expect("copy");
        assert_eq!(r.status(), 201, "{dest}");
        let r = env
            .req("GET", &format!("/m/{name}"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), 200, "{dest}");
    }
}

#[tokio::test]
async fn readyz_tells_strangers_only_counts() {
    let env = env().await;
    let public: serde_json::Value = env
        .client
        .get(env.url("/-/readyz"))
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    assert_eq!(public["mounts"], 3, "{public}");
    assert!(public["ready"].is_boolean());
    assert!(public["ready_mounts"].is_number());
    let text = public.to_string();
    for secret in [
        "/m",
        "/anon",
        "\"open\"",
        "backend",
        "upstream_error",
        "token",
    ] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let detailed: serde_json::Value = env
        .req("GET", "/-/readyz")
        .send()
        .await
        .expect("readyz")
        .json()
        .await
        .expect("json");
    let mounts = detailed["mounts"].as_array().expect("details");
    assert_eq!(mounts.len(), 3);
    assert_eq!(mounts[0]["path"], "/m");
    assert_eq!(mounts[0]["backend"], "open");
}

#[tokio::test]
async fn copy_out_of_a_read_only_mount_into_a_writable_one() {
    let env = env().await;
    let r = env
        .req("COPY", "/anon/p.txt")
        .header("Destination", env.url("/m/p.txt"))
        .send()
        .await
        .expect("copy");
    assert_eq!(r.status(), 201);
    let r = env.req("GET", "/m/p.txt").send().await.expect("get");
    assert_eq!(r.bytes().await.expect("body").as_ref(), bytes_of(300, 2));
    // The source stays where it is; moving out of a read-only mount is still refused.
    let r = env
        .req("MOVE", "/anon/p.txt")
        .header("Destination", env.url("/m/q.txt"))
        .send()
        .await
        .expect("move");
    assert_eq!(r.status(), 403);
    assert!(env.emu.read("/pub/p.txt").is_some());
    // And nothing is copied into a read-only mount.
    let r = env
        .req("COPY", "/m/a.txt")
        .header("Destination", env.url("/anon/a.txt"))
        .send()
        .await
        .expect("copy in");
    assert_eq!(r.status(), 403);
}
