//! `metav1.LabelSelector` objects (`matchLabels` / `matchExpressions`), as MetalLB's
//! `namespaceSelectors` and `serviceSelectors` hold them, turned into the crate's
//! label-selector matcher so both forms share one set of matching rules.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::LabelSelector;

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorSpec {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct LabelSelectorRequirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelectorSpec {
    /// The empty selector matches everything, as in Kubernetes.
    pub fn to_selector(&self) -> Result<LabelSelector, String> {
        let mut parts = Vec::new();
        for (key, value) in &self.match_labels {
            parts.push(format!("{}={}", token(key)?, token(value)?));
        }
        for requirement in &self.match_expressions {
            parts.push(requirement.render()?);
        }
        parts.join(",").parse().map_err(|e| format!("{e}"))
    }
}

impl LabelSelectorRequirement {
    fn render(&self) -> Result<String, String> {
        let key = token(&self.key)?;
        let set = |operator: &str| {
            if self.values.is_empty() {
                return Err(format!(
                    "{} on key {key:?} needs at least one value",
                    self.operator
                ));
            }
            let values = self
                .values
                .iter()
                .map(|v| token(v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(format!("{key} {operator} ({})", values.join(",")))
        };
        let bare = |prefix: &str| {
            if self.values.is_empty() {
                Ok(format!("{prefix}{key}"))
            } else {
                Err(format!("{} on key {key:?} takes no values", self.operator))
            }
        };
        match self.operator.as_str() {
            "In" => set("in"),
            "NotIn" => set("notin"),
            "Exists" => bare(""),
            "DoesNotExist" => bare("!"),
            other => Err(format!(
                "unknown operator {other:?} (expected In, NotIn, Exists or DoesNotExist)"
            )),
        }
    }
}

/// Keys and values go through the textual selector parser, which validates them; only
/// characters that can appear in a valid key or value are let through, so a value
/// like `a,b` cannot smuggle in a second requirement.
fn token(text: &str) -> Result<&str, String> {
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
    {
        Ok(text)
    } else {
        Err(format!("invalid label key or value {text:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k8s::fixtures::labels;

    fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        let selector = LabelSelectorSpec::default().to_selector().unwrap();
        assert!(selector.matches(&labels(&[])));
        assert!(selector.matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_and_expressions_are_anded() {
        let spec = LabelSelectorSpec {
            match_labels: labels(&[("team", "web"), ("example.com/tier", "")]),
            match_expressions: vec![
                requirement("zone", "In", &["a", "b"]),
                requirement("rack", "NotIn", &["r1"]),
                requirement("edge", "Exists", &[]),
                requirement("drain", "DoesNotExist", &[]),
            ],
        };
        let selector = spec.to_selector().unwrap();
        let base = [
            ("team", "web"),
            ("example.com/tier", ""),
            ("zone", "a"),
            ("edge", ""),
        ];
        assert!(selector.matches(&labels(&base)));
        let mut rack = base.to_vec();
        rack.push(("rack", "r1"));
        assert!(!selector.matches(&labels(&rack)));
        let mut drain = base.to_vec();
        drain.push(("drain", "yes"));
        assert!(!selector.matches(&labels(&drain)));
        assert!(!selector.matches(&labels(&base[..3])), "edge must exist");
        assert!(!selector.matches(&labels(&[("team", "web"), ("zone", "c"), ("edge", "")])));
    }

    #[test]
    fn deserializes_the_kubernetes_form() {
        let spec: LabelSelectorSpec = serde_json::from_str(
            r#"{"matchLabels":{"team":"web"},
                "matchExpressions":[{"key":"zone","operator":"In","values":["a"]}]}"#,
        )
        .unwrap();
        assert_eq!(spec.match_labels, labels(&[("team", "web")]));
        assert_eq!(spec.match_expressions, [requirement("zone", "In", &["a"])]);
    }

    #[test]
    fn rejects_malformed_selectors() {
        let bad = [
            LabelSelectorSpec {
                match_labels: labels(&[("team", "a,b")]),
                ..Default::default()
            },
            LabelSelectorSpec {
                match_labels: labels(&[("bad key", "x")]),
                ..Default::default()
            },
            LabelSelectorSpec {
                match_labels: labels(&[("-team", "x")]),
                ..Default::default()
            },
            LabelSelectorSpec {
                match_expressions: vec![requirement("zone", "In", &[])],
                ..Default::default()
            },
            LabelSelectorSpec {
                match_expressions: vec![requirement("zone", "Exists", &["a"])],
                ..Default::default()
            },
            LabelSelectorSpec {
                match_expressions: vec![requirement("zone", "Gt", &["1"])],
                ..Default::default()
            },
            LabelSelectorSpec {
                match_expressions: vec![requirement("zone", "In", &["a)"])],
                ..Default::default()
            },
        ];
        for spec in bad {
            assert!(spec.to_selector().is_err(), "{spec:?} should be refused");
        }
    }
}
