//! A small `multipart/form-data` reader for slice uploads (text fields plus one file part).
//! Parts are zero-copy slices of the request body.

use bytes::Bytes;
use memchr::memmem;

/// One form part.
#[derive(Debug, Clone)]
pub struct Part {
    /// `name` from `Content-Disposition`.
    pub name: String,
    /// The part's bytes.
    pub data: Bytes,
}

/// The boundary of a `multipart/form-data` Content-Type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (mime, params) = content_type.split_once(';')?;
    if !mime.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if k.trim().eq_ignore_ascii_case("boundary") {
            Some(v.trim().trim_matches('"').to_string())
        } else {
            None
        }
    })
}

/// Split a body into parts; `None` if it is not well-formed.
pub fn parse(body: &Bytes, boundary: &str) -> Option<Vec<Part>> {
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    let mut pos = memmem::find(body, delim.as_bytes())? + delim.len();
    let mut parts = Vec::new();
    loop {
        let rest = body.get(pos..)?;
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        if !rest.starts_with(b"\r\n") {
            return None;
        }
        let head_start = pos + 2;
        let head_len = memmem::find(body.get(head_start..)?, b"\r\n\r\n")?;
        let head = std::str::from_utf8(body.get(head_start..head_start + head_len)?).ok()?;
        let data_start = head_start + head_len + 4;
        let data_len = memmem::find(body.get(data_start..)?, next_delim.as_bytes())?;
        let name = disposition_name(head)?;
        parts.push(Part {
            name,
            data: body.slice(data_start..data_start + data_len),
        });
        pos = data_start + data_len + next_delim.len();
    }
}

/// `name` from a part's `Content-Disposition`.
fn disposition_name(head: &str) -> Option<String> {
    let line = head.split("\r\n").find(|l| {
        l.split_once(':')
            .is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition"))
    })?;
    let (_, value) = line.split_once(':')?;
    value.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("name")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_file() {
        let ct = "multipart/form-data; boundary=XyZ";
        assert_eq!(boundary(ct).as_deref(), Some("XyZ"));
        let body = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"preuploadID\"\r\n\r\nabc\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"slice\"; filename=\"a.part1\"\r\n\
Content-Type: application/octet-stream\r\n\r\n\x00\r\n--X\xff\r\n--XyZ--\r\n",
        );
        let parts = parse(&body, "XyZ").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "preuploadID");
        assert_eq!(&parts[0].data[..], b"abc");
        assert_eq!(parts[1].name, "slice");
        assert_eq!(&parts[1].data[..], b"\x00\r\n--X\xff");
        assert!(parse(&Bytes::from_static(b"garbage"), "XyZ").is_none());
    }
}
