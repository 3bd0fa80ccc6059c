use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::Instant,
};

use responder_common::VipKey;

use super::*;
use crate::{interface_names::InterfaceNames, k8s::ServiceRef};

/// Per-VIP counters and interface names as a test sets them; counts how
/// often the names are listed.
#[derive(Default)]
pub(super) struct FakeVips {
    pub samples: Vec<VipCounterSample>,
    pub names: InterfaceNames,
    pub name_listings: AtomicUsize,
}

impl VipCounterSource for FakeVips {
    fn vip_counter_samples(&self) -> Vec<VipCounterSample> {
        self.samples.clone()
    }

    fn interface_names(&self) -> InterfaceNames {
        self.name_listings.fetch_add(1, Ordering::Relaxed);
        self.names.clone()
    }
}

pub(super) fn key(ip: &str, ifindex: u32, outer: u16, inner: u16) -> VipKey {
    match ip.parse().expect("ip") {
        IpAddr::V4(a) => VipKey::v4(ifindex, outer, inner, a.octets()),
        IpAddr::V6(a) => VipKey::v6(ifindex, outer, inner, a.octets()),
    }
}

pub(super) fn names(pairs: &[(u32, &str)]) -> InterfaceNames {
    pairs
        .iter()
        .map(|&(ifindex, name)| (ifindex, name.to_owned()))
        .collect()
}

/// Name, labels in order, value as `f64` bits (so `1.500` equals `1.5`).
type Sample = (String, Vec<(String, String)>, u64);

/// What an exposition means, whatever its order and number formatting:
/// HELP and TYPE per family, and the set of samples with their labels in
/// order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Exposition {
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
    samples: BTreeSet<Sample>,
}

/// A strict parser of the text format 0.0.4: any other line fails the test.
fn parse_exposition(text: &str) -> Exposition {
    let mut parsed = Exposition::default();
    let body = text.strip_suffix('\n').expect("ends with a newline");
    for line in body.split('\n') {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name and text");
            let earlier = parsed.help.insert(name.to_owned(), help.to_owned());
            assert!(earlier.is_none(), "second HELP for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name and type");
            let earlier = parsed.types.insert(name.to_owned(), kind.to_owned());
            assert!(earlier.is_none(), "second TYPE for {name}");
        } else {
            let sample = parse_sample(line);
            assert!(parsed.samples.insert(sample), "duplicate sample: {line}");
        }
    }
    parsed
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("no value: {line}"));
    let name = &line[..name_end];
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name: {line}"
    );
    let mut rest = line[name_end..].chars().peekable();
    let mut labels = Vec::new();
    if rest.peek() == Some(&'{') {
        rest.next();
        loop {
            let key: String = rest.by_ref().take_while(|&c| c != '=').collect();
            assert_eq!(rest.next(), Some('"'), "label value not quoted: {line}");
            let mut value = String::new();
            loop {
                match rest
                    .next()
                    .unwrap_or_else(|| panic!("open label value: {line}"))
                {
                    '"' => break,
                    '\\' => match rest.next() {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => panic!("bad escape {other:?}: {line}"),
                    },
                    c => value.push(c),
                }
            }
            labels.push((key, value));
            match rest.next() {
                Some(',') => continue,
                Some('}') => break,
                other => panic!("unexpected {other:?} after a label: {line}"),
            }
        }
    }
    assert_eq!(rest.next(), Some(' '), "no space before the value: {line}");
    let value: String = rest.collect();
    let value: f64 = match value.as_str() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        number => number
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}")),
    };
    (name.to_owned(), labels, value.to_bits())
}

