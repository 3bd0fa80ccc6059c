//! `responder controller` against the real API server (v1.20, dual-stack): a
//! MetalLB layer-2 configuration applied unchanged, Services created with no
//! status, and what the controller writes. (`loadBalancerClass` does not exist in
//! v1.20: that path is tested with the mock API in responder-user.)
use responder_tests::lab::controller_lab::{lb_service, ControllerLab, NAMESPACE, WAIT};
use responder_tests::netns::wait_for;
use serde_json::json;

const POOL_ANNOTATION: &str = "metallb.io/ip-allocated-from-pool";

fn configuration() -> String {
    std::fs::read_to_string(format!(
        "{}/k8s/metallb-layer2.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn tcp80() -> [(&'static str, u16); 1] {
    [("TCP", 80)]
}

#[test]
fn a_metallb_layer2_configuration_gives_every_service_its_addresses() {
    let mut lab = ControllerLab::start("alloc");
    lab.apply(&configuration());
    lab.kubectl_ok(&["create", "namespace", "internal"]);
    lab.spawn_controller("ctl");
    lab.wait_leader(None);

    let create = |name: &str, spec: serde_json::Value, annotations: serde_json::Value| {
        lab.create_service("default", lb_service(name, &tcp80(), spec, annotations));
    };
    // IPv4 by default; avoidBuggyIPs skips 192.0.2.0.
    create("web", json!({}), json!({}));
    lab.wait_ingress_eq("default", "web", &["192.0.2.1"]);
    assert_eq!(
        lab.annotation("default", "web", POOL_ANNOTATION).as_deref(),
        Some("public-v4")
    );
    lab.wait_event(
        "default",
        "Service",
        "web",
        "IPAllocated",
        "assigned 192.0.2.1 from pool public-v4",
    );

    // SingleStack IPv6: the range inside the /64, not the /64 kept for `internal`.
    create(
        "v6-only",
        json!({ "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv6"] }),
        json!({}),
    );
    lab.wait_ingress_eq("default", "v6-only", &["2001:db8:100::10"]);

    // Dual-stack: both families, in ipFamilies order, from two pools.
    create(
        "prefer",
        json!({ "ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv6", "IPv4"] }),
        json!({}),
    );
    lab.wait_ingress_eq("default", "prefer", &["2001:db8:100::11", "192.0.2.2"]);
    assert_eq!(
        lab.annotation("default", "prefer", POOL_ANNOTATION)
            .as_deref(),
        Some("public-v6,public-v4")
    );
    create(
        "require",
        json!({ "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"] }),
        json!({}),
    );
    lab.wait_ingress_eq("default", "require", &["192.0.2.3", "2001:db8:100::12"]);

    // Pinned addresses: spec.loadBalancerIP, and the annotation (here in the
    // autoAssign: false pool, which a requested address may use).
    create(
        "pinned",
        json!({ "loadBalancerIP": "192.0.2.20" }),
        json!({}),
    );
    lab.wait_ingress_eq("default", "pinned", &["192.0.2.20"]);
    create(
        "by-annotation",
        json!({ "ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"] }),
        json!({ "metallb.io/loadBalancerIPs": "203.0.113.9,2001:db8:300::9" }),
    );
    lab.wait_ingress_eq(
        "default",
        "by-annotation",
        &["203.0.113.9", "2001:db8:300::9"],
    );

    // A pool by name, both spellings; autoAssign: false pools only this way.
    create(
        "from-dual",
        json!({ "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"] }),
        json!({ "metallb.io/address-pool": "dual" }),
    );
    lab.wait_ingress_eq("default", "from-dual", &["203.0.113.0", "2001:db8:300::1"]);
    assert_eq!(
        lab.annotation("default", "from-dual", POOL_ANNOTATION)
            .as_deref(),
        Some("dual")
    );
    create(
        "legacy",
        json!({}),
        json!({ "metallb.universe.tf/address-pool": "dual" }),
    );
    lab.wait_ingress_eq("default", "legacy", &["203.0.113.1"]);

    // The /64 kept for the `internal` namespace (serviceAllocation.namespaces).
    lab.create_service(
        "internal",
        lb_service(
            "db",
            &[("TCP", 5432)],
            json!({ "ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv6"] }),
            json!({}),
        ),
    );
    lab.wait_ingress_eq("internal", "db", &["2001:db8:200::1"]);
    assert_eq!(
        lab.annotation("internal", "db", POOL_ANNOTATION).as_deref(),
        Some("internal-v6")
    );

    // Sharing: same key, same address, other ports.
    lab.create_service(
        "default",
        lb_service(
            "dns-tcp",
            &[("TCP", 53)],
            json!({}),
            json!({ "metallb.io/allow-shared-ip": "dns", "metallb.io/loadBalancerIPs": "192.0.2.30" }),
        ),
    );
    lab.wait_ingress_eq("default", "dns-tcp", &["192.0.2.30"]);
    lab.create_service(
        "default",
        lb_service(
            "dns-udp",
            &[("UDP", 53)],
            json!({}),
            json!({ "metallb.io/allow-shared-ip": "dns", "metallb.io/loadBalancerIPs": "192.0.2.30" }),
        ),
    );
    lab.wait_ingress_eq("default", "dns-udp", &["192.0.2.30"]);
    // ... and a port clash is refused, with the reason in an Event.
    lab.create_service(
        "default",
        lb_service(
            "dns-clash",
            &[("TCP", 53)],
            json!({}),
            json!({ "metallb.io/allow-shared-ip": "dns", "metallb.io/loadBalancerIPs": "192.0.2.30" }),
        ),
    );
    lab.wait_event(
        "default",
        "Service",
        "dns-clash",
        "AllocationFailed",
        "port TCP/53 on 192.0.2.30 is already used by default/dns-tcp",
    );
    assert!(lab.ingress("default", "dns-clash").is_empty());

    // RequireDualStack with an IPv4-only pool: nothing, and the Event says which.
    create(
        "needs-v6",
        json!({ "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"] }),
        json!({ "metallb.io/address-pool": "public-v4" }),
    );
    lab.wait_event(
        "default",
        "Service",
        "needs-v6",
        "AllocationFailed",
        "no IPv6 pool has a free address",
    );
    assert!(
        lab.ingress("default", "needs-v6").is_empty(),
        "stays pending"
    );

    // Pool status: web, prefer, require, pinned, dns (shared: counted once); a /27
    // without .0 has 31 addresses.
    lab.wait_pool_status("public-v4", "assignedIPv4", 5);
    lab.wait_pool_status("public-v4", "availableIPv4", 26);
    lab.wait_pool_status("internal-v6", "assignedIPv6", 1);
    // 2^64 - 1 does not fit the int64 field: reported as its maximum, as MetalLB.
    lab.wait_pool_status("internal-v6", "availableIPv6", i64::MAX);

    // Deleting a Service frees its address: the next Service gets it.
    lab.delete_service("default", "web");
    lab.wait_pool_status("public-v4", "assignedIPv4", 4);
    create("web2", json!({}), json!({}));
    lab.wait_ingress_eq("default", "web2", &["192.0.2.1"]);
}

