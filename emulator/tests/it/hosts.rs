//! One listener per 123 host: `/__emulator/hosts`, every endpoint refused (404, counted in
//! `wrong_host`) on every other host, the control API on all of them, fixed ports.

use std::collections::BTreeSet;

use pan123_emulator::{Emulator, EmulatorConfig, Host};
use serde_json::Value;

use crate::common::{self, http};

/// One request per endpoint, shaped as its own host routes it: (method, path, host, key).
fn every_endpoint(emu: &Emulator) -> Vec<(reqwest::Method, String, Host, &'static str)> {
    use reqwest::Method as M;
    let uid = emu.uid();
    let p = |m: M, path: &str, h: Host, key: &'static str| (m, path.to_string(), h, key);
    vec![
        p(
            M::POST,
            "/api/v1/access_token",
            Host::Open,
            "/api/v1/access_token",
        ),
        p(M::GET, "/api/v1/user/info", Host::Open, "/api/v1/user/info"),
        p(M::GET, "/api/v2/file/list", Host::Open, "/api/v2/file/list"),
        p(
            M::GET,
            "/api/v1/file/download_info",
            Host::Open,
            "/api/v1/file/download_info",
        ),
        p(
            M::GET,
            "/api/v1/direct-link/url",
            Host::Open,
            "/api/v1/direct-link/url",
        ),
        p(
            M::POST,
            "/upload/v1/file/mkdir",
            Host::Open,
            "/upload/v1/file/mkdir",
        ),
        p(
            M::POST,
            "/api/v1/file/move",
            Host::Open,
            "/api/v1/file/move",
        ),
        p(M::PUT, "/api/v1/file/name", Host::Open, "/api/v1/file/name"),
        p(
            M::POST,
            "/api/v1/file/trash",
            Host::Open,
            "/api/v1/file/trash",
        ),
        p(
            M::POST,
            "/api/v1/file/delete",
            Host::Open,
            "/api/v1/file/delete",
        ),
        p(
            M::GET,
            "/upload/v2/file/domain",
            Host::Open,
            "/upload/v2/file/domain",
        ),
        p(
            M::POST,
            "/upload/v2/file/create",
            Host::Open,
            "/upload/v2/file/create",
        ),
        p(
            M::POST,
            "/upload/v2/file/upload_complete",
            Host::Open,
            "/upload/v2/file/upload_complete",
        ),
        p(
            M::POST,
            "/upload/v2/file/slice",
            Host::Upload,
            "/upload/v2/file/slice",
        ),
        p(
            M::POST,
            "/api/user/sign_in",
            Host::Login,
            "/api/user/sign_in",
        ),
        p(M::GET, "/b/api/share/get", Host::Web, "/b/api/share/get"),
        p(
            M::POST,
            "/b/api/share/download/info",
            Host::Web,
            "/b/api/share/download/info",
        ),
        p(M::GET, "/b/api/user/info", Host::Web, "/b/api/user/info"),
        p(
            M::GET,
            "/b/api/file/list/new",
            Host::Web,
            "/b/api/file/list/new",
        ),
        p(
            M::POST,
            "/b/api/file/download_info",
            Host::Web,
            "/b/api/file/download_info",
        ),
        p(
            M::POST,
            "/b/api/file/upload_request",
            Host::Web,
            "/b/api/file/upload_request",
        ),
        p(
            M::POST,
            "/b/api/file/s3_upload_object/auth",
            Host::Web,
            "/b/api/file/s3_upload_object/auth",
        ),
        p(
            M::POST,
            "/b/api/file/s3_repare_upload_parts_batch",
            Host::Web,
            "/b/api/file/s3_repare_upload_parts_batch",
        ),
        p(
            M::POST,
            "/b/api/file/upload_complete/v2",
            Host::Web,
            "/b/api/file/upload_complete/v2",
        ),
        p(
            M::POST,
            "/b/api/file/mod_pid",
            Host::Web,
            "/b/api/file/mod_pid",
        ),
        p(
            M::POST,
            "/b/api/file/rename",
            Host::Web,
            "/b/api/file/rename",
        ),
        p(M::POST, "/b/api/file/trash", Host::Web, "/b/api/file/trash"),
        p(M::GET, "/cdn/123-61/x/1-0/y", Host::Cdn, "cdn"),
        p(M::HEAD, "/cdn/123-61/x/1-0/y", Host::Cdn, "cdn"),
        p(M::GET, "/web-pro/redirect/x", Host::WebPro, "web-pro"),
        p(M::PUT, "/s3/123-upload/k", Host::S3, "s3"),
        p(
            M::POST,
            "/api/v1/oauth2/access_token",
            Host::Open,
            "/api/v1/oauth2/access_token",
        ),
        p(
            M::GET,
            "/api/v1/oauth2/user/authorize",
            Host::Open,
            "/api/v1/oauth2/user/authorize",
        ),
        p(M::GET, "/auth", Host::Web, "/auth"),
        p(M::GET, "/123cloud/renewapi", Host::Renew, "renew"),
        p(
            M::GET,
            &format!("/{uid}/direct/a.txt"),
            Host::Direct,
            "direct",
        ),
    ]
}

