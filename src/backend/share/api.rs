//! Wire types of 123's share-link web API (`/b/api/share/...`), exactly as the service sends
//! them (docs/123.md, web §2). Keys are PascalCase except where noted; the envelope and the file item
//! both web APIs share are in `webapi::wire`.

use serde::Deserialize;

use crate::backend::webapi::wire::string_or_number;
pub use crate::backend::webapi::wire::FileItem;

/// `GET /b/api/share/get` → `data`. There is no `Total` (alist#6814).
#[derive(Debug, Deserialize)]
pub struct SharePage {
    /// Null or absent on an empty page.
    #[serde(rename = "InfoList", default)]
    pub info_list: Option<Vec<FileItem>>,
    /// `"-1"` on the last page (a string; a number is accepted too).
    #[serde(rename = "Next", deserialize_with = "string_or_number")]
    pub next: String,
}

/// `POST /b/api/share/download/info` → `data` (note the upper-case `URL`).
#[derive(Debug, Deserialize)]
pub struct DownloadInfo {
    #[serde(rename = "DownloadURL", default)]
    pub download_url: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_page() {
        let page: SharePage = serde_json::from_str(
            r#"{"InfoList":[{"FileId":7,"FileName":"a.txt","Type":0,"Size":3,
                "Etag":"900150983cd24fb0d6963f7d28e17f72","S3KeyFlag":"1-0",
                "UpdateAt":"2024-01-02T15:04:05+08:00","DownloadUrl":"","Extra":1}],
                "Next":"-1","Len":1}"#,
        )
        .expect("page");
        assert_eq!(page.next, "-1");
        let items = page.info_list.expect("items");
        assert_eq!(items[0].file_id, 7);
        assert_eq!(items[0].file_name, "a.txt");
        let page: SharePage = serde_json::from_str(r#"{"InfoList":null,"Next":12}"#).expect("page");
        assert_eq!(page.next, "12");
        assert!(page.info_list.is_none());
        // A page without Next is not a page.
        assert!(serde_json::from_str::<SharePage>(r#"{"InfoList":[]}"#).is_err());
    }
}