#[test]
fn pool_changes_move_addresses_and_bad_pools_are_refused_alone() {
    let mut lab = ControllerLab::start("pools");
    let pool = |name: &str, addresses: &[&str]| {
        format!(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\nspec:\n  addresses: {}\n",
            serde_json::to_string(addresses).expect("json")
        )
    };
    lab.apply(&pool("a", &["192.0.2.0/30"]));
    let ctl = lab.spawn_controller("ctl");
    lab.wait_leader(None);
    for name in ["one", "two"] {
        lab.create_service("default", lb_service(name, &tcp80(), json!({}), json!({})));
    }
    lab.wait_ingress_eq("default", "one", &["192.0.2.0"]);
    lab.wait_ingress_eq("default", "two", &["192.0.2.1"]);

    // A newer pool overlapping `a` is refused, and so is a malformed one; a good
    // pool added beside them works.
    lab.apply(&pool("b", &["192.0.2.2-192.0.2.9"]));
    lab.wait_event(
        NAMESPACE,
        "IPAddressPool",
        "b",
        "InvalidPool",
        "entry \"192.0.2.2-192.0.2.9\" overlaps entry \"192.0.2.0/30\" of pool \"a\"",
    );
    lab.apply(&pool("c", &["192.0.2.300/24"]));
    lab.wait_event(
        NAMESPACE,
        "IPAddressPool",
        "c",
        "InvalidPool",
        "is not a valid CIDR",
    );
    assert!(
        lab.controllers[ctl]
            .log()
            .contains("address pool \"c\" refused"),
        "the refusal is logged"
    );
    lab.apply(&pool("d", &["203.0.113.0/30"]));
    lab.create_service(
        "default",
        lb_service(
            "three",
            &tcp80(),
            json!({}),
            json!({ "metallb.io/address-pool": "d" }),
        ),
    );
    lab.wait_ingress_eq("default", "three", &["203.0.113.0"]);
    lab.wait_pool_status("d", "assignedIPv4", 1);

    // `a` shrinks: 192.0.2.0 leaves every pool and moves; 192.0.2.1 stays.
    lab.apply(&pool("a", &["192.0.2.1-192.0.2.3"]));
    lab.wait_ingress_eq("default", "one", &["192.0.2.2"]);
    lab.wait_event(
        "default",
        "Service",
        "one",
        "IPAllocated",
        "192.0.2.0 moved: it is not in any address pool",
    );
    assert_eq!(lab.ingress("default", "two"), ["192.0.2.1"]);

    // `a` goes: `b` no longer overlaps anything and is accepted; what it holds
    // stays, what it does not moves into it.
    lab.kubectl_ok(&["delete", "ipaddresspool", "-n", NAMESPACE, "a"]);
    lab.wait_ingress_eq("default", "two", &["192.0.2.3"]);
    assert_eq!(
        lab.ingress("default", "one"),
        ["192.0.2.2"],
        "still in a pool: kept"
    );
    assert_eq!(
        lab.annotation("default", "one", POOL_ANNOTATION).as_deref(),
        Some("b")
    );
    assert_eq!(lab.ingress("default", "three"), ["203.0.113.0"]);
}

