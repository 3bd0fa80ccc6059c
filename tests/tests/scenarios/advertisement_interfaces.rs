//! An L2Advertisement's interfaces changed at run time move the answers to
//! the new segment.
use super::*;

fn advertisement(lab: &Segments, side: Side) -> String {
    let interfaces: Vec<String> = lab
        .interfaces(side)
        .iter()
        .map(|name| format!("\"{name}\""))
        .collect();
    format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: moving, namespace: {ns}}}
spec:
  ipAddressPools: [moving]
  interfaces: [{interfaces}]
"#,
        ns = segments::NAMESPACE,
        interfaces = interfaces.join(", ")
    )
}

/// MetalLB's "Modify L2 interface": an L2Advertisement's `interfaces`
/// changed at run time from each node's first NIC to its second moves the
/// answers (ARP and NDP) to the second segment, they stop on the first, and
/// ServiceL2Status names the new interface.
#[test]
fn changing_an_advertisements_interfaces_moves_the_answers() {
    let _serial = one_cluster_at_a_time();
    let lab = Segments::start("ifmv", [json!({}), json!({}), json!({})]);
    let pool = format!(
        r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: moving, namespace: {ns}}}
spec:
  addresses: ["203.0.113.32/28", "2001:db8:3::10-2001:db8:3::1f"]
  autoAssign: false
---"#,
        ns = segments::NAMESPACE,
    );
    lab.apply(&(pool + &advertisement(&lab, Side::Public)));
    let services: Api<Service> = Api::namespaced(lab.client(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "web", "annotations": {"metallb.io/address-pool": "moving"}},
        "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "RequireDualStack",
                 "ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 80, "protocol": "TCP"}]},
    }))
    .expect("service");
    lab.block(services.create(&PostParams::default(), &service))
        .expect("create Service");
    let addresses: Vec<String> = wait_for(segments::WAIT, || {
        let ips: Vec<String> = lab
            .block(services.get("web"))
            .ok()?
            .status?
            .load_balancer?
            .ingress?
            .into_iter()
            .filter_map(|i| i.ip)
            .collect();
        (ips.len() == 2).then_some(ips)
    })
    .expect("web gets both addresses");
    let web_v4 = addresses
        .iter()
        .find(|a| !a.contains(':'))
        .expect("v4")
        .clone();
    let web_v6 = addresses
        .iter()
        .find(|a| a.contains(':'))
        .expect("v6")
        .clone();

    let statuses: Api<ServiceL2Status> = Api::namespaced(lab.client(), segments::NAMESPACE);
    let status_names = |owner: &str, side: Side| {
        let want = json!([{ "name": lab.interface(owner, side) }]);
        let mut seen = Vec::new();
        let found = wait_for(segments::WAIT, || {
            let list = lab
                .block(statuses.list(&ListParams::default().labels("metallb.io/service-name=web")))
                .ok()?;
            seen = list
                .items
                .iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .collect();
            let [one] = seen.as_slice() else { return None };
            (one["status"]["node"] == owner && one["status"]["interfaces"] == want).then_some(())
        });
        assert!(
            found.is_some(),
            "one ServiceL2Status for web naming {owner} and {want} within {:?}; seen {seen:?}",
            segments::WAIT
        );
    };

    let owner = wait_for(segments::WAIT, || lab.holder_on(&addresses, Side::Public))
        .unwrap_or_else(|| {
            panic!(
                "web not held on the public side: {:?}",
                lab.holders_on(&web_v4)
            )
        });
    let public_mac = lab.mac(owner, Side::Public).to_owned();
    assert_eq!(lab.arp_answerers(Side::Public, &web_v4), only(&public_mac));
    assert_eq!(lab.nd_answerers(Side::Public, &web_v6), only(&public_mac));
    assert!(lab.arp_answerers(Side::Internal, &web_v4).is_empty());
    status_names(owner, Side::Public);

    let changed_at = Instant::now();
    lab.apply(&advertisement(&lab, Side::Internal));
    let moved = wait_for(segments::WAIT, || lab.holder_on(&addresses, Side::Internal))
        .unwrap_or_else(|| {
            panic!(
                "web not moved to the internal side: {:?}",
                lab.holders_on(&web_v4)
            )
        });
    eprintln!(
        "interfaces changed: web held on the internal NIC of {moved} after {:?}",
        changed_at.elapsed()
    );
    assert_eq!(moved, owner, "only the interfaces changed, not the node");
    let internal_mac = lab.mac(owner, Side::Internal).to_owned();
    assert_eq!(
        lab.arp_answerers(Side::Internal, &web_v4),
        only(&internal_mac)
    );
    assert_eq!(
        lab.nd_answerers(Side::Internal, &web_v6),
        only(&internal_mac)
    );
    assert!(
        lab.arp_answerers(Side::Public, &web_v4).is_empty(),
        "{web_v4} still answered on the public segment"
    );
    assert!(
        lab.nd_answerers(Side::Public, &web_v6).is_empty(),
        "{web_v6} still answered on the public segment"
    );
    status_names(owner, Side::Internal);
}
