//! What a PROPFIND body asks for (RFC 4918 §9.1, §14.20): `allprop` (with an optional
//! `include`), `propname`, or a `prop` list of names.
//!
//! Read with a streaming reader (`quick-xml`) into names only: the one-pass writer
//! (`dav::multistatus`) never needs a tree. A body this module cannot read as one of the three
//! shapes is `None`, and dav-server answers it (with its 400 for a body that is no PROPFIND).

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;

const DAV: &str = "DAV:";

/// `allprop` spelled out, as clients that send a body for it do.
pub const ALLPROP: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?><D:propfind xmlns:D=\"DAV:\"><D:allprop/></D:propfind>";

// The bodies real clients send when they list a folder: read by the tests
// (`tests/it/protocol/propfind_fast.rs`) and measured by the benchmark (`bench/`), so both use the same.

/// rclone's webdav backend with `vendor = owncloud` (it reads the MD5 in `oc:checksums`).
pub const RCLONE: &str = r#"<?xml version="1.0"?>
<d:propfind  xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns" xmlns:nc="http://nextcloud.org/ns">
 <d:prop>
  <d:displayname />
  <d:getlastmodified />
  <d:getcontentlength />
  <d:resourcetype />
  <d:getcontenttype />
  <oc:checksums />
  <oc:permissions />
  <oc:id />
 </d:prop>
</d:propfind>
"#;

/// macOS Finder (WebDAVFS) listing a folder.
pub const FINDER: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:">
<D:prop>
<D:getlastmodified/>
<D:getcontentlength/>
<D:creationdate/>
<D:resourcetype/>
<D:getetag/>
<D:quota-available-bytes/>
<D:quota-used-bytes/>
<A:appledoubleheader xmlns:A="http://www.apple.com/webdav_fs/props/"/>
</D:prop>
</D:propfind>
"#;

/// Windows Explorer (Mini-Redirector): the DAV set and the Microsoft one.
pub const WINDOWS: &str = r#"<?xml version="1.0" encoding="utf-8" ?><D:propfind xmlns:D="DAV:"><D:prop xmlns:Z="urn:schemas-microsoft-com:"><D:name/><D:resourcetype/><D:getcontentlength/><D:getcontenttype/><D:getlastmodified/><D:creationdate/><D:displayname/><D:ishidden/><D:lockdiscovery/><D:supportedlock/><Z:Win32CreationTime/><Z:Win32LastAccessTime/><Z:Win32LastModifiedTime/><Z:Win32FileAttributes/></D:prop></D:propfind>"#;

/// A property name: its namespace (none for an element in no namespace) and local name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropName {
    pub ns: Option<String>,
    pub name: String,
}

impl PropName {
    /// Is this `name` in namespace `ns`?
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.name == name
    }
}

/// The request shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Asked {
    /// Every dead property and the live ones RFC 4918 defines, plus `include`d names (§9.1).
    /// No body at all means this too (§9.1: "A client may choose not to submit a request
    /// body. An empty PROPFIND request body MUST be treated as if it were an 'allprop'").
    AllProp { include: Vec<PropName> },
    /// The names of all properties, without values.
    PropName,
    /// These properties, each answered 200 with its value or 404.
    Prop(Vec<PropName>),
}

