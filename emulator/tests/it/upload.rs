//! Upload v2: reuse, slices, MD5 checks, duplicate modes, name rules and the upload switches.

use std::time::Duration;

use pan123_emulator::{Fault, FaultKind, OverwriteAt, TakenName, ZeroByteUpload};
use serde_json::json;

use crate::common::{self, md5, Api};

#[tokio::test]
async fn instant_reuse_by_md5_and_size() {
    let emu = common::start().await;
    emu.put_file("/orig.bin", "same bytes");
    let api = Api::new(&emu).await;
    let v = api.create(0, "copy.bin", b"same bytes", Some(2)).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["reuse"], true);
    let id = v["data"]["fileID"].as_u64().unwrap();
    assert_eq!(emu.lookup("/copy.bin").unwrap().id, id);
    assert_eq!(emu.read("/copy.bin").unwrap(), b"same bytes");
    // same MD5 with another size is not reuse
    let v = api
        .post(
            "/upload/v2/file/create",
            json!({"parentFileId": 0, "filename": "x.bin", "etag": md5(b"same bytes"), "size": 11}),
        )
        .await;
    assert_eq!(v["data"]["reuse"], false);
}

#[tokio::test]
async fn several_slices_out_of_order_with_pending_polls() {
    let emu = common::start_with(|c| c.switches.complete_pending_polls = 2).await;
    let dir = emu.mkdir_p("/up");
    let data = common::bytes(3000, 11);
    let api = Api::new(&emu).await;
    let v = api.create(dir, "big.bin", &data, None).await;
    assert_eq!(v["code"], 0, "{v}");
    let d = &v["data"];
    assert_eq!(d["reuse"], false);
    assert_eq!(d["fileID"], 0);
    assert_eq!(d["sliceSize"], 1024);
    assert_eq!(
        d["servers"],
        json!([emu.host_url(pan123_emulator::Host::Upload)])
    );
    let pre = d["preuploadID"].as_str().unwrap().to_string();
    assert!(pre.len() > 32);
    for no in [3u64, 1, 2] {
        let from = (no as usize - 1) * 1024;
        let chunk = &data[from..(from + 1024).min(3000)];
        let v = api
            .slice(&pre, no, chunk.to_vec(), &md5(chunk))
            .await
            .unwrap();
        assert_eq!(v["code"], 0, "{v}");
        assert!(v["data"].is_null());
    }
    assert!(
        emu.lookup("/up/big.bin").is_none(),
        "not there before complete"
    );
    let complete = json!({"preuploadID": pre});
    for _ in 0..2 {
        let v = api
            .post("/upload/v2/file/upload_complete", complete.clone())
            .await;
        assert_eq!(v["code"], 0);
        assert_eq!(v["data"]["completed"], false);
    }
    let v = api
        .post("/upload/v2/file/upload_complete", complete.clone())
        .await;
    assert_eq!(v["data"]["completed"], true, "{v}");
    let id = v["data"]["fileID"].as_u64().unwrap();
    assert_ne!(id, 0);
    assert_eq!(emu.read("/up/big.bin").unwrap(), data);
    assert_eq!(emu.lookup("/up/big.bin").unwrap().md5, md5(&data));
    // completing again is idempotent
    let v = api.post("/upload/v2/file/upload_complete", complete).await;
    assert_eq!(v["data"]["fileID"], id);
    // the content is now known: a second upload is instant
    let v = api.create(0, "again.bin", &data, None).await;
    assert_eq!(v["data"]["reuse"], true);
}

#[tokio::test]
async fn wrong_slice_md5_and_wrong_whole_md5() {
    let emu = common::start().await;
    let api = Api::new(&emu).await;
    let data = common::bytes(1500, 12);
    let v = api.create(0, "a.bin", &data, None).await;
    let pre = v["data"]["preuploadID"].as_str().unwrap().to_string();
    let v = api
        .slice(&pre, 1, data[..1024].to_vec(), &md5(b"not it"))
        .await
        .unwrap();
    assert_ne!(v["code"], 0);
    let v = api.slice(&pre, 3, vec![1], &md5(&[1])).await.unwrap();
    assert_ne!(v["code"], 0, "slice number out of range");
    let v = api
        .slice(&pre, 1, data[..1000].to_vec(), &md5(&data[..1000]))
        .await
        .unwrap();
    assert_ne!(v["code"], 0, "slice of the wrong size");
    let v = api
        .slice("nope", 1, data[..1024].to_vec(), &md5(&data[..1024]))
        .await
        .unwrap();
    assert_ne!(v["code"], 0, "unknown preuploadID");
    let v = api
        .post(
            "/upload/v2/file/upload_complete",
            json!({"preuploadID": pre}),
        )
        .await;
    assert_ne!(v["code"], 0, "slices missing");
    api.send_slices(&pre, &data, 1024).await;
    let v = api.complete(&pre).await;
    assert_eq!(v["data"]["completed"], true);

    // declared etag differs from the bytes sent: per-slice MD5s pass, the whole file fails
    let declared = common::bytes(1500, 13);
    let v = api.create(0, "b.bin", &declared, None).await;
    let pre = v["data"]["preuploadID"].as_str().unwrap().to_string();
    api.send_slices(&pre, &data, 1024).await;
    let v = api.complete(&pre).await;
    assert_eq!(v["code"], 1);
    assert_eq!(v["message"], "文件上传失败");
    assert!(emu.lookup("/b.bin").is_none());
    // the session is over
    let v = api
        .post(
            "/upload/v2/file/upload_complete",
            json!({"preuploadID": pre}),
        )
        .await;
    assert_ne!(v["code"], 0);
}

