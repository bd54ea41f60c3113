//! Wire types both web APIs share (share links `/b/api/share/...` and personal accounts
//! `/b/api/file/...`), exactly as the service sends them (docs/123.md, web §0.2, §0.4): one decoder for
//! both.
//!
//! Decoding is strict where leniency would hide a failure: an envelope without `code`, or a
//! listing page without `Next`, is an error, never an empty folder (OpenList reads a missing
//! `code` as 0 and shows an empty list; docs/123.md, web §0.2).

use serde::{Deserialize, Deserializer};

use crate::backend::open::api::lenient_i64;

/// `{"code": 0, "message": "ok", "data": {...}}`; `code` 0 is success.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    /// Missing `code` is kept as `None` and refused by the caller.
    #[serde(default, deserialize_with = "optional_i64")]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub data: Option<serde_json::Value>,
    /// The other shape of a refusal, without `code`: `{"status": 0, "info": "签名错误…"}`
    /// (a failed signature, docs/123.md, web §7).
    #[serde(default, deserialize_with = "optional_i64")]
    pub status: Option<i64>,
    #[serde(default)]
    pub info: String,
}

/// One `InfoList` item (the keys OpenList decodes; docs/123.md, web §0.4).
#[derive(Debug, Deserialize)]
pub struct FileItem {
    #[serde(rename = "FileId", deserialize_with = "lenient_i64")]
    pub file_id: i64,
    #[serde(rename = "FileName")]
    pub file_name: String,
    /// 1 = folder, 0 = file.
    #[serde(rename = "Type", default, deserialize_with = "lenient_i64")]
    pub kind: i64,
    #[serde(rename = "Size", default, deserialize_with = "lenient_i64")]
    pub size: i64,
    /// Lowercase hex MD5 of the content.
    #[serde(rename = "Etag", default)]
    pub etag: Option<String>,
    #[serde(rename = "S3KeyFlag", default)]
    pub s3_key_flag: Option<String>,
    /// RFC 3339, e.g. `2024-01-02T15:04:05+08:00`.
    #[serde(rename = "UpdateAt", default)]
    pub update_at: Option<String>,
    #[serde(rename = "CreateAt", default)]
    pub create_at: Option<String>,
}

/// The download hop's JSON answer: `{"code":0,"message":"ok","data":{"redirect_url":"…"}}`.
#[derive(Debug, Deserialize)]
pub struct HopReply {
    #[serde(default)]
    pub data: Option<HopData>,
}

#[derive(Debug, Deserialize)]
pub struct HopData {
    #[serde(default)]
    pub redirect_url: Option<String>,
}

pub(crate) fn optional_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(match value {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

pub(crate) fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Ok(s),
        serde_json::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a string or a number, got {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_code_may_be_missing() {
        let e: Envelope = serde_json::from_str(r#"{"message":"x"}"#).expect("envelope");
        assert_eq!(e.code, None);
        let e: Envelope = serde_json::from_str(r#"{"code":"5","message":"x"}"#).expect("env");
        assert_eq!(e.code, Some(5));
    }
}