/// Reads a PROPFIND body; an empty body is `allprop`. `None` = not a PROPFIND this module
/// reads (dav-server then answers it).
pub fn parse(body: &[u8]) -> Option<Asked> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Asked::AllProp {
            include: Vec::new(),
        });
    }
    let mut reader = quick_xml::NsReader::from_reader(body);
    // Depth 0 = outside the root, 1 = inside `propfind`, 2 = inside prop/include, deeper is a
    // property's content (ignored: a request names properties, it sends no values).
    let mut depth = 0usize;
    let mut kind: Option<&'static str> = None;
    // The list being read: `prop`'s or `include`'s.
    let mut reading: Option<&'static str> = None;
    let mut props = Vec::new();
    let mut include = Vec::new();
    // Bounded: the body was read whole (at most 64 KiB) and checked by `server::xml_body`.
    loop {
        let (ns, event) = reader.read_resolved_event().ok()?;
        let (start, empty) = match &event {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            Event::End(_) => {
                depth = depth.checked_sub(1)?;
                if depth == 1 {
                    reading = None;
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let Some(e) = start else { continue };
        if undeclares_a_prefix(e) {
            return None;
        }
        let in_dav = matches!(ns, ResolveResult::Bound(n) if n.into_inner() == DAV);
        match depth {
            0 if !(in_dav && local(e) == "propfind") => return None,
            1 if in_dav => {
                let name = local(e);
                match name.as_str() {
                    "allprop" | "propname" | "prop" if kind.is_none() => {
                        kind = Some(match name.as_str() {
                            "allprop" => "allprop",
                            "propname" => "propname",
                            _ => "prop",
                        });
                        reading = (name == "prop").then_some("prop");
                    }
                    // RFC 4918 spells it `include`; dav-server reads `includes`.
                    "include" | "includes" => reading = Some("include"),
                    _ => reading = None,
                }
            }
            2 => {
                let ns = match ns {
                    ResolveResult::Bound(n) => Some(n.into_inner().to_string()),
                    ResolveResult::Unbound => None,
                    // An undeclared prefix: not namespace-well-formed.
                    ResolveResult::Unknown(_) => return None,
                };
                let p = PropName { ns, name: local(e) };
                match reading {
                    Some("prop") => props.push(p),
                    Some(_) => include.push(p),
                    None => {}
                }
            }
            _ => {}
        }
        if !empty {
            depth += 1;
        }
    }
    match kind? {
        "allprop" => Some(Asked::AllProp { include }),
        "propname" => Some(Asked::PropName),
        _ => Some(Asked::Prop(props)),
    }
}

/// `xmlns:p=""`: not namespace-well-formed XML 1.0 (a prefix cannot be undeclared); dav-server
/// answers 400 to it (litmus `propfind_invalid2`).
fn undeclares_a_prefix(e: &BytesStart<'_>) -> bool {
    e.attributes()
        .flatten()
        .any(|a| a.key.as_ref().starts_with("xmlns:") && a.value.is_empty())
}

fn local(e: &BytesStart<'_>) -> String {
    e.local_name().into_inner().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dav(name: &str) -> PropName {
        PropName {
            ns: Some("DAV:".into()),
            name: name.into(),
        }
    }

    #[test]
    fn the_three_shapes() {
        assert_eq!(
            parse(b""),
            Some(Asked::AllProp {
                include: Vec::new()
            })
        );
        assert_eq!(
            parse(br#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>"#),
            Some(Asked::AllProp {
                include: Vec::new()
            })
        );
        assert_eq!(
            parse(br#"<propfind xmlns="DAV:"><propname/></propfind>"#),
            Some(Asked::PropName)
        );
        let rclone = br#"<?xml version="1.0"?>
<d:propfind xmlns:d="DAV:" xmlns:oc="http://owncloud.org/ns">
 <d:prop>
  <d:displayname />
  <d:getlastmodified />
  <oc:checksums />
  <x:odd xmlns:x="urn:x"><x:ignored/></x:odd>
  <plain xmlns=""/>
 </d:prop>
</d:propfind>"#;
        assert_eq!(
            parse(rclone),
            Some(Asked::Prop(vec![
                dav("displayname"),
                dav("getlastmodified"),
                PropName {
                    ns: Some("http://owncloud.org/ns".into()),
                    name: "checksums".into()
                },
                PropName {
                    ns: Some("urn:x".into()),
                    name: "odd".into()
                },
                PropName {
                    ns: None,
                    name: "plain".into()
                },
            ]))
        );
        let include = br#"<D:propfind xmlns:D="DAV:"><D:allprop/><D:include><D:quota-used-bytes/></D:include></D:propfind>"#;
        assert_eq!(
            parse(include),
            Some(Asked::AllProp {
                include: vec![dav("quota-used-bytes")]
            })
        );
    }

    #[test]
    fn the_client_bodies_are_prop_lists() {
        assert_eq!(
            parse(ALLPROP.as_bytes()),
            Some(Asked::AllProp {
                include: Vec::new()
            })
        );
        for (body, n) in [(RCLONE, 8), (FINDER, 8), (WINDOWS, 14)] {
            match parse(body.as_bytes()) {
                Some(Asked::Prop(p)) => assert_eq!(p.len(), n, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn what_is_no_propfind_is_left_to_dav_server() {
        assert_eq!(parse(b"<propfind><allprop/></propfind>"), None);
        assert_eq!(parse(br#"<D:lockinfo xmlns:D="DAV:"/>"#), None);
        assert_eq!(
            parse(br#"<D:propfind xmlns:D="DAV:"><D:other/></D:propfind>"#),
            None
        );
        assert_eq!(
            parse(br#"<D:propfind xmlns:D="DAV:"><D:prop><y:a/></D:prop></D:propfind>"#),
            None
        );
        assert_eq!(
            parse(
                br#"<D:propfind xmlns:D="DAV:"><D:prop><b:foo xmlns:b=""/></D:prop></D:propfind>"#
            ),
            None
        );
    }
}
