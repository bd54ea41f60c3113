//! Wire types of 123's personal-account web API (docs/123.md, web §1), as the service sends them. The
//! envelope and the file item are the ones both web APIs share (`webapi::wire`).

use serde::Deserialize;

pub use crate::backend::webapi::wire::FileItem;

/// `GET /b/api/file/list/new` → `data`.
#[derive(Debug, Deserialize)]
pub struct ListPage {
    /// Null or absent on an empty page.
    #[serde(rename = "InfoList", default)]
    pub info_list: Option<Vec<FileItem>>,
    /// `"-1"` on the last page.
    #[serde(
        rename = "Next",
        deserialize_with = "crate::backend::webapi::wire::string_or_number"
    )]
    pub next: String,
    /// Items in the folder; a mismatch with what was collected is only logged (as OpenList).
    #[serde(rename = "Total", default)]
    pub total: Option<i64>,
}

/// `POST /b/api/file/download_info` → `data` (note `DownloadUrl`, not the share's `DownloadURL`).
#[derive(Debug, Deserialize)]
pub struct DownloadInfo {
    #[serde(rename = "DownloadUrl", default)]
    pub download_url: String,
}

/// `GET /b/api/user/info` → `data`.
#[derive(Debug, Deserialize)]
pub struct UserInfo {
    #[serde(rename = "SpaceUsed", default)]
    pub space_used: i64,
    #[serde(rename = "SpacePermanent", default)]
    pub space_permanent: i64,
    #[serde(rename = "SpaceTemp", default)]
    pub space_temp: i64,
}

/// `POST /b/api/file/upload_request` → `data` (docs/123.md, web §1.4 "Upload" step 2). For a folder
/// (`type: 1`) only `FileId` matters, and even that is not confirmed: without it the folder is
/// found by listing. No `Debug`: it may carry S3 credentials.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct UploadRequest {
    #[serde(
        rename = "FileId",
        deserialize_with = "crate::backend::open::api::lenient_i64"
    )]
    pub file_id: i64,
    /// 123 had the content: the file exists already (instant upload).
    #[serde(rename = "Reuse")]
    pub reuse: bool,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "UploadId")]
    pub upload_id: String,
    #[serde(rename = "StorageNode")]
    pub storage_node: String,
    /// Static S3 credentials; when any is empty the presigned-part flow is used, else the
    /// client signs S3 requests itself (docs/123.md, web §1.4 step 5, `s3_static.rs`).
    #[serde(rename = "AccessKeyId")]
    pub access_key_id: String,
    #[serde(rename = "SecretAccessKey")]
    pub secret_access_key: String,
    #[serde(rename = "SessionToken")]
    pub session_token: String,
    /// The S3 endpoint of the static-credential flow (path style).
    #[serde(rename = "EndPoint")]
    pub end_point: String,
}

/// `s3_upload_object/auth` and `s3_repare_upload_parts_batch` → `data`: part number (decimal
/// string) → presigned URL. The URLs are signed: never logged.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct PresignedUrls {
    #[serde(rename = "presignedUrls")]
    pub urls: std::collections::HashMap<String, String>,
}

/// The login host's answer: success is code **200** with the token at `data.token`.
#[derive(Deserialize)]
pub struct LoginReply {
    #[serde(default)]
    pub code: Option<serde_json::Value>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub data: Option<LoginData>,
}

#[derive(Deserialize)]
pub struct LoginData {
    #[serde(default)]
    pub token: Option<String>,
}

impl LoginReply {
    /// The code as a number (123 has sent codes as strings under load).
    pub fn code(&self) -> Option<i64> {
        match &self.code {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_page_and_login() {
        let page: ListPage = serde_json::from_str(
            r#"{"InfoList":[{"FileId":7,"FileName":"a.txt","Type":0,"Size":3,"Etag":"","S3KeyFlag":"1-0",
                "UpdateAt":"2024-01-02T15:04:05+08:00"}],"Next":"-1","Total":1,"Len":1}"#,
        )
        .expect("page");
        assert_eq!((page.next.as_str(), page.total), ("-1", Some(1)));
        assert!(serde_json::from_str::<ListPage>(r#"{"InfoList":[]}"#).is_err());
        let login: LoginReply =
            serde_json::from_str(r#"{"code":200,"message":"success","data":{"token":"eyJ"}}"#)
                .expect("login");
        assert_eq!(login.code(), Some(200));
        assert_eq!(login.data.and_then(|d| d.token).as_deref(), Some("eyJ"));
        let refused: LoginReply =
            serde_json::from_str(r#"{"code":"1","message":"请进行验证","data":null}"#).expect("r");
        assert_eq!(refused.code(), Some(1));
    }
}
