//! `deploy/monitoring/`: every PromQL expression of the alerting rules and of the
//! Grafana dashboard names only metrics that the agent or the controller exports,
//! so a renamed metric cannot leave an alert silently matching nothing.

use std::collections::BTreeSet;

use serde_json::Value;

use super::ControllerMetrics;
use crate::ipam::{FamilyCounts, PoolStatus};
use crate::metrics::Metrics;

const RULES: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/monitoring/prometheusrule.yaml"
));
const DASHBOARD: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/monitoring/dashboards/responder.json"
));

/// Series names each registry exposes: `# TYPE` names (counters already carry
/// `_total` there in the text format), with a histogram's derived series. A
/// labelled family shows its TYPE line only with a series: the controller is
/// given one pool.
fn exported() -> BTreeSet<String> {
    let controller = ControllerMetrics::new();
    controller.set_pools(&[PoolStatus {
        pool: "p".into(),
        ipv4: FamilyCounts {
            assigned: 1,
            available: 1,
        },
        ipv6: FamilyCounts::default(),
    }]);
    let text = Metrics::new().encode() + &controller.encode();
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        names.insert(name.to_owned());
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
    }
    names
}

/// Binary and grouping keywords, and the aggregation operators, which may stand
/// apart from their `(` (`sum by (x) (…)`).
const KEYWORDS: [&str; 24] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
];

/// The metric names an expression selects: identifiers outside label matchers
/// (`{…}`), range selectors (`[…]`), strings and grouping lists (`by (…)`), that
/// are neither functions (followed by `(`) nor keywords.
fn metric_names(expr: &str) -> Vec<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let mut previous_word = String::new();
    while i < chars.len() {
        let c = chars[i];
        let closing = match c {
            '{' => Some('}'),
            '[' => Some(']'),
            '"' | '\'' => Some(c),
            '(' if matches!(
                previous_word.as_str(),
                "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
            ) =>
            {
                Some(')')
            }
            _ => None,
        };
        if let Some(closing) = closing {
            i += 1;
            while i < chars.len() && chars[i] != closing {
                i += 1;
            }
            i += 1;
            previous_word.clear();
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':'))
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next] == ' ' {
                next += 1;
            }
            let is_function = chars.get(next) == Some(&'(');
            if !is_function && !KEYWORDS.contains(&word.to_lowercase().as_str()) {
                names.push(word.clone());
            }
            previous_word = word;
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            // Numbers, and durations such as 5m after `offset`.
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !c.is_whitespace() {
            previous_word.clear();
        }
        i += 1;
    }
    names
}

/// `expr:` lines of the rules (the file keeps each expression on one line).
fn rule_exprs() -> Vec<String> {
    RULES
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("expr:"))
        .map(|expr| expr.trim().trim_matches('"').to_owned())
        .collect()
}

fn dashboard_exprs() -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", Value::String(expr)) => out.push(expr.clone()),
                        _ => walk(value, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    walk(&dashboard, &mut exprs);
    exprs
}

#[test]
fn the_scanner_finds_metrics_and_skips_the_rest() {
    assert_eq!(
        metric_names(
            r#"max by (pool, family) (a_total{x="y"} / (b + c_total[5m] offset 1h)) < 0.1 and on (node) d"#
        ),
        ["a_total", "b", "c_total", "d"]
    );
}

#[test]
fn every_expression_names_only_exported_metrics() {
    let exported = exported();
    let rules = rule_exprs();
    let alerts = RULES.matches("- alert:").count();
    assert_eq!(rules.len(), alerts, "one single-line expr per alert");
    let dashboard = dashboard_exprs();
    assert!(dashboard.len() >= 10, "{dashboard:?}");
    let mut used = BTreeSet::new();
    for expr in rules.iter().chain(&dashboard) {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "no metric in {expr:?}");
        for name in names {
            assert!(
                exported.contains(&name),
                "{name} (in {expr:?}) is not exported; exported: {exported:?}"
            );
            used.insert(name);
        }
    }
    // Spot checks that the exported set is what it claims to be.
    for name in [
        "responder_layer2_conflicts_total",
        "responder_controller_pool_addresses_available",
    ] {
        assert!(used.contains(name), "{name} unused");
    }
}

#[test]
fn the_rules_cover_what_operators_must_hear_about() {
    for alert in [
        "ResponderSplitBrain",
        "ResponderHeartbeatStale",
        "ResponderVIPsYielded",
        "ResponderLeaseRenewalFailures",
        "ResponderControllerLeaseRenewalFailures",
        "ResponderAllocationFailures",
        "ResponderPoolNearlyFull",
    ] {
        assert!(
            RULES.contains(&format!("- alert: {alert}\n")),
            "{alert} missing"
        );
    }
}