#[tokio::test]
async fn duplicate_modes() {
    let emu = common::start().await;
    let old = emu.put_file("/a.txt", "old");
    let api = Api::new(&emu).await;
    // absent and 0: conflict is an error
    for dup in [None, Some(0)] {
        let v = api.create(0, "a.txt", b"new", dup).await;
        assert_eq!(v["code"], 1, "{dup:?}");
    }
    // 1: keep both, the server adds a suffix
    let v = api.upload(0, "a.txt", b"new one", Some(1)).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(emu.read("/a(1).txt").unwrap(), b"new one");
    assert_eq!(emu.read("/a.txt").unwrap(), b"old");
    // 2: overwrite, the old file goes to the trash
    let v = api.upload(0, "a.txt", b"newest", Some(2)).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(emu.read("/a.txt").unwrap(), b"newest");
    assert_ne!(emu.lookup("/a.txt").unwrap().id, old);
    assert!(emu.entry(old).unwrap().trashed);
    // containDir makes the folders
    let v = api
        .post(
            "/upload/v2/file/create",
            json!({"parentFileID": 0, "filename": "/x/y/z.txt", "etag": md5(b"old"), "size": 3, "containDir": true}),
        )
        .await;
    assert_eq!(v["data"]["reuse"], true, "{v}");
    assert_eq!(emu.read("/x/y/z.txt").unwrap(), b"old");
}

#[tokio::test]
async fn overwrite_at_switch() {
    let emu = common::start().await;
    emu.put_file("/a.txt", "old");
    let api = Api::new(&emu).await;
    // create (default): the old file is gone as soon as create answers
    let v = api.create(0, "a.txt", b"new 1", Some(2)).await;
    let pre = v["data"]["preuploadID"].as_str().unwrap().to_string();
    assert!(emu.lookup("/a.txt").is_none());
    api.send_slices(&pre, b"new 1", 1024).await;
    assert_eq!(api.complete(&pre).await["data"]["completed"], true);
    assert_eq!(emu.read("/a.txt").unwrap(), b"new 1");
    // complete: the old file stays live until the upload completes
    emu.set_switches(|s| s.overwrite_at = OverwriteAt::Complete);
    let v = api.create(0, "a.txt", b"new 2", Some(2)).await;
    let pre = v["data"]["preuploadID"].as_str().unwrap().to_string();
    assert_eq!(emu.read("/a.txt").unwrap(), b"new 1");
    api.send_slices(&pre, b"new 2", 1024).await;
    assert_eq!(api.complete(&pre).await["data"]["completed"], true);
    assert_eq!(emu.read("/a.txt").unwrap(), b"new 2");
}

#[tokio::test]
async fn name_rules_on_create() {
    let emu = common::start().await;
    let api = Api::new(&emu).await;
    let long = "n".repeat(256);
    for bad in [
        "a\"b",
        "a\\b",
        "a/b",
        "a:b",
        "a*b",
        "a?b",
        "a|b",
        "a>b",
        "a<b",
        "   ",
        long.as_str(),
    ] {
        let v = api.create(0, bad, b"data", None).await;
        assert_eq!(v["code"], 1, "{bad:?}");
    }
    let ok = "n".repeat(255);
    let v = api.create(0, &ok, b"data", None).await;
    assert_eq!(v["code"], 0);
    let v = api
        .post(
            "/upload/v2/file/create",
            json!({"parentFileID": 0, "filename": "x", "etag": "zz", "size": 1}),
        )
        .await;
    assert_eq!(v["code"], 1, "bad etag");
}

