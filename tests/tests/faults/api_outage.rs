//! The API server killed for a minute while a Service is deleted in etcd.
use super::*;

/// The Kubernetes API server is killed for a minute, and a Service is deleted
/// from etcd while it is down (a change no watch can deliver): the VIPs keep
/// being answered by their owners (no request lost), and once the server is
/// back the agents re-list and withdraw the deleted Service's VIP.
#[test]
fn api_server_outage_is_fail_static_and_reconciles_after() {
    const WEB: &str = "198.51.100.10";
    const API: &str = "198.51.100.11";
    const OUTAGE: Duration = Duration::from_secs(60);
    let _serial = one_cluster_at_a_time();
    let cluster = Cluster::start("stat");
    cluster.create_lb_service("web", &[WEB]);
    cluster.create_lb_service("api", &[API]);
    let web_owner = cluster.sole_owner(&[WEB], "one node to hold web");
    let api_owner = cluster.sole_owner(&[API], "one node to hold api");
    let expected = [
        (v4(WEB), cluster.agent(web_owner).mac().to_owned()),
        (v4(API), cluster.agent(api_owner).mac().to_owned()),
    ];
    let prober = cluster.arp_prober();

    cluster.server.kill_api_server();
    let started = Instant::now();
    let mut attempts = 0u32;
    let mut unanswered = Vec::new();
    let mut wrong = Vec::new();
    let mut deleted_meanwhile = None;
    while started.elapsed() < OUTAGE {
        for (vip, mac) in &expected {
            attempts += 1;
            let answers = prober.answers(*vip, Duration::from_millis(500));
            if answers.is_empty() {
                unanswered.push((started.elapsed(), *vip));
            }
            wrong.extend(answers.into_iter().filter(|a| a != mac).map(|a| (*vip, a)));
        }
        if deleted_meanwhile.is_none() && started.elapsed() >= OUTAGE / 2 {
            deleted_meanwhile = Some(
                cluster
                    .server
                    .delete_from_etcd(&Cluster::service_etcd_key("api")),
            );
        }
    }
    let broken: Vec<String> = cluster
        .agents
        .iter()
        .filter_map(|a| log_line(&a.log(), &["Kubernetes view broken"]))
        .collect();
    // Each failing watch and renewal is logged once, not every retry (the
    // Lease alone is retried every second).
    let log_lines: Vec<(&str, usize)> = cluster
        .agents
        .iter()
        .map(|a| (a.node, a.log().lines().count()))
        .collect();
    eprintln!("agent log lines at the end of the outage: {log_lines:?}");
    for (node, lines) in &log_lines {
        assert!(
            *lines < 60,
            "{node} logged {lines} lines through a {OUTAGE:?} outage: log spam"
        );
    }
    eprintln!(
        "outage of {OUTAGE:?}: {attempts} ARP requests, {} unanswered; fail-static log lines: {broken:#?}",
        unanswered.len()
    );
    assert_eq!(
        deleted_meanwhile,
        Some(1),
        "the api Service must have been deleted from etcd during the outage"
    );
    assert!(
        unanswered.is_empty(),
        "requests lost while the API server was down: {unanswered:?} of {attempts}"
    );
    assert!(
        wrong.is_empty(),
        "answers from other than the owners during the outage: {wrong:?}"
    );
    assert_eq!(
        broken.len(),
        cluster.agents.len(),
        "every agent must log that it keeps its VIPs while the API is unreachable"
    );

    cluster.server.restart_api_server();
    cluster.nobody_holds(
        &[API],
        "api, deleted during the outage, to be withdrawn once the API server is back",
    );
    assert!(
        prober.answers(v4(API), Duration::from_secs(1)).is_empty(),
        "api, deleted during the outage, is still answered"
    );
    let recovered = wait_for(WAIT, || {
        cluster
            .agents
            .iter()
            .map(|a| log_line(&a.log(), &["Kubernetes view recovered"]))
            .collect::<Option<Vec<_>>>()
    });
    eprintln!("recovery log lines: {recovered:#?}");
    assert!(
        recovered.is_some(),
        "not every agent logged its recovery from the outage"
    );
    let web_after = cluster.sole_owner(&[WEB], "web to have one owner after the outage");
    assert_eq!(
        prober.answers(v4(WEB), Duration::from_secs(1)),
        vec![cluster.agent(web_after).mac().to_owned()],
        "web must be answered by {web_after} alone after the outage"
    );
}