#[tokio::test]
async fn the_hosts_are_nine_distinct_origins_listed_on_every_listener() {
    let emu = common::start().await;
    let hosts = emu.hosts();
    let names: Vec<&str> = hosts.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        ["cdn", "direct", "login", "open", "renew", "s3", "upload", "web", "web-pro"]
    );
    let origins: BTreeSet<String> = hosts
        .values()
        .map(|u| url::Url::parse(u).unwrap().origin().ascii_serialization())
        .collect();
    assert_eq!(origins.len(), 9, "{hosts:?}");
    assert_eq!(hosts["open"], emu.base_url());
    for h in Host::ALL {
        assert_eq!(hosts[h.name()], emu.host_url(h));
    }
    // the control API answers on every listener, with the same list
    for base in hosts.values() {
        let r = http()
            .get(format!("{base}/__emulator/hosts"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{base}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v, serde_json::to_value(&hosts).unwrap(), "{base}");
    }
}

#[tokio::test]
async fn every_endpoint_on_another_host_is_404_and_counted() {
    let emu = common::start_with(|c| c.direct_link_space = Some("/direct".into())).await;
    emu.put_file("/direct/a.txt", "a");
    let c = http();
    let endpoints = every_endpoint(&emu);
    assert_eq!(
        endpoints.iter().map(|e| e.3).collect::<BTreeSet<_>>().len(),
        35,
        "every routed endpoint once"
    );
    for (method, path, home, key) in &endpoints {
        for host in Host::ALL.into_iter().filter(|h| h != home) {
            let url = format!("{}{path}", emu.host_url(host));
            let r = c.request(method.clone(), &url).send().await.unwrap();
            assert_eq!(r.status(), 404, "{method} {path} on {host}");
        }
        let s = emu.stats();
        let sent = if *key == "cdn" { 16 } else { 8 };
        if *key != "cdn" || *method == reqwest::Method::HEAD {
            assert_eq!(s.wrong_host(key), sent, "{key}");
        }
        assert_eq!(s.calls(key), 0, "{key}: not handled anywhere");
    }
    let s = emu.stats();
    assert_eq!(s.wrong_host_total(), 8 * endpoints.len() as u64);
    // On its own host each endpoint is handled (counted as a call, never as a wrong host).
    for (method, path, home, key) in &endpoints {
        let url = format!("{}{path}", emu.host_url(*home));
        let r = c.request(method.clone(), &url).send().await.unwrap();
        let _ = r.bytes().await;
        assert!(emu.stats().calls(key) >= 1, "{method} {path} on {home}");
    }
    assert_eq!(emu.stats().wrong_host_total(), 8 * endpoints.len() as u64);
    // reset clears the counter too
    emu.reset_stats();
    assert_eq!(emu.stats().wrong_host_total(), 0);
    // an unrouted path is a plain 404, counted nowhere
    let r = c
        .get(format!("{}/nothing", emu.host_url(Host::Web)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(emu.stats().wrong_host_total(), 0);
}

#[tokio::test]
async fn the_control_api_reports_wrong_hosts() {
    let emu = common::start().await;
    let c = http();
    let r = c
        .get(format!("{}/api/v1/user/info", emu.host_url(Host::Web)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = c
        .get(format!("{}/__emulator/stats", emu.host_url(Host::Cdn)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["wrong_host"]["/api/v1/user/info"], 1, "{v}");
}

/// `hosts_port_base` puts the other hosts on consecutive ports (bounded retries on a busy range).
#[tokio::test]
async fn hosts_port_base_fixes_the_ports() {
    for attempt in 0..5u16 {
        let base = 20_000 + (std::process::id() as u16 % 2000) * 10 + attempt * 2_000 % 20_000;
        let started = Emulator::start(EmulatorConfig {
            hosts_port_base: Some(base),
            ..common::cfg()
        })
        .await;
        let Ok(emu) = started else { continue };
        for (k, h) in Host::ALL.into_iter().enumerate().skip(1) {
            let port = url::Url::parse(&emu.host_url(h)).unwrap().port().unwrap();
            assert_eq!(port, base + k as u16 - 1, "{h}");
        }
        return;
    }
    panic!("no free range of ports for hosts_port_base");
}
