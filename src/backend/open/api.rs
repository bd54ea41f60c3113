//! Wire types of the 123 Open API, exactly as the service sends them (docs/123.md, open §3).
//!
//! Decoding is lenient where 123 is known to vary: ids may arrive as numbers or as
//! numeric strings, optional fields may be missing or null.

use serde::{Deserialize, Deserializer};

/// The envelope around every JSON answer: `code` 0 is success, anything else carries `message`.
#[derive(Debug, Deserialize)]
pub struct Envelope<T> {
    #[serde(default, deserialize_with = "lenient_i64")]
    pub code: i64,
    #[serde(default)]
    pub message: String,
    pub data: Option<T>,
    #[serde(rename = "x-traceID", default)]
    pub trace_id: String,
}

/// `POST /api/v1/access_token` → `data`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessToken {
    pub access_token: String,
    /// RFC 3339 with a +08:00 offset.
    pub expired_at: String,
}

/// `GET /api/v1/user/info` → `data` (only the fields the gateway uses).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserInfo {
    #[serde(deserialize_with = "lenient_i64")]
    pub uid: i64,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub space_used: i64,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub space_permanent: i64,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub space_temp: i64,
}

/// `GET /api/v2/file/list` → `data`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileListPage {
    #[serde(deserialize_with = "lenient_i64")]
    pub last_file_id: i64,
    #[serde(default)]
    pub file_list: Vec<FileItem>,
}

/// One item of a v2 listing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileItem {
    #[serde(deserialize_with = "lenient_i64")]
    pub file_id: i64,
    pub filename: String,
    /// 0 = file, 1 = folder.
    #[serde(rename = "type", deserialize_with = "lenient_i64")]
    pub kind: i64,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub size: i64,
    #[serde(default)]
    pub etag: String,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub trashed: i64,
    #[serde(default)]
    pub create_at: String,
    #[serde(default)]
    pub update_at: String,
}

/// `GET /api/v1/file/download_info` → `data`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadInfo {
    pub download_url: String,
}

/// `GET /api/v1/direct-link/url` → `data`.
#[derive(Debug, Deserialize)]
pub struct DirectLinkUrl {
    pub url: String,
}

/// `POST /upload/v1/file/mkdir` → `data`.
#[derive(Debug, Deserialize)]
pub struct Mkdir {
    #[serde(rename = "dirID", deserialize_with = "lenient_i64")]
    pub dir_id: i64,
}

/// `POST /upload/v2/file/create` → `data`. With `reuse: true` the file exists already
/// (instant upload) and the other fields are empty.
#[derive(Debug, Deserialize)]
pub struct UploadCreate {
    #[serde(rename = "fileID", default, deserialize_with = "lenient_i64")]
    pub file_id: i64,
    #[serde(rename = "preuploadID", default)]
    pub preupload_id: Option<String>,
    #[serde(default)]
    pub reuse: bool,
    #[serde(rename = "sliceSize", default, deserialize_with = "lenient_i64")]
    pub slice_size: i64,
    #[serde(default)]
    pub servers: Option<Vec<String>>,
}

/// `POST /upload/v2/file/upload_complete` → `data`: finished when `completed` and `fileID` ≠ 0.
#[derive(Debug, Deserialize)]
pub struct UploadComplete {
    #[serde(default)]
    pub completed: bool,
    #[serde(rename = "fileID", default, deserialize_with = "lenient_i64")]
    pub file_id: i64,
}

/// Accepts an integer given as a JSON number or a numeric string (and null as 0).
pub fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Num {
        Int(i64),
        Float(f64),
        Text(String),
        Null,
    }
    match Num::deserialize(d)? {
        Num::Int(i) => Ok(i),
        Num::Float(f) => Ok(f as i64),
        Num::Text(s) if s.trim().is_empty() => Ok(0),
        Num::Text(s) => s.trim().parse().map_err(serde::de::Error::custom),
        Num::Null => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_page_decodes_leniently() {
        let body = r#"{"code":0,"message":"ok","data":{"lastFileId":"-1","fileList":[
            {"fileId":5,"filename":"a.txt","type":0,"size":"12","etag":"abc","status":0,
             "parentFileId":0,"category":0,"trashed":0,"createAt":"2025-01-01 00:00:00",
             "updateAt":"2025-01-02 08:00:00","extra":true}]},"x-traceID":""}"#;
        let env: Envelope<FileListPage> = serde_json::from_str(body).unwrap();
        let page = env.data.unwrap();
        assert_eq!(page.last_file_id, -1);
        assert_eq!(page.file_list[0].size, 12);
        assert_eq!(page.file_list[0].filename, "a.txt");
    }

    #[test]
    fn error_envelope_has_null_data() {
        let env: Envelope<DownloadInfo> =
            serde_json::from_str(r#"{"code":5066,"message":"文件不存在","data":null}"#).unwrap();
        assert_eq!(env.code, 5066);
        assert!(env.data.is_none());
    }
}