#[test]
fn a_restart_or_a_failover_moves_nothing() {
    let mut lab = ControllerLab::start("failover");
    lab.apply(&format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\n  namespace: {NAMESPACE}\nspec:\n  addresses: [192.0.2.0/29]\n"
    ));
    let alpha = lab.spawn_controller("alpha");
    let beta = lab.spawn_controller("beta");
    let first = lab.wait_leader(None);
    for (i, name) in ["s1", "s2", "s3"].into_iter().enumerate() {
        lab.create_service("default", lb_service(name, &tcp80(), json!({}), json!({})));
        lab.wait_ingress_eq("default", name, &[&format!("192.0.2.{i}")]);
    }
    // 192.0.2.0 is free again: a controller that allocated afresh in creation order
    // would hand s2 and s3 new addresses.
    lab.delete_service("default", "s1");
    lab.wait_pool_status("p", "assignedIPv4", 2);
    let allocated_events = |lab: &ControllerLab, name: &str| {
        lab.events("default", "Service", name)
            .into_iter()
            .filter(|(reason, _)| reason == "IPAllocated")
            .count()
    };

    // The leader dies without handing over: the standby takes over.
    let (dead, standby) = if first == "alpha" {
        (alpha, beta)
    } else {
        (beta, alpha)
    };
    lab.kill_controller(dead);
    let second = lab.wait_leader(Some(&first));
    assert_eq!(second, lab.controllers[standby].identity);
    lab.create_service("default", lb_service("s4", &tcp80(), json!({}), json!({})));
    lab.wait_ingress_eq("default", "s4", &["192.0.2.0"]);
    assert_eq!(lab.ingress("default", "s2"), ["192.0.2.1"]);
    assert_eq!(lab.ingress("default", "s3"), ["192.0.2.2"]);

    // The dead one comes back as a standby; the leader stops gracefully and
    // hands its Lease over.
    let back = lab.spawn_controller(&first);
    let leader_index = standby;
    assert_eq!(lab.stop_controller(leader_index), Some(0), "clean exit");
    lab.wait_leader(Some(&second));
    assert!(lab.controllers[back].is_running());
    lab.create_service("default", lb_service("s5", &tcp80(), json!({}), json!({})));
    lab.wait_ingress_eq("default", "s5", &["192.0.2.3"]);
    for (name, address) in [
        ("s2", "192.0.2.1"),
        ("s3", "192.0.2.2"),
        ("s4", "192.0.2.0"),
    ] {
        assert_eq!(lab.ingress("default", name), [address], "{name} moved");
        assert_eq!(
            allocated_events(&lab, name),
            1,
            "{name} was allocated again"
        );
    }
    assert!(
        wait_for(WAIT, || (lab.leader().as_deref() == Some(first.as_str()))
            .then_some(()))
        .is_some(),
        "the restarted replica leads"
    );
}
