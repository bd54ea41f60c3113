//! `README.zh-CN.md` is kept in step with `README.md` (issue 20): the same headings at the same
//! levels in the same order, every fenced code block byte-identical and in the same order, every
//! link target and image path of the English README present, and the language switch on the
//! first line of each. A section added to README.md fails this test until it is translated.
//!
//! The README uses only ATX headings, backtick fences, inline links and `<…>` autolinks, so a
//! line scanner reads it; a Markdown parser crate would be a dependency for this one test.

use std::collections::BTreeSet;
use std::path::Path;

/// What two language versions of the README must share.
#[derive(Debug, Default)]
struct Outline {
    /// The level (1–6) of every heading, in order.
    heading_levels: Vec<usize>,
    /// The heading lines themselves, to name a section in a failure.
    headings: Vec<String>,
    /// Every fenced code block, fence lines included, in order.
    fences: Vec<String>,
    /// Every link target and image path (`](target)` and `<https://…>`), outside code.
    links: BTreeSet<String>,
    /// Explicit anchors (`<a id="x">`), which the Chinese README uses to keep English fragments.
    anchors: BTreeSet<String>,
}

fn read(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The fence marker a line opens or closes a fenced block with, if any.
fn fence_marker(line: &str) -> Option<&str> {
    let trimmed = line.trim_start();
    let ticks = trimmed.len() - trimmed.trim_start_matches('`').len();
    (ticks >= 3).then_some(&trimmed[..ticks])
}

fn outline(text: &str) -> Outline {
    let mut out = Outline::default();
    let mut prose = String::new();
    let mut fence: Option<(String, Vec<&str>)> = None;
    for line in text.lines() {
        if let Some((marker, lines)) = fence.as_mut() {
            lines.push(line);
            let closing = line.trim();
            if closing.len() >= marker.len() && closing.trim_start_matches('`').is_empty() {
                out.fences.push(lines.join("\n"));
                fence = None;
            }
            continue;
        }
        if let Some(marker) = fence_marker(line) {
            fence = Some((marker.to_string(), vec![line]));
            continue;
        }
        let hashes = line.len() - line.trim_start_matches('#').len();
        if (1..=6).contains(&hashes) && line[hashes..].starts_with(' ') {
            out.heading_levels.push(hashes);
            out.headings.push(line.to_string());
        }
        prose.push_str(line);
        prose.push('\n');
    }
    assert!(fence.is_none(), "a fenced code block is never closed");

    // Inline code may span lines and hold `](`; only what lies outside it is scanned for links.
    let outside_code: String = prose.split('`').step_by(2).collect::<Vec<_>>().join(" ");
    let mut rest = outside_code.as_str();
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            out.links.insert(rest[..end].to_string());
        }
    }
    for scheme in ["<https://", "<http://"] {
        let mut rest = outside_code.as_str();
        while let Some(at) = rest.find(scheme) {
            rest = &rest[at + 1..];
            if let Some(end) = rest.find('>') {
                out.links.insert(rest[..end].to_string());
            }
        }
    }
    let mut rest = outside_code.as_str();
    while let Some(at) = rest.find("<a id=\"") {
        rest = &rest[at + 7..];
        if let Some(end) = rest.find('"') {
            out.anchors.insert(rest[..end].to_string());
        }
    }
    out
}

#[test]
fn the_chinese_readme_keeps_in_step_with_the_english_one() {
    let en_text = read("README.md");
    let zh_text = read("README.zh-CN.md");
    assert_eq!(
        en_text.lines().next(),
        Some("[中文说明](README.zh-CN.md)"),
        "README.md starts with the link to the Chinese version"
    );
    assert_eq!(
        zh_text.lines().next(),
        Some("[English](README.md)"),
        "README.zh-CN.md starts with the link to the English version"
    );
    let en = outline(&en_text);
    let zh = outline(&zh_text);

    if en.heading_levels != zh.heading_levels {
        let first = en
            .heading_levels
            .iter()
            .zip(&zh.heading_levels)
            .position(|(a, b)| a != b)
            .unwrap_or(en.heading_levels.len().min(zh.heading_levels.len()));
        panic!(
            "headings differ from heading {} on: README.md has {} ({:?}), README.zh-CN.md has {} \
             ({:?}); translate the section README.md added or moved",
            first + 1,
            en.headings.len(),
            en.headings.get(first),
            zh.headings.len(),
            zh.headings.get(first),
        );
    }

    for (i, block) in en.fences.iter().enumerate() {
        assert_eq!(
            zh.fences.get(i),
            Some(block),
            "code block {} of README.md (of {}) is not the same in README.zh-CN.md (which has {}); \
             copy it byte for byte",
            i + 1,
            en.fences.len(),
            zh.fences.len(),
        );
    }
    assert_eq!(
        en.fences.len(),
        zh.fences.len(),
        "README.zh-CN.md has code blocks README.md does not"
    );

    let missing: Vec<&String> = en
        .links
        .iter()
        .filter(|l| l.as_str() != "README.zh-CN.md" && !zh.links.contains(*l))
        .collect();
    assert!(
        missing.is_empty(),
        "links of README.md missing from README.zh-CN.md: {missing:?}"
    );

    // English fragments follow GitHub's slugs of English headings; the Chinese headings need an
    // explicit `<a id>` for each fragment, or its links lead nowhere.
    let unanchored: Vec<&String> = zh
        .links
        .iter()
        .filter(|l| l.starts_with('#') && !zh.anchors.contains(&l[1..]))
        .collect();
    assert!(
        unanchored.is_empty(),
        "fragment links of README.zh-CN.md without an `<a id=\"…\">` anchor there: {unanchored:?}"
    );
}

#[test]
fn the_outline_reader_sees_what_github_renders() {
    let text = "[x](README.zh-CN.md)\n# Title\n\n## A `code](not)` [b](#b)\n```sh\n# not a heading\n[c](d)\n```\nsee <https://e.example> and `two\nlines](f)`\n<a id=\"b\"></a>\n### C\n";
    let o = outline(text);
    assert_eq!(o.heading_levels, vec![1, 2, 3]);
    assert_eq!(
        o.fences,
        vec!["```sh\n# not a heading\n[c](d)\n```".to_string()]
    );
    let links: Vec<&str> = o.links.iter().map(String::as_str).collect();
    assert_eq!(links, vec!["#b", "README.zh-CN.md", "https://e.example"]);
    assert!(o.anchors.contains("b"));
}
