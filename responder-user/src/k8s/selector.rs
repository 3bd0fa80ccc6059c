//! Kubernetes label selectors (`role=edge,zone in (a,b),!drain`), parsed once and
//! matched against Node labels locally so every agent judges eligibility from the
//! same Node objects it already watches.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid label selector {selector:?}: {reason}")]
pub struct SelectorError {
    selector: String,
    reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, BTreeSet<String>),
    NotIn(String, BTreeSet<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Requirement::Equals(key, value) => labels.get(key) == Some(value),
            // Kubernetes semantics: absent keys satisfy negative requirements.
            Requirement::NotEquals(key, value) => labels.get(key) != Some(value),
            Requirement::In(key, values) => labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::NotIn(key, values) => !labels.get(key).is_some_and(|v| values.contains(v)),
            Requirement::Exists(key) => labels.contains_key(key),
            Requirement::DoesNotExist(key) => !labels.contains_key(key),
        }
    }
}

/// A conjunction of requirements; the empty selector matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(selector: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| SelectorError {
            selector: selector.to_owned(),
            reason,
        };
        let requirements = split_top_level(selector)
            .map_err(fail)?
            .into_iter()
            .map(|part| parse_requirement(part.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        Ok(LabelSelector { requirements })
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let join = |values: &BTreeSet<String>| values.iter().cloned().collect::<Vec<_>>().join(",");
        match self {
            Requirement::Equals(k, v) => write!(f, "{k}={v}"),
            Requirement::NotEquals(k, v) => write!(f, "{k}!={v}"),
            Requirement::In(k, vs) => write!(f, "{k} in ({})", join(vs)),
            Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", join(vs)),
            Requirement::Exists(k) => write!(f, "{k}"),
            Requirement::DoesNotExist(k) => write!(f, "!{k}"),
        }
    }
}

/// Splits on commas outside parentheses, so `a in (x,y),b` yields two requirements.
fn split_top_level(selector: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0u32;
    let mut start = 0;
    for (i, c) in selector.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err("nested parenthesis".into()),
            ')' if depth == 1 => depth = 0,
            ')' => return Err("unbalanced ')'".into()),
            ',' if depth == 0 => {
                parts.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err("unclosed '('".into());
    }
    parts.push(&selector[start..]);
    if selector.trim().is_empty() {
        return Ok(Vec::new());
    }
    if parts.iter().any(|p| p.trim().is_empty()) {
        return Err("empty requirement".into());
    }
    Ok(parts)
}

fn parse_requirement(text: &str) -> Result<Requirement, String> {
    if let Some(open) = text.find('(') {
        let close = text
            .strip_suffix(')')
            .ok_or_else(|| format!("{text:?}: text after ')'"))?;
        let mut head = text[..open].split_whitespace();
        let (Some(key), Some(op), None) = (head.next(), head.next(), head.next()) else {
            return Err(format!(
                "{text:?}: expected `key in (…)` or `key notin (…)`"
            ));
        };
        let values = close[open + 1..]
            .split(',')
            .map(|v| parse_value(v.trim()))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let key = parse_key(key)?;
        return match op {
            "in" => Ok(Requirement::In(key, values)),
            "notin" => Ok(Requirement::NotIn(key, values)),
            other => Err(format!("{text:?}: unknown set operator {other:?}")),
        };
    }
    if let Some((key, value)) = text.split_once("!=") {
        return Ok(Requirement::NotEquals(
            parse_key(key.trim())?,
            parse_value(value.trim())?,
        ));
    }
    if let Some((key, value)) = text.split_once('=') {
        let value = value.strip_prefix('=').unwrap_or(value);
        return Ok(Requirement::Equals(
            parse_key(key.trim())?,
            parse_value(value.trim())?,
        ));
    }
    if let Some(key) = text.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(parse_key(key.trim())?));
    }
    Ok(Requirement::Exists(parse_key(text)?))
}

/// `[prefix/]name`: DNS-subdomain prefix up to 253 bytes, name up to 63 bytes of
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
fn parse_key(key: &str) -> Result<String, String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let valid = !prefix.is_empty()
            && prefix.len() <= 253
            && prefix.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !valid {
            return Err(format!("invalid key prefix {prefix:?}"));
        }
    }
    if name.is_empty() || !is_label_token(name) {
        return Err(format!("invalid key {key:?}"));
    }
    Ok(key.to_owned())
}

fn parse_value(value: &str) -> Result<String, String> {
    if value.is_empty() || is_label_token(value) {
        Ok(value.to_owned())
    } else {
        Err(format!("invalid value {value:?}"))
    }
}

fn is_label_token(token: &str) -> bool {
    let bytes = token.as_bytes();
    token.len() <= 63
        && bytes
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::fixtures::labels;

    fn selector(text: &str) -> LabelSelector {
        text.parse()
            .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    #[test]
    fn empty_selector_matches_everything() {
        assert!(selector("").matches(&labels(&[])));
        assert!(selector("  ").matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn parses_every_operator() {
        let parsed = selector("a=1, b==2,c!=3,d in (x, y),e notin (z),f,!g,example.com/h=v");
        let rendered: Vec<String> = parsed
            .requirements
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            rendered,
            [
                "a=1",
                "b=2",
                "c!=3",
                "d in (x,y)",
                "e notin (z)",
                "f",
                "!g",
                "example.com/h=v"
            ]
        );
    }

    #[test]
    fn equality_and_inequality() {
        let s = selector("role=edge,tier!=db");
        assert!(
            s.matches(&labels(&[("role", "edge")])),
            "absent key satisfies !="
        );
        assert!(s.matches(&labels(&[("role", "edge"), ("tier", "web")])));
        assert!(!s.matches(&labels(&[("role", "edge"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("role", "core")])));
        assert!(!s.matches(&labels(&[])));
    }

    #[test]
    fn set_membership() {
        let s = selector("zone in (a,b),rack notin (r1)");
        assert!(s.matches(&labels(&[("zone", "a")])));
        assert!(s.matches(&labels(&[("zone", "b"), ("rack", "r2")])));
        assert!(!s.matches(&labels(&[("zone", "c")])));
        assert!(!s.matches(&labels(&[])), "in requires the key");
        assert!(!s.matches(&labels(&[("zone", "a"), ("rack", "r1")])));
    }

    #[test]
    fn existence() {
        let s = selector("edge,!drain");
        assert!(s.matches(&labels(&[("edge", "")])));
        assert!(!s.matches(&labels(&[("edge", "x"), ("drain", "")])));
        assert!(!s.matches(&labels(&[("other", "x")])));
    }

    #[test]
    fn empty_value_is_allowed() {
        let s = selector("edge=");
        assert!(s.matches(&labels(&[("edge", "")])));
        assert!(!s.matches(&labels(&[("edge", "x")])));
    }

    #[test]
    fn rejects_malformed_selectors() {
        for bad in [
            "a=b,",
            ",a",
            "a in (x",
            "a in x)",
            "a in (x) y",
            "a within (x)",
            "in (x)",
            "a=b c",
            "-a=b",
            "a=b!",
            "a in ((x))",
            "Bad_Prefix/a=b",
            "!",
            "a>1",
        ] {
            assert!(
                bad.parse::<LabelSelector>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
