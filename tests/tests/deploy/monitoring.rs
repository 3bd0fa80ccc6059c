//! `deploy/monitoring/`: the ServiceMonitor and rules apply.
use super::*;

#[test]
fn monitoring_component_applies() {
    let server = ApiServer::start("deploy-monitoring");
    kubectl_ok(&server, &["apply", "-f", &component_dir("namespace.yaml")]);
    install_crds(
        &server,
        &[
            "apply",
            "-f",
            &format!(
                "{}/k8s/prometheus-operator-crds.yaml",
                env!("CARGO_MANIFEST_DIR")
            ),
        ],
        &[
            "crd/servicemonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        ],
    );
    let objects = component_dry_run(&server, "monitoring");
    let monitor = find(&objects, "ServiceMonitor", "responder");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    let rule = find(&objects, "PrometheusRule", "responder");
    let alerts = rule["spec"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").clone())
        .count();
    assert!(alerts >= 6, "{alerts} alerts");
    let dashboard = find(&objects, "ConfigMap", "responder-dashboard");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json = dashboard["data"]["responder.json"]
        .as_str()
        .expect("dashboard");
    let parsed: Value = serde_json::from_str(json).expect("dashboard JSON");
    assert_eq!(parsed["uid"], "responder");
    for service in ["responder-metrics", "responder-controller-metrics"] {
        let object = find(&objects, "Service", service);
        assert_eq!(
            object["spec"]["clusterIP"], "None",
            "{service}: every endpoint scraped"
        );
        assert_eq!(
            object["metadata"]["labels"]["app.kubernetes.io/part-of"],
            "responder"
        );
    }
}
