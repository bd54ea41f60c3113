//! `pan123-webdav demo`: the emulated 123 cloud and the gateway in one process, so anyone can
//! try the product (or a client) without a 123 account.

use std::net::SocketAddr;

use anyhow::Context;
use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use pan123_emulator::{Emulator, EmulatorConfig, Host};

/// The demo user's name.
pub const DEMO_USER: &str = "demo";
/// The key and extraction code of the demo's share link (of `/Documents`).
pub const DEMO_SHARE_KEY: &str = "demo-Share";
pub const DEMO_SHARE_PASSWORD: &str = "123pan";

/// Fills the emulator with a small library: folders, text files, a video-sized file and a
/// direct-link space.
pub fn seed(emu: &Emulator) {
    emu.put_file(
        "/Documents/readme.txt",
        "Welcome to pan123-webdav.\nThis folder lives in an emulated 123 cloud.\n",
    );
    emu.put_file("/Documents/notes/电影清单.txt", "这是一个演示文件。\n");
    emu.put_file(
        "/Documents/notes/a & b (1).txt",
        "Awkward names work too.\n",
    );
    emu.put_generated_file("/Movies/Big Demo Film (2026).mkv", 300 * 1024 * 1024, 1);
    emu.put_generated_file("/Music/track01.flac", 24 * 1024 * 1024, 2);
    emu.put_file("/direct/hello.txt", "Served from the direct-link space.\n");
    emu.put_generated_file("/direct/trailer.mp4", 16 * 1024 * 1024, 3);
    emu.add_share(DEMO_SHARE_KEY, Some(DEMO_SHARE_PASSWORD), "/Documents");
}

/// The `urls` of the demo's link mount: files of the direct-link space by their direct links
/// (`<direct host>/<uid>/direct/<file>`), one with its size and date, one without a size so the
/// gateway learns it with a HEAD request at start-up.
pub fn link_urls(emu: &Emulator) -> String {
    let base = emu.host_url(Host::Direct);
    let uid = emu.uid();
    let hello = emu.lookup("/direct/hello.txt").map_or(0, |e| e.size);
    format!(
        "{hello}:1767225600:{base}/{uid}/direct/hello.txt\nClips:\n  {base}/{uid}/direct/trailer.mp4\n"
    )
}

/// The TOML config the demo runs with (the same parser as `serve`), for the seeded `emu`. Each
/// mount names the 123 host it talks to: the Open API for `open` mounts, the web API (and the
/// login host) for share and personal mounts, the direct-link host in the link tree.
pub fn config_text(
    emu: &Emulator,
    listen: SocketAddr,
    state_dir: &str,
    password_hash: &str,
) -> String {
    let api_base = emu.base_url();
    let web_base = emu.host_url(Host::Web);
    let login_base = emu.host_url(Host::Login);
    let client_id = emu.client_id();
    let client_secret = emu.client_secret();
    let direct_root = emu.lookup("/direct").map(|e| e.id).unwrap_or(0);
    let link_urls = link_urls(emu);
    let web_user = emu.web_user();
    let web_password = emu.web_password();
    format!(
        r#"[server]
listen = "{listen}"
state_dir = "{state_dir}"

[[users]]
name = "{DEMO_USER}"
password_hash = "{password_hash}"
mounts = ["*"]
write = true

[[mounts]]
path = "/open"
backend = "open"
client_id = "{client_id}"
client_secret = "{client_secret}"
api_base = "{api_base}"
download = "auto"

[[mounts]]
path = "/direct"
backend = "open"
client_id = "{client_id}"
client_secret = "{client_secret}"
api_base = "{api_base}"
root_id = {direct_root}
direct_link = true
download = "auto"

[[mounts]]
path = "/share"
backend = "share"
share_key = "{DEMO_SHARE_KEY}"
share_password = "{DEMO_SHARE_PASSWORD}"
api_base = "{web_base}"
download = "auto"

[[mounts]]
path = "/me"
backend = "web"
username = "{web_user}"
password = "{web_password}"
api_base = "{web_base}"
login_base = "{login_base}"
download = "auto"

[[mounts]]
path = "/links"
backend = "link"
download = "auto"
urls = '''
{link_urls}'''
"#
    )
}

/// Runs the demo until Ctrl-C.
pub async fn run(listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let emu = Emulator::start(EmulatorConfig {
        direct_link_space: Some("/direct".into()),
        ..Default::default()
    })
    .await
    .context("starting the emulated 123 cloud")?;
    seed(&emu);
    let state_dir = tempfile::tempdir().context("creating a state directory")?;
    let password: String = {
        use rand::Rng;
        let alphabet = b"abcdefghjkmnpqrstuvwxyz23456789";
        let mut rng = rand::thread_rng();
        (0..12)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
            .collect()
    };
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
        .map_err(|e| anyhow::anyhow!("hashing the demo password: {e}"))?
        .to_string();
    let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
    let text = config_text(&emu, listen, &state_dir.path().display().to_string(), &hash);
    let config = crate::config::parse(&text, std::path::Path::new("<demo>"))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let server = crate::server::start(&config).await?;
    println!("pan123-webdav demo");
    println!("  WebDAV URL: {}/", server.url());
    println!("  user:       {DEMO_USER}");
    println!("  password:   {password}");
    println!(
        "  emulated 123 cloud: {} (every host: {}/__emulator/hosts)",
        emu.base_url(),
        emu.base_url()
    );
    println!(
        "  mounts:     /open, /direct (Open API), /share (a share link), /me (a personal account \
         through the web API), /links (a link tree)"
    );
    println!(
        "Try: curl -u {DEMO_USER}:{password} -X PROPFIND -H 'Depth: 1' {}/open/",
        server.url()
    );
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    server.shutdown().await;
    emu.shutdown().await;
    Ok(())
}
