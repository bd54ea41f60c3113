//! The direct-link host and `auth_key`, including the spec's vectors over real HTTP.

use pan123_emulator::Host;

use crate::common::{self, fetch, http};

/// Spec open-api §5.3, official example, with the emulator's clock set before the expiry.
#[tokio::test]
async fn official_auth_key_vector() {
    let emu = common::start_with(|c| {
        c.uid = 13;
        c.direct_link_space = Some("/files".into());
        c.direct_link_key = Some("289ds32418bxdba".into());
    })
    .await;
    emu.put_file("/files/1.txt", "one");
    let c = http();
    let base = emu.host_url(Host::Direct);
    emu.set_clock_offset(1689220000 - chrono::Utc::now().timestamp());
    let good = format!(
        "{base}/13/files/1.txt?auth_key=1689220731-123-13-3bdacc0e031fd67fe829152f37c8fbad"
    );
    let (st, _, body) = fetch(&c, &good, None).await;
    assert_eq!((st, body.as_slice()), (200, b"one".as_slice()));
    // tampered hash, missing key, wrong part count
    let bad = good.replace("3bdacc", "3bdacd");
    assert_eq!(fetch(&c, &bad, None).await.0, 403);
    assert_eq!(
        fetch(&c, &format!("{base}/13/files/1.txt"), None).await.0,
        403
    );
    let short =
        format!("{base}/13/files/1.txt?auth_key=1689220731-123-3bdacc0e031fd67fe829152f37c8fbad");
    assert_eq!(fetch(&c, &short, None).await.0, 403);
    // after the expiry
    emu.set_clock_offset(1689220732 - chrono::Utc::now().timestamp());
    assert_eq!(fetch(&c, &good, None).await.0, 403);
}

/// Spec web §3.3 vectors: the ASCII one and the non-ASCII one (hash over the decoded path).
#[tokio::test]
async fn web_page_vectors_ascii_and_non_ascii() {
    let emu = common::start_with(|c| {
        c.uid = 1812000499;
        c.direct_link_space = Some("/视频".into());
        c.direct_link_key = Some("MyPrivKey123".into());
    })
    .await;
    emu.put_file("/视频/a b.mp4", "video");
    emu.set_clock_offset(1700000000 - chrono::Utc::now().timestamp());
    let c = http();
    let url = format!(
        "{}/1812000499/%E8%A7%86%E9%A2%91/a%20b.mp4?auth_key=1700001800-5577006791947779410-1812000499-8806ffe939d6226ea2110643bbea38ff",
        emu.host_url(Host::Direct)
    );
    let (st, _, body) = fetch(&c, &url, Some("bytes=1-3")).await;
    assert_eq!((st, body.as_slice()), (206, b"ide".as_slice()));

    let emu2 = common::start_with(|c| {
        c.uid = 1812000499;
        c.direct_link_space = Some("/123-link-Test".into());
        c.direct_link_key = Some("MyPrivKey123".into());
    })
    .await;
    emu2.put_file("/123-link-Test/linuxqq_3.2.0-16736_mips64el.deb", "deb");
    emu2.set_clock_offset(1700000000 - chrono::Utc::now().timestamp());
    let url = format!(
        "{}/1812000499/123-link-Test/linuxqq_3.2.0-16736_mips64el.deb?auth_key=1700001800-5577006791947779410-1812000499-d41240e5d1d100ad8975bc3c15feaddf",
        emu2.host_url(Host::Direct)
    );
    let (st, _, body) = fetch(&c, &url, None).await;
    assert_eq!((st, body.as_slice()), (200, b"deb".as_slice()));
    assert_eq!(emu2.stats().calls("direct"), 1);
    assert_eq!(emu2.stats().bytes("direct"), 3);
}

#[tokio::test]
async fn unsigned_space_serves_with_ranges() {
    let emu = common::start_with(|c| c.direct_link_space = Some("/direct".into())).await;
    let data = common::bytes(500, 2);
    emu.put_file("/direct/sub/f.bin", data.clone());
    emu.put_file("/outside.bin", "no");
    let c = http();
    let base = format!("{}/{}", emu.host_url(Host::Direct), emu.uid());
    let (st, h, body) = fetch(&c, &format!("{base}/direct/sub/f.bin"), Some("bytes=-5")).await;
    assert_eq!(st, 206);
    assert_eq!(h["content-range"], "bytes 495-499/500");
    assert_eq!(body, &data[495..]);
    let (st, h, _) = fetch(&c, &format!("{base}/direct/sub/f.bin"), Some("bytes=500-")).await;
    assert_eq!(
        (st, h["content-range"].to_str().unwrap()),
        (416, "bytes */500")
    );
    // not in the space, a folder, another uid, not there
    assert_eq!(fetch(&c, &format!("{base}/outside.bin"), None).await.0, 404);
    assert_eq!(fetch(&c, &format!("{base}/direct/sub"), None).await.0, 404);
    assert_eq!(
        fetch(
            &c,
            &format!("{}/42/direct/sub/f.bin", emu.host_url(Host::Direct)),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(fetch(&c, &format!("{base}/direct/nope"), None).await.0, 404);
    // a signed URL made like OpenList does it (decoded path) for a fresh emulator with a key
    let emu = common::start_with(|c| {
        c.direct_link_space = Some("/direct".into());
        c.direct_link_key = Some("k3y".into());
    })
    .await;
    emu.put_file("/direct/文件 1.txt", "signed");
    let path = format!("/{}/direct/文件 1.txt", emu.uid());
    let key = pan123_emulator::auth_key::sign(&path, emu.now() + 60, "abc", emu.uid(), "k3y");
    let url = format!(
        "{}/{}/direct/%E6%96%87%E4%BB%B6%201.txt?auth_key={key}",
        emu.host_url(Host::Direct),
        emu.uid()
    );
    let (st, _, body) = fetch(&c, &url, None).await;
    assert_eq!((st, body.as_slice()), (200, b"signed".as_slice()));
}
