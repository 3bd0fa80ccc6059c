//! Checks every relative Markdown link of README.md, BENCHMARKS.md and
//! docs/*.md: the target file exists and, for `#anchor`, it has a heading
//! whose GitHub slug is the anchor.

/// GitHub's anchor for a heading: lowercase; only letters, digits, spaces,
/// '-' and '_' kept; spaces become '-'.
#[cfg(test)]
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::{
        collections::HashMap,
        fs,
        path::{Path, PathBuf},
    };

    use super::slug;

    fn is_fence(line: &str) -> bool {
        let l = line.trim_start();
        l.starts_with("```") || l.starts_with("~~~")
    }

    /// The text outside fenced code blocks, inline code spans blanked
    /// (a code span's `](` is no link).
    fn prose(text: &str) -> String {
        let mut out = String::new();
        let mut fenced = false;
        for line in text.lines() {
            if is_fence(line) {
                fenced = !fenced;
                out.push('\n');
                continue;
            }
            if !fenced {
                let mut in_code = false;
                for c in line.chars() {
                    if c == '`' {
                        in_code = !in_code;
                    } else if !in_code {
                        out.push(c);
                    }
                }
            }
            out.push('\n');
        }
        out
    }

    /// The anchors of a file's headings (outside fences), repeated ones
    /// suffixed -1, -2, … as GitHub does.
    fn anchors(text: &str) -> Vec<String> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut out = Vec::new();
        let mut fenced = false;
        for line in text.lines() {
            if is_fence(line) {
                fenced = !fenced;
                continue;
            }
            let hashes = line.chars().take_while(|&c| c == '#').count();
            if fenced || hashes == 0 || hashes > 6 || !line[hashes..].starts_with(' ') {
                continue;
            }
            let base = slug(line[hashes..].trim());
            let n = seen.entry(base.clone()).or_insert(0);
            out.push(if *n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            });
            *n += 1;
        }
        out
    }

    /// Targets of `[text](target)` links (the text may span lines).
    fn links(text: &str) -> Vec<String> {
        let prose = prose(text);
        let mut out = Vec::new();
        let mut rest = prose.as_str();
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            match after.find(')') {
                Some(end) if !after[..end].contains(char::is_whitespace) => {
                    out.push(after[..end].to_string());
                    rest = &after[end..];
                }
                _ => rest = after,
            }
        }
        out
    }

    fn checked_files(root: &Path) -> Vec<PathBuf> {
        let mut files = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
        let mut docs: Vec<PathBuf> = fs::read_dir(root.join("docs"))
            .expect("read docs/")
            .map(|e| e.expect("docs/ entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
        files
    }

    /// Why `target`, linked from `from`, is broken; None when it is fine.
    fn broken(from: &Path, text: &str, target: &str) -> Option<String> {
        if target.starts_with("http://")
            || target.starts_with("https://")
            || target.starts_with("mailto:")
        {
            return None;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((f, a)) => (f, Some(a)),
            None => (target, None),
        };
        let linked = if file.is_empty() {
            from.to_path_buf()
        } else {
            from.parent().expect("a file's directory").join(file)
        };
        if !linked.exists() {
            return Some(format!("{} does not exist", linked.display()));
        }
        let anchor = anchor?;
        let linked_text = if file.is_empty() {
            text.to_string()
        } else if linked.is_file() {
            fs::read_to_string(&linked).ok()?
        } else {
            return Some(format!(
                "{} is a directory, it has no #{anchor}",
                linked.display()
            ));
        };
        if anchors(&linked_text).iter().any(|a| a == anchor) {
            None
        } else {
            Some(format!(
                "{} has no heading whose anchor is #{anchor}",
                linked.display()
            ))
        }
    }

    #[test]
    fn every_relative_link_resolves() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut failures = Vec::new();
        let mut count = 0;
        for from in checked_files(&root) {
            let text = fs::read_to_string(&from)
                .unwrap_or_else(|e| panic!("read {}: {e}", from.display()));
            for target in links(&text) {
                count += 1;
                if let Some(why) = broken(&from, &text, &target) {
                    failures.push(format!("{}: ({target}): {why}", from.display()));
                }
            }
        }
        assert!(count > 0, "no links found: the scanner is broken");
        assert!(
            failures.is_empty(),
            "broken links:\n{}",
            failures.join("\n")
        );
    }

    #[test]
    fn slug_lowercases_and_joins_words() {
        assert_eq!(slug("The stale-agent gate"), "the-stale-agent-gate");
    }

    #[test]
    fn slug_drops_punctuation() {
        assert_eq!(
            slug("As installed: what runs for real in the tests"),
            "as-installed-what-runs-for-real-in-the-tests"
        );
        assert_eq!(
            slug("IPv6 VIPs and the NIC's multicast filter"),
            "ipv6-vips-and-the-nics-multicast-filter"
        );
    }

    #[test]
    fn slug_keeps_underscores_and_each_space() {
        assert_eq!(
            slug("responder — XDP neighbor_responder"),
            "responder--xdp-neighbor_responder"
        );
    }

    #[test]
    fn repeated_headings_are_numbered_and_fences_skipped() {
        let text = "# A\n## A\n```\n# A\n[x](nowhere.md)\n```\n### A b\n";
        assert_eq!(anchors(text), ["a", "a-1", "a-b"]);
        assert!(links(text).is_empty());
        assert_eq!(
            links("see [the\ngate](operating.md#the-gate) and `[no](link)`"),
            ["operating.md#the-gate"]
        );
    }
}