/// The state of the test the hand-written encoder was checked with, and the
/// text it produced then.
fn fixed_state() -> (Metrics, FakeVips) {
    let start = Instant::now();
    let metrics = Metrics::at(move || start + Duration::from_millis(1500));
    metrics.lease_renewal(true);
    metrics.lease_renewal(true);
    metrics.lease_renewal(false);
    metrics.ownership_change();
    metrics.reconcile_error();
    metrics.set_attached(true);
    metrics.set_family_disabled(2);
    metrics.set_yielded(1);
    metrics.set_membership_cadence(3, Duration::from_millis(250), Duration::from_secs(1));
    metrics.set_membership_role(false);
    metrics.heartbeat_at(start);
    metrics.set_announced([
        ("2001:db8::1".parse().expect("ip"), None),
        (
            "192.0.2.1".parse().expect("ip"),
            Some(ServiceRef::new("default", "web")),
        ),
    ]);
    let vips = FakeVips {
        samples: vec![
            VipCounterSample {
                key: key("2001:db8::1", 3, 100, 200),
                service: None,
                requests: 7,
                replies: 6,
                conflicts: 0,
                stale: 1,
                gratuitous_sent: 3,
            },
            VipCounterSample {
                key: key("192.0.2.1", 2, 0, 0),
                service: Some(ServiceRef {
                    namespace: "default".into(),
                    name: "web".into(),
                }),
                requests: 5,
                replies: 5,
                conflicts: 2,
                stale: 0,
                gratuitous_sent: 6,
            },
        ],
        names: names(&[(2, "eth0"), (3, "eth1")]),
        ..FakeVips::default()
    };
    (metrics, vips)
}

