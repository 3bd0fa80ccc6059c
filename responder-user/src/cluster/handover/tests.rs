use super::*;

const PAUSE: Duration = Duration::from_millis(100);
const MS: Duration = Duration::from_millis(1);

fn web() -> ServiceRef {
    ServiceRef::new("default", "web")
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([203, 0, 113, last])
}

fn owned(ips: &[u8]) -> BTreeMap<IpAddr, ServiceRef> {
    ips.iter().map(|last| (ip(*last), web())).collect()
}

fn held_by(node: &str, ips: &[u8]) -> BTreeMap<IpAddr, String> {
    ips.iter()
        .map(|last| (ip(*last), node.to_owned()))
        .collect()
}

/// A pass giving this node 203.0.113.10, which node-a held, with node-a
/// still able to hold it (`Some(true)`), not (`Some(false)`), or its
/// Service not recomputed (`None`).
fn take_from_a(handovers: &mut Handovers, at: Instant, a_may_hold: Option<bool>) -> usize {
    handovers.after_pass(at, &owned(&[10]), &held_by("node-a", &[10]), |_, _| {
        a_may_hold
    })
}

fn answered(handovers: &Handovers, ips: &[u8]) -> Vec<IpAddr> {
    handovers.answered(&owned(ips)).into_keys().collect()
}

#[test]
fn an_address_taken_from_a_holder_that_could_keep_it_is_answered_after_the_pause() {
    let now = Instant::now();
    let mut handovers = Handovers::new(PAUSE);
    let began = take_from_a(&mut handovers, now, Some(true));
    assert_eq!(began, 1);
    assert!(
        answered(&handovers, &[10]).is_empty(),
        "not answered during the pause"
    );
    assert_eq!(handovers.next_change(), Some(now + PAUSE));

    assert!(!handovers.release_due(now + PAUSE - MS));
    assert!(answered(&handovers, &[10]).is_empty());
    assert!(handovers.release_due(now + PAUSE));
    assert_eq!(answered(&handovers, &[10]), [ip(10)]);
    assert_eq!(handovers.next_change(), None);
}

#[test]
fn a_failover_is_answered_at_once() {
    let now = Instant::now();
    let mut handovers = Handovers::new(PAUSE);
    // The holder can no longer hold it (expired, link down, no endpoints).
    let began = take_from_a(&mut handovers, now, Some(false));
    assert_eq!(began, 0);
    assert_eq!(answered(&handovers, &[10]), [ip(10)]);
}

#[test]
fn an_address_nobody_held_or_this_node_held_is_answered_at_once() {
    let now = Instant::now();
    let mut handovers = Handovers::new(PAUSE);
    // 10 is new; 11 was this node's already (not in held_elsewhere).
    let began = handovers.after_pass(now, &owned(&[10, 11]), &BTreeMap::new(), |_, _| Some(true));
    assert_eq!(began, 0);
    assert_eq!(answered(&handovers, &[10, 11]), [ip(10), ip(11)]);
}

#[test]
fn the_holder_failing_during_the_pause_ends_it() {
    let now = Instant::now();
    let mut handovers = Handovers::new(PAUSE);
    take_from_a(&mut handovers, now, Some(true));
    // The next pass: this node held it already (so it is in no other
    // node's hands), and node-a's Lease expired.
    let later = now + 20 * MS;
    handovers.after_pass(later, &owned(&[10]), &BTreeMap::new(), |_, node| {
        Some(node != "node-a")
    });
    assert_eq!(answered(&handovers, &[10]), [ip(10)]);
    assert_eq!(handovers.next_change(), None);
}

#[test]
fn a_pass_that_did_not_recompute_the_service_keeps_the_pause() {
    let now = Instant::now();
    let mut handovers = Handovers::new(PAUSE);
    take_from_a(&mut handovers, now, Some(true));
    handovers.after_pass(now + 20 * MS, &owned(&[10]), &BTreeMap::new(), |_, _| None);
    assert!(answered(&handovers, &[10]).is_empty());
    assert_eq!(handovers.holders(), BTreeSet::from(["node-a".to_owned()]));
    // A pass after the pause ends it as the timer would.
    handovers.after_pass(now + PAUSE, &owned(&[10]), &BTreeMap::new(), |_, _| None);
    assert_eq!(answered(&handovers, &[10]), [ip(10)]);
}

#[test]
fn an_address_moving_away_again_during_the_pause_stops_waiting() {
    let now = Instant::now();
    let mut handovers = Handovers::new(PAUSE);
    take_from_a(&mut handovers, now, Some(true));
    handovers.after_pass(now + 20 * MS, &owned(&[]), &BTreeMap::new(), |_, _| {
        Some(true)
    });
    assert_eq!(handovers.next_change(), None);
    // Gained back later, from a holder that could keep it: a new pause.
    let back = now + 50 * MS;
    take_from_a(&mut handovers, back, Some(true));
    assert_eq!(handovers.next_change(), Some(back + PAUSE));
}

#[test]
fn a_zero_pause_answers_at_once() {
    let now = Instant::now();
    let mut handovers = Handovers::new(Duration::ZERO);
    let began = take_from_a(&mut handovers, now, Some(true));
    assert_eq!(began, 0);
    assert_eq!(answered(&handovers, &[10]), [ip(10)]);
}
