//! Property tests of the parsers that see hostile input first: request paths, Range headers,
//! If headers and link trees. Bounded case counts, so CI time stays small.

use pan123_webdav::download::range::{parse_range, RangeRequest};
use pan123_webdav::server::{if_header, paths};
use proptest::prelude::*;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Decoding never panics and never yields a segment that could climb or split a path.
    #[test]
    fn paths_never_escape(raw in "(/|%2[eEfF]|%5[cC]|%00|%ff|\\.|\\.\\.|[a-z ]|%[0-9a-fA-F]{2}){0,24}") {
        if let Ok(segs) = paths::decode(&raw) {
            for s in &segs {
                prop_assert!(s != "." && s != "..");
                prop_assert!(!s.contains(['/', '\\', '\0']));
            }
            // Canonical encoding round-trips.
            prop_assert_eq!(paths::decode(&paths::encode(&segs)).ok(), Some(segs));
        }
    }

    /// Any segments survive encode → decode.
    #[test]
    fn paths_round_trip(segs in proptest::collection::vec("[^/\\\\\\x00]{1,12}", 0..5)) {
        let segs: Vec<String> = segs.into_iter().filter(|s| s != "." && s != "..").collect();
        let decoded = paths::decode(&paths::encode(&segs)).expect("canonical paths decode");
        let nfc: Vec<String> = segs.iter().map(|s| unicode_normalization::UnicodeNormalization::nfc(s.as_str()).collect()).collect();
        prop_assert_eq!(decoded, nfc);
    }

    /// A Range answer is always inside the file, or a full/unsatisfiable answer.
    #[test]
    fn ranges_stay_in_bounds(value in "(bytes|items)=([0-9]{0,22})?-?([0-9]{0,22})?(,[0-9]{0,5}-[0-9]{0,5}){0,3}", size in 0u64..1_000_000) {
        let header = http::HeaderValue::from_str(&value).ok();
        match parse_range(header.as_ref(), size) {
            RangeRequest::Partial { start, end } => {
                prop_assert!(start <= end);
                prop_assert!(end < size);
            }
            RangeRequest::Full | RangeRequest::Unsatisfiable => {}
        }
    }

    /// The If-header check never panics, and an unterminated token or list after anything it
    /// accepts is refused (that is what makes dav-server's parser index past the end).
    #[test]
    fn if_headers_never_panic(value in "[()<>\\[\\]\" a-zN:/W]{0,40}") {
        if if_header::well_formed(value.as_bytes()) {
            for tail in ["(<x", "([\"x", "(", "<x"] {
                prop_assert!(!if_header::well_formed(format!("{value}{tail}").as_bytes()), "{value}{tail}");
            }
        }
    }

    /// The link-tree parser never panics, whatever the text.
    #[test]
    fn link_trees_never_panic(text in "([ ]{0,5}([0-9]{0,4}:){0,3}(https?://[a-z]{1,5}/[a-z%0-9]{0,8})?[a-z:]{0,4}\n){0,8}") {
        let _ = pan123_webdav::backend::link::tree::parse(&text);
    }
}