#[tokio::test]
async fn zero_byte_switch() {
    let emu = common::start().await;
    let api = Api::new(&emu).await;
    let v = api.create(0, "empty1", b"", None).await;
    assert_eq!(v["data"]["reuse"], true, "default: reuse");
    emu.set_switches(|s| s.zero_byte_upload = ZeroByteUpload::Normal);
    let v = api.create(0, "empty2", b"", None).await;
    assert_eq!(v["data"]["reuse"], false);
    let pre = v["data"]["preuploadID"].as_str().unwrap().to_string();
    let v = api.complete(&pre).await;
    assert_eq!(v["data"]["completed"], true, "{v}");
    assert_eq!(emu.lookup("/empty2").unwrap().size, 0);
    emu.set_switches(|s| s.zero_byte_upload = ZeroByteUpload::Reject);
    let v = api.create(0, "empty3", b"", None).await;
    assert_ne!(v["code"], 0);
}

#[tokio::test]
async fn poll_interval_and_slice_size_switches() {
    let emu = common::start_with(|c| {
        c.switches.complete_pending_polls = 1;
        c.switches.complete_poll_interval = Duration::from_millis(300);
        c.switches.slice_size = 16 << 20;
    })
    .await;
    let api = Api::new(&emu).await;
    let data = common::bytes(2000, 5);
    let v = api.create(0, "p.bin", &data, None).await;
    assert_eq!(v["data"]["sliceSize"], 16 << 20);
    let pre = v["data"]["preuploadID"].as_str().unwrap().to_string();
    api.send_slices(&pre, &data, 16 << 20).await;
    let body = json!({"preuploadID": pre});
    let v = api
        .post("/upload/v2/file/upload_complete", body.clone())
        .await;
    assert_eq!(v["data"]["completed"], false);
    let v = api
        .post("/upload/v2/file/upload_complete", body.clone())
        .await;
    assert_ne!(v["code"], 0);
    assert_eq!(v["message"], "文件正在校验中,请间隔1秒后再试");
    tokio::time::sleep(Duration::from_millis(350)).await;
    let v = api.post("/upload/v2/file/upload_complete", body).await;
    assert_eq!(v["data"]["completed"], true, "{v}");
    emu.set_switches(|s| s.slice_size = 100);
    let v = api.create(0, "q.bin", &common::bytes(250, 6), None).await;
    assert_eq!(v["data"]["sliceSize"], 100);
}

#[tokio::test]
async fn cut_upload_then_retry() {
    let emu = common::start().await;
    let api = Api::new(&emu).await;
    let data = common::bytes(1024, 8);
    let v = api.create(0, "c.bin", &data, None).await;
    let pre = v["data"]["preuploadID"].as_str().unwrap().to_string();
    emu.inject(Fault {
        endpoint: "/upload/v2/file/slice".into(),
        kind: FaultKind::CutAfter {
            bytes: 100,
            count: 1,
        },
    });
    let r = api.slice(&pre, 1, data.clone(), &md5(&data)).await;
    assert!(r.is_err(), "the connection is dropped: {r:?}");
    let v = api.slice(&pre, 1, data.clone(), &md5(&data)).await.unwrap();
    assert_eq!(v["code"], 0);
    assert_eq!(api.complete(&pre).await["data"]["completed"], true);
    assert_eq!(emu.stats().calls("/upload/v2/file/slice"), 2);
}

#[tokio::test]
async fn create_on_taken_name_switch_decides_absent_and_zero_duplicate() {
    for (reading, dup) in [
        (TakenName::KeepBoth, None),
        (TakenName::KeepBoth, Some(0)),
        (TakenName::Replace, None),
        (TakenName::Replace, Some(0)),
    ] {
        let emu = common::start_with(|c| c.switches.create_on_taken_name = reading).await;
        let old = emu.put_file("/a.txt", "old");
        let api = Api::new(&emu).await;
        let v = api.upload(0, "a.txt", b"new", dup).await;
        assert_eq!(v["code"], 0, "{reading:?} {dup:?}: {v}");
        match reading {
            TakenName::KeepBoth => {
                assert_eq!(emu.read("/a.txt").unwrap(), b"old");
                assert_eq!(emu.read("/a(1).txt").unwrap(), b"new");
            }
            _ => {
                assert_eq!(emu.read("/a.txt").unwrap(), b"new");
                assert!(emu.entry(old).unwrap().trashed);
                assert_eq!(emu.list_names("/").unwrap(), ["a.txt"]);
            }
        }
        // Explicit values keep their meaning whatever the switch says.
        let v = api.upload(0, "a.txt", b"newer", Some(1)).await;
        assert_eq!(v["code"], 0, "{v}");
        assert!(emu.lookup("/a.txt").is_some());
    }
}

