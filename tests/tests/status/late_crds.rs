//! MetalLB's CRDs installed after the agents started are followed without a
//! restart.
use super::*;

#[test]
fn metallb_crds_installed_after_the_agents_started_are_followed() {
    let _serial = one_cluster_at_a_time();
    // No CRDs: the agents start in flags-only mode.
    let cluster = Cluster::start("late");
    cluster.create_lb_service("late", &["198.51.100.30"]);
    cluster.create_lb_service("kept", &["203.0.113.5"]);
    let late_owner = cluster.sole_owner(&["198.51.100.30"], "flags-only: late announced");
    let kept_owner = cluster.sole_owner(&["203.0.113.5"], "flags-only: kept announced");
    wait_arp(&cluster, "198.51.100.30", Some(late_owner));
    let status = cluster.status_json();
    for (name, owner) in [("late", late_owner), ("kept", kept_owner)] {
        let found = rows(&status, name);
        assert!(
            matches!(found.as_slice(), [row] if row["announced"] == true
                && row["node"] == owner && row["reported_by"] == json!([])),
            "{name} announced by {owner}, no ServiceL2Status without the CRDs: {status:#}"
        );
    }

    cluster.install_crds();
    let installed = Instant::now();
    // The pool of late's address is advertised by nothing.
    let applying = Instant::now();
    cluster.apply(&format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: svc, namespace: {NAMESPACE}}}
spec: {{addresses: ["198.51.100.16/28"]}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: adv, namespace: {NAMESPACE}}}
spec: {{addresses: ["203.0.113.0/28"]}}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: adv, namespace: {NAMESPACE}}}
spec: {{ipAddressPools: [adv]}}
"#
    ));
    cluster.nobody_holds(&["198.51.100.30"], "late's pool advertised by nothing");
    let withdrawn = applying.elapsed();
    let since_crds = installed.elapsed();
    wait_arp(&cluster, "198.51.100.30", None);
    let kept_status = wait_l2_status_nodes(&cluster, "kept", &[kept_owner]);
    assert_eq!(
        l2_status_nodes(&cluster, "late"),
        Vec::<String>::new(),
        "no ServiceL2Status for a Service nobody announces"
    );
    let kept_interface = cluster.agent(kept_owner).interface().to_owned();
    let unannounced = [Unannounced {
        service: "late",
        address: Some("198.51.100.30"),
        reason: "NotAdvertised",
        object: Some("IPAddressPool/svc"),
    }];
    let status = status_until(&cluster, |s| {
        mismatches(s, &unannounced).is_empty()
            && announced_by(s, "kept", kept_owner, &kept_interface)
    });
    let wrong = mismatches(&status, &unannounced);
    assert!(wrong.is_empty(), "{wrong:#?}\nin {status:#}");
    assert!(
        announced_by(&status, "kept", kept_owner, &kept_interface),
        "kept still announced by {kept_owner}, now with its ServiceL2Status: {status:#}"
    );
    wait_event(
        &cluster,
        "NotAdvertised",
        "NotAdvertised: ingress ip 198.51.100.30",
    );
    assert_eq!(
        cluster.holders("203.0.113.5"),
        vec![kept_owner],
        "the advertised address stays where it was"
    );
    eprintln!(
        "CRDs installed late: late withdrawn {:.2} s after `kubectl apply` of the pools began \
         ({:.2} s after the CRDs were served), kept's ServiceL2Status {:.2} s later",
        withdrawn.as_secs_f64(),
        since_crds.as_secs_f64(),
        kept_status.as_secs_f64()
    );
}
