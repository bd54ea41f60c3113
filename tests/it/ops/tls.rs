//! TLS with a self-signed certificate generated at test time: the gateway serves WebDAV over
//! HTTPS, and a client that trusts the certificate lists and downloads.

use crate::common::*;
use pan123_emulator::{Emulator, EmulatorConfig};

#[tokio::test]
async fn serves_over_tls() {
    let emu = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator");
    emu.put_file("/lib/a.txt", b"over tls".to_vec());
    let lib = emu.lookup("/lib").map(|e| e.id).unwrap_or(0);
    let dir = tempfile::tempdir().expect("tempdir");
    let generated =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let cert_pem = generated.cert.pem();
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).expect("write cert");
    std::fs::write(
        dir.path().join("key.pem"),
        generated.key_pair.serialize_pem(),
    )
    .expect("write key");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{state}\"\ntls_cert = \"{d}/cert.pem\"\ntls_key = \"{d}/key.pem\"\n\n[[users]]\nname = \"{USER}\"\npassword_hash = \"{hash}\"\n\n{mount}",
        state = dir.path().join("state").display(),
        d = dir.path().display(),
        hash = password_hash(),
        mount = fill_hosts(
            &open_mount("/m", "proxy", &format!("root_id = {lib}")),
            &emu,
            "https://localhost"
        ),
    );
    let config =
        pan123_webdav::config::parse(&text, std::path::Path::new("tls.toml")).expect("config");
    let server = pan123_webdav::server::start(&config)
        .await
        .expect("gateway starts");
    let port = server.addr.port();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).expect("pem"))
        .resolve("localhost", server.addr)
        .timeout(HANG_GUARD)
        .build()
        .expect("client");
    let base = format!("https://localhost:{port}");
    let r = client
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").expect("method"),
            format!("{base}/m/"),
        )
        .basic_auth(USER, Some(PASSWORD))
        .header("Depth", "1")
        .send()
        .await
        .expect("propfind over TLS");
    assert_eq!(r.status().as_u16(), 207);
    let r = client
        .get(format!("{base}/m/a.txt"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .expect("get");
    assert_eq!(r.bytes().await.expect("body").as_ref(), b"over tls");
    // Plain HTTP on the TLS port is not answered as WebDAV.
    let plain = reqwest::Client::builder()
        .timeout(HANG_GUARD)
        .build()
        .expect("client");
    assert!(plain
        .get(format!("http://127.0.0.1:{port}/m/a.txt"))
        .basic_auth(USER, Some(PASSWORD))
        .send()
        .await
        .is_err());
    server.shutdown().await;
}