#[test]
fn renders_the_same_exposition_as_the_hand_written_encoder() {
    let (metrics, vips) = fixed_state();
    metrics.set_vip_counters(Arc::new(vips));
    let v4 = r#"{ip="192.0.2.1",interface="eth0",vlan="",service="default/web"}"#;
    let v6 = r#"{ip="2001:db8::1",interface="eth1",vlan="100.200",service=""}"#;
    let before = format!(
        "\
# HELP responder_layer2_requests_received_total Valid ARP requests and IPv6 Neighbor Solicitations received for the VIP.
# TYPE responder_layer2_requests_received_total counter
responder_layer2_requests_received_total{v4} 5
responder_layer2_requests_received_total{v6} 7
# HELP responder_layer2_responses_sent_total ARP replies and Neighbor Advertisements sent for the VIP by the XDP program.
# TYPE responder_layer2_responses_sent_total counter
responder_layer2_responses_sent_total{v4} 5
responder_layer2_responses_sent_total{v6} 6
# HELP responder_layer2_gratuitous_sent_total Gratuitous ARP and unsolicited Neighbor Advertisement packets sent for the VIP.
# TYPE responder_layer2_gratuitous_sent_total counter
responder_layer2_gratuitous_sent_total{v4} 6
responder_layer2_gratuitous_sent_total{v6} 3
# HELP responder_layer2_conflicts_total Packets in which another MAC claimed the VIP (gratuitous ARP, ARP reply or NA): split brain.
# TYPE responder_layer2_conflicts_total counter
responder_layer2_conflicts_total{v4} 2
responder_layer2_conflicts_total{v6} 0
# HELP responder_layer2_stale_total Requests left unanswered because the agent's heartbeat was stale or the VIP was yielded.
# TYPE responder_layer2_stale_total counter
responder_layer2_stale_total{v4} 0
responder_layer2_stale_total{v6} 1
# HELP responder_announced 1 for each VIP this node announces.
# TYPE responder_announced gauge
responder_announced{{ip=\"192.0.2.1\",service=\"default/web\"}} 1
responder_announced{{ip=\"2001:db8::1\",service=\"\"}} 1
# HELP responder_lease_renewals_total Successful renewals of this node's membership Lease.
# TYPE responder_lease_renewals_total counter
responder_lease_renewals_total 2
# HELP responder_lease_renewal_failures_total Failed renewals of this node's membership Lease.
# TYPE responder_lease_renewal_failures_total counter
responder_lease_renewal_failures_total 1
# HELP responder_ownership_changes_total Times this node started or stopped owning a Service.
# TYPE responder_ownership_changes_total counter
responder_ownership_changes_total 1
# HELP responder_reconcile_errors_total VIP installs or removals in the XDP maps that failed.
# TYPE responder_reconcile_errors_total counter
responder_reconcile_errors_total 1
# HELP responder_heartbeat_age_seconds Seconds since the agent's last heartbeat; +Inf before the first.
# TYPE responder_heartbeat_age_seconds gauge
responder_heartbeat_age_seconds 1.500
# HELP responder_xdp_attached 1 while the XDP program is attached.
# TYPE responder_xdp_attached gauge
responder_xdp_attached 1
# HELP responder_vips_family_disabled VIP and interface pairs not answered because the interface has the VIP's IP family (IPv6) disabled.
# TYPE responder_vips_family_disabled gauge
responder_vips_family_disabled 2
"
    );
    // Families added since the hand-written encoder, with this state's values.
    let added = "\
# HELP responder_vips_yielded VIP keys this node does not answer for because another MAC claimed them while this node's view was frozen or its agent late.
# TYPE responder_vips_yielded gauge
responder_vips_yielded 1
# HELP responder_membership_members Announcing nodes with a live membership Lease, as this agent sees them.
# TYPE responder_membership_members gauge
responder_membership_members 3
# HELP responder_lease_watch_events_total Membership Lease changes this agent received: every member's renewals, the load each agent's Lease watch puts on the API server.
# TYPE responder_lease_watch_events_total counter
responder_lease_watch_events_total 0
# HELP responder_handover_pauses_total Addresses this node took over from a node that could still answer for them (a planned move), each answered only after --handover-pause.
# TYPE responder_handover_pauses_total counter
responder_handover_pauses_total 0
# HELP responder_lease_renew_interval_seconds How often this node renews its membership Lease, following the cluster's write budget.
# TYPE responder_lease_renew_interval_seconds gauge
responder_lease_renew_interval_seconds 0.25
# HELP responder_failover_expected_seconds How long this node's Lease lasts without a renewal: the time to fail over from it.
# TYPE responder_failover_expected_seconds gauge
responder_failover_expected_seconds 1.0
# HELP responder_membership_announcer 1 while this node is in the announcer set (renewing fast, owning Services), 0 while it stands by.
# TYPE responder_membership_announcer gauge
responder_membership_announcer 0
# HELP responder_events_written_total Kubernetes Events this agent recorded, one per object or a summary of several.
# TYPE responder_events_written_total counter
responder_events_written_total 0
# HELP responder_events_aggregated_total Events not recorded on their own object because more came at once than the Event rate allows: counted in a summary Event on this node instead.
# TYPE responder_events_aggregated_total counter
responder_events_aggregated_total 0
# HELP responder_announcements_total Gratuitous ARP and unsolicited NA frames this node sent, by reason: new (a VIP gained or regained, adopted or recovered), defence (another MAC claimed it), periodic (--reannounce-interval).
# TYPE responder_announcements_total counter
responder_announcements_total{reason=\"new\"} 0
responder_announcements_total{reason=\"defence\"} 0
responder_announcements_total{reason=\"periodic\"} 0
";
    let after = metrics.encode();
    let expected = parse_exposition(&before);
    assert_eq!(expected.help.len(), 13, "the golden text parses whole");
    assert_eq!(expected.samples.len(), 19, "the golden text parses whole");
    let expected = parse_exposition(&format!("{before}{added}"));
    assert_eq!(parse_exposition(&after), expected, "{after}");
    // Series of one family stay together and in address order.
    let conflicts: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with("responder_layer2_conflicts_total{"))
        .collect();
    assert_eq!(
        conflicts,
        [
            format!("responder_layer2_conflicts_total{v4} 2"),
            format!("responder_layer2_conflicts_total{v6} 0")
        ]
    );
}

#[test]
fn lists_interface_names_once_per_scrape_and_only_with_samples() {
    let (metrics, mut vips) = fixed_state();
    // Both keys on one interface, one listing still.
    vips.samples[0].key.ifindex = 2;
    vips.samples[1].key.ifindex = 2;
    let vips = Arc::new(vips);
    metrics.set_vip_counters(Arc::clone(&vips) as Arc<dyn VipCounterSource>);
    let text = metrics.encode();
    assert_eq!(vips.name_listings.load(Ordering::Relaxed), 1);
    assert_eq!(
        text.matches(r#"interface="eth0""#).count(),
        10,
        "two keys in five families: {text}"
    );
    metrics.encode();
    assert_eq!(vips.name_listings.load(Ordering::Relaxed), 2);

    let empty = Arc::new(FakeVips::default());
    metrics.set_vip_counters(Arc::clone(&empty) as Arc<dyn VipCounterSource>);
    metrics.encode();
    assert_eq!(empty.name_listings.load(Ordering::Relaxed), 0);
}

#[test]
fn names_gone_interfaces_by_ifindex() {
    let (metrics, mut vips) = fixed_state();
    vips.names = names(&[(3, "eth1")]);
    metrics.set_vip_counters(Arc::new(vips));
    let text = metrics.encode();
    assert!(
        text.contains(
            r##"responder_layer2_requests_received_total{ip="192.0.2.1",interface="#2",vlan="",service="default/web"} 5"##
        ),
        "{text}"
    );
}

#[test]
fn escapes_label_values_and_reports_a_missing_heartbeat() {
    let metrics = Metrics::new();
    metrics.set_announced([(
        "192.0.2.9".parse().expect("ip"),
        Some(ServiceRef::new("odd\\ns", "\"quoted\"\nname")),
    )]);
    let text = metrics.encode();
    assert!(
        text.contains(
            r#"responder_announced{ip="192.0.2.9",service="odd\\ns/\"quoted\"\nname"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains("responder_heartbeat_age_seconds +Inf\n"),
        "{text}"
    );
    assert!(text.contains("responder_xdp_attached 0\n"), "{text}");
    assert!(
        text.contains(
            "# TYPE responder_layer2_conflicts_total counter\n# HELP responder_layer2_stale_total"
        ),
        "families without VIPs keep their HELP and TYPE lines: {text}"
    );
    let parsed = parse_exposition(&text);
    assert!(parsed.samples.contains(&(
        "responder_announced".to_owned(),
        vec![
            ("ip".to_owned(), "192.0.2.9".to_owned()),
            ("service".to_owned(), "odd\\ns/\"quoted\"\nname".to_owned())
        ],
        1f64.to_bits()
    )));
}

#[test]
fn announcements_render_by_reason() {
    let metrics = Metrics::new();
    for _ in 0..3 {
        metrics.announcement_sent(AnnouncementReason::New);
    }
    metrics.announcement_sent(AnnouncementReason::Periodic);
    let parsed = parse_exposition(&metrics.encode());
    assert_eq!(parsed.types["responder_announcements_total"], "counter");
    let series: BTreeMap<String, f64> = parsed
        .samples
        .iter()
        .filter(|(name, _, _)| name == "responder_announcements_total")
        .map(|(_, labels, value)| {
            assert_eq!(labels.len(), 1, "{labels:?}");
            assert_eq!(labels[0].0, "reason");
            (labels[0].1.clone(), f64::from_bits(*value))
        })
        .collect();
    let expected: BTreeMap<String, f64> = [("new", 3.0), ("defence", 0.0), ("periodic", 1.0)]
        .into_iter()
        .map(|(reason, value)| (reason.to_owned(), value))
        .collect();
    assert_eq!(series, expected);
}

#[test]
fn an_empty_announced_set_keeps_its_help_and_type() {
    let metrics = Metrics::new();
    metrics.set_announced([("192.0.2.9".parse().expect("ip"), None)]);
    metrics.set_announced([]);
    let parsed = parse_exposition(&metrics.encode());
    assert_eq!(parsed.types["responder_announced"], "gauge");
    assert!(parsed
        .samples
        .iter()
        .all(|(name, _, _)| name != "responder_announced"));
}

#[test]
fn liveness_needs_a_fresh_heartbeat_not_an_interface() {
    let start = Instant::now();
    let now = Arc::new(Mutex::new(start));
    let clock = Arc::clone(&now);
    let metrics = Metrics::at(move || *clock.lock().expect("clock"));
    let set_now = |at: Instant| *now.lock().expect("clock") = at;
    assert_eq!(metrics.liveness(), Err(Unhealthy::NoHeartbeat));
    metrics.set_heartbeat();
    set_now(start + HEARTBEAT_TIMEOUT);
    assert_eq!(metrics.liveness(), Ok(()));
    let late = HEARTBEAT_TIMEOUT + Duration::from_millis(200);
    set_now(start + late);
    let unhealthy = metrics
        .liveness()
        .expect_err("heartbeat older than the limit");
    assert_eq!(unhealthy, Unhealthy::StaleHeartbeat { age: late });
    assert_eq!(unhealthy.to_string(), "last heartbeat 5.2s ago (limit 5s)");
    metrics.set_heartbeat();
    assert_eq!(metrics.liveness(), Ok(()));
    metrics.set_attached(false);
    assert_eq!(
        metrics.liveness(),
        Ok(()),
        "no interface to attach to is no reason to restart"
    );
}

#[test]
fn readiness_is_set_once() {
    let metrics = Metrics::new();
    assert!(!metrics.is_ready());
    metrics.set_ready();
    assert!(metrics.is_ready());
}