#[tokio::test]
async fn complete_transient_errors_cycle_before_the_normal_answers() {
    let emu = common::start_with(|c| c.switches.complete_transient_errors = 4).await;
    let api = Api::new(&emu).await;
    let data = common::bytes(3000, 9);
    let v = api.create(0, "t.bin", &data, None).await;
    let pre = v["data"]["preuploadID"].as_str().unwrap().to_string();
    api.send_slices(&pre, &data, 1024).await;
    let body = json!({"preuploadID": pre});
    let mut codes = Vec::new();
    for _ in 0..4 {
        let v = api
            .post("/upload/v2/file/upload_complete", body.clone())
            .await;
        codes.push((
            v["code"].as_i64().unwrap(),
            v["message"].as_str().unwrap().to_string(),
        ));
    }
    assert_eq!(
        codes[0],
        (20103, "文件正在校验中,请间隔1秒后再试".to_string())
    );
    assert_eq!(
        codes[1],
        (1, "任务队列削峰中,未直接获取到文件ID,请慢一点".to_string())
    );
    assert_eq!(codes[2].0, 40199);
    assert_eq!(codes[3].0, 20103, "the cycle starts again");
    assert!(emu.lookup("/t.bin").is_none(), "nothing made yet");
    let v = api.post("/upload/v2/file/upload_complete", body).await;
    assert_eq!(v["data"]["completed"], true, "{v}");
    assert_eq!(emu.read("/t.bin").unwrap(), data);
}

#[tokio::test]
async fn reuse_without_file_id_asks_for_the_bytes() {
    let emu = common::start_with(|c| c.switches.reuse_without_file_id = true).await;
    emu.put_file("/orig.bin", "same bytes");
    let api = Api::new(&emu).await;
    let v = api.create(0, "copy.bin", b"same bytes", Some(1)).await;
    assert_eq!(v["code"], 0, "{v}");
    assert_eq!(v["data"]["reuse"], true);
    assert_eq!(v["data"]["fileID"], 0);
    assert!(emu.lookup("/copy.bin").is_none(), "not an instant upload");
    let pre = v["data"]["preuploadID"].as_str().unwrap().to_string();
    assert!(!pre.is_empty());
    api.send_slices(&pre, b"same bytes", 1024).await;
    assert_eq!(api.complete(&pre).await["data"]["completed"], true);
    assert_eq!(emu.read("/copy.bin").unwrap(), b"same bytes");
}

#[tokio::test]
async fn verifying_after_upload_answers_20103_on_link_calls() {
    let emu = common::start_with(|c| {
        c.switches.verifying_after_upload = 2;
        c.direct_link_space = Some("/direct".into());
    })
    .await;
    let seeded = emu.put_file("/seeded.bin", "seeded");
    let dir = emu.mkdir_p("/direct");
    let api = Api::new(&emu).await;
    let v = api.upload(dir, "fresh.bin", b"fresh bytes", None).await;
    let id = v["data"]["fileID"].as_u64().unwrap();
    for path in [
        format!("/api/v1/file/download_info?fileId={id}"),
        format!("/api/v1/direct-link/url?fileID={id}"),
    ] {
        let v = api.get(&path).await;
        assert_eq!(v["code"], 20103, "{path}: {v}");
    }
    let v = api
        .get(&format!("/api/v1/file/download_info?fileId={id}"))
        .await;
    assert_eq!(v["code"], 0, "two answers, then normal: {v}");
    // Files not uploaded in this run are never "verifying".
    let v = api
        .get(&format!("/api/v1/file/download_info?fileId={seeded}"))
        .await;
    assert_eq!(v["code"], 0, "{v}");
}

#[tokio::test]
async fn error_after_acts_and_then_answers_the_error() {
    let emu = common::start().await;
    let api = Api::new(&emu).await;
    let data = common::bytes(1500, 4);
    let v = api.create(0, "e.bin", &data, None).await;
    let pre = v["data"]["preuploadID"].as_str().unwrap().to_string();
    api.send_slices(&pre, &data, 1024).await;
    emu.inject(Fault {
        endpoint: "/upload/v2/file/upload_complete".into(),
        kind: FaultKind::ErrorAfter {
            code: 1,
            message: "任务队列削峰中,未直接获取到文件ID,请慢一点".into(),
            count: 1,
        },
    });
    let body = json!({"preuploadID": pre});
    let v = api
        .post("/upload/v2/file/upload_complete", body.clone())
        .await;
    assert_eq!(v["code"], 1, "{v}");
    assert_eq!(
        emu.read("/e.bin").unwrap(),
        data,
        "the upload completed anyway"
    );
    let v = api.post("/upload/v2/file/upload_complete", body).await;
    assert_eq!(v["data"]["completed"], true, "{v}");
}
