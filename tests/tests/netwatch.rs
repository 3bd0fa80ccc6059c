//! Interface discovery against a real kernel (root): links are created, flapped, deleted,
//! re-created, addressed and enslaved inside a network namespace made by this test, and
//! the published set must follow each step. No traffic is sent.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::File,
    process::Command,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use ipnet::IpNet;
use nix::sched::{setns, CloneFlags};
use responder::netif::{
    watch::{self as netwatch, LinkSnapshot},
    InterfaceFilter, LinkInfo,
};
use tokio::sync::{oneshot, watch};

const WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// A network namespace named after this process, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(purpose: &str) -> Self {
        let name = format!("rsp-nw-{purpose}-{}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]));
        Self { name }
    }

    fn ip(&self, args: &[&str]) {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args));
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let deleted = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        if !deleted.is_ok_and(|status| status.success()) {
            eprintln!("could not delete network namespace {}", self.name);
        }
    }
}

fn run(command: &mut Command) {
    let output = command.output().expect("ip runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs `task` on a thread that entered `netns`, so the netlink sockets it opens live there.
fn in_netns<T: Send + 'static>(
    netns: &Netns,
    task: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<T> {
    let path = netns.path();
    thread::spawn(move || {
        let netns = File::open(&path).expect("network namespace file opens");
        setns(netns, CloneFlags::CLONE_NEWNET).expect("thread enters the network namespace");
        task()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime builds")
}

/// `netwatch::watch` running in the namespace; stopped and joined on drop.
struct Watcher {
    links: watch::Receiver<LinkSnapshot>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    fn start(netns: &Netns, filter: InterfaceFilter) -> Self {
        let (publish, links) = watch::channel(LinkSnapshot::default());
        let (stop, stopped) = oneshot::channel();
        let thread = in_netns(netns, move || {
            runtime().block_on(async move {
                tokio::select! {
                    result = netwatch::watch(filter, publish) => {
                        result.expect("watch keeps running");
                        panic!("watch returned while its receiver was alive");
                    }
                    _ = stopped => {}
                }
            })
        });
        Self {
            links,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Waits, bounded, until the published set satisfies `condition`, and returns it.
    fn wait_until(
        &self,
        what: &str,
        condition: impl Fn(&BTreeMap<u32, LinkInfo>) -> bool,
    ) -> BTreeMap<u32, LinkInfo> {
        let deadline = Instant::now() + WAIT;
        loop {
            let links = self.links.borrow().accepted.clone();
            if condition(&links) {
                return links;
            }
            let watcher_died = self
                .thread
                .as_ref()
                .is_some_and(|thread| thread.is_finished());
            assert!(
                !watcher_died,
                "the watcher stopped while waiting until {what}"
            );
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}; published: {:?}",
                names(&links)
            );
            thread::sleep(POLL);
        }
    }

    fn wait_for_names(&self, expected: &[&str]) -> BTreeMap<u32, LinkInfo> {
        let expected: BTreeSet<String> = expected.iter().map(|name| name.to_string()).collect();
        self.wait_until(&format!("exactly {expected:?} are published"), |links| {
            names(links) == expected
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panic there already failed the test through wait_until.
            let _ = thread.join();
        }
    }
}

fn names(links: &BTreeMap<u32, LinkInfo>) -> BTreeSet<String> {
    links.values().map(|link| link.name.clone()).collect()
}

fn by_name<'a>(links: &'a BTreeMap<u32, LinkInfo>, name: &str) -> &'a LinkInfo {
    links
        .values()
        .find(|link| link.name == name)
        .unwrap_or_else(|| panic!("{name} is published"))
}

fn everything_by_default() -> InterfaceFilter {
    InterfaceFilter::new(Vec::new(), None, None)
}

/// The kernel here has no dummy driver, so test links are veth ends; peers named veth* are
/// up (giving carrier) but excluded by default, keeping the expected sets small.
fn add_veth(netns: &Netns, name: &str, peer: &str) {
    netns.ip(&["link", "add", name, "type", "veth", "peer", "name", peer]);
    netns.ip(&["link", "set", peer, "up"]);
    netns.ip(&["link", "set", name, "up"]);
}

#[test]
fn published_interfaces_follow_link_changes() {
    let netns = Netns::new("follow");
    netns.ip(&["link", "set", "lo", "up"]);
    netns.ip(&[
        "link",
        "add",
        "rsp0",
        "address",
        "02:00:00:00:00:01",
        "type",
        "veth",
        "peer",
        "name",
        "vethrsp0",
    ]);
    netns.ip(&["link", "set", "vethrsp0", "up"]);
    netns.ip(&["link", "set", "rsp0", "up"]);
    add_veth(&netns, "docker0", "vethdocker0");
    add_veth(&netns, "cali1", "vethcali1");
    add_veth(&netns, "rspnoarp", "vethnoarp");
    netns.ip(&["link", "set", "rspnoarp", "arp", "off"]);

    // Every test link is a veth (the kernel here has no dummy driver), a kind excluded by
    // default: the links followed are named, as `--interface` does.
    let followed = ["rsp0", "rsp1", "rsp2", "rspmark", "rspbr0", "rspnoarp"];
    let watcher = Watcher::start(
        &netns,
        InterfaceFilter::new(followed.map(String::from).to_vec(), None, None),
    );
    let links = watcher.wait_for_names(&["rsp0"]);
    let rsp0 = by_name(&links, "rsp0");
    assert_eq!(rsp0.mac, [2, 0, 0, 0, 0, 1], "MAC of rsp0");
    assert_eq!(rsp0.kind.as_deref(), Some("veth"), "kind of rsp0");
    let by_default = Watcher::start(&netns, everything_by_default());
    by_default.wait_until(
        "nothing but lo's absence: veths are excluded by kind",
        |links| links.is_empty(),
    );

    // A veth end without its peer up has no carrier: attached (admin up), but not
    // serving until the peer comes up.
    netns.ip(&[
        "link", "add", "rsp1", "type", "veth", "peer", "name", "rsp2",
    ]);
    netns.ip(&["link", "set", "rsp1", "up"]);
    let links = watcher.wait_for_names(&["rsp0", "rsp1"]);
    assert!(!by_name(&links, "rsp1").carrier, "rsp1 without its peer up");
    netns.ip(&["link", "set", "rsp2", "up"]);
    watcher.wait_until("rsp1 gets carrier from rsp2", |links| {
        names(links) == BTreeSet::from(["rsp0".into(), "rsp1".into(), "rsp2".into()])
            && links.values().all(|link| link.carrier)
    });
    add_veth(&netns, "rspmark", "vethmark");
    watcher.wait_for_names(&["rsp0", "rsp1", "rsp2", "rspmark"]);

    netns.ip(&["link", "set", "rsp1", "down"]);
    // rsp1 leaving and rsp2 losing carrier are two netlink messages: the
    // first may be published alone.
    watcher.wait_until("rsp2 loses carrier with its peer down", |links| {
        names(links) == BTreeSet::from(["rsp0".into(), "rsp2".into(), "rspmark".into()])
            && !by_name(links, "rsp2").carrier
    });
    netns.ip(&["link", "set", "rsp1", "up"]);
    watcher.wait_for_names(&["rsp0", "rsp1", "rsp2", "rspmark"]);

    let ipv4: IpNet = "192.0.2.1/24".parse().expect("IPv4 prefix");
    let ipv6: IpNet = "2001:db8::1/64".parse().expect("IPv6 prefix");
    netns.ip(&["address", "add", "192.0.2.1/24", "dev", "rsp0"]);
    netns.ip(&["address", "add", "2001:db8::1/64", "dev", "rsp0", "nodad"]);
    // Compared with their prefix lengths: the subnets VIPs are on-link in.
    watcher.wait_until("rsp0 has both addresses", |links| {
        links.values().any(|link| {
            link.name == "rsp0" && link.addresses.contains(&ipv4) && link.addresses.contains(&ipv6)
        })
    });

    // The node's addresses include those of interfaces not attached to.
    netns.ip(&["address", "add", "203.0.113.9/24", "dev", "vethrsp0"]);
    let deadline = Instant::now() + WAIT;
    while !watcher
        .links
        .borrow()
        .addresses
        .contains(&"203.0.113.9".parse().expect("ip"))
    {
        assert!(
            Instant::now() < deadline,
            "the address of an unattached interface never showed: {:?}",
            watcher.links.borrow().addresses
        );
        thread::sleep(POLL);
    }
    netns.ip(&["address", "del", "192.0.2.1/24", "dev", "rsp0"]);
    watcher.wait_until("192.0.2.1 is gone from rsp0", |links| {
        links.values().any(|link| {
            link.name == "rsp0" && !link.addresses.contains(&ipv4) && link.addresses.contains(&ipv6)
        })
    });

    let old_ifindex = by_name(&watcher.links.borrow().accepted, "rsp0").ifindex;
    netns.ip(&["link", "del", "rsp0"]);
    watcher.wait_for_names(&["rsp1", "rsp2", "rspmark"]);
    add_veth(&netns, "rsp0", "vethrsp0");
    let links = watcher.wait_for_names(&["rsp0", "rsp1", "rsp2", "rspmark"]);
    let recreated = by_name(&links, "rsp0");
    assert_ne!(
        recreated.ifindex, old_ifindex,
        "re-created rsp0 has a new ifindex"
    );
    assert!(
        !recreated.addresses.contains(&ipv6),
        "re-created rsp0 starts without the old address"
    );

    // A named bridge port stays attached (an operator may know it sees the frames) and
    // carries its master; the named bridge is attached too.
    netns.ip(&["link", "add", "rspbr0", "type", "bridge", "stp_state", "0"]);
    netns.ip(&["link", "set", "rspbr0", "up"]);
    netns.ip(&["link", "set", "rsp2", "master", "rspbr0"]);
    let links = watcher.wait_until("rsp2 is a port of rspbr0", |links| {
        names(links).contains("rspbr0")
            && links
                .values()
                .any(|link| link.name == "rsp2" && link.master.is_some())
    });
    assert_eq!(
        by_name(&links, "rspbr0").kind.as_deref(),
        Some("bridge"),
        "kind of rspbr0"
    );
    assert_eq!(
        by_name(&links, "rsp2").master,
        Some(by_name(&links, "rspbr0").ifindex)
    );
    netns.ip(&["link", "set", "rsp2", "nomaster"]);
    watcher.wait_until("rsp2 left the bridge", |links| {
        links
            .values()
            .any(|link| link.name == "rsp2" && link.master.is_none())
    });
}

#[test]
fn explicit_names_override_default_exclusions() {
    let netns = Netns::new("names");
    add_veth(&netns, "rsp0", "vethrsp");
    let watcher = Watcher::start(
        &netns,
        InterfaceFilter::new(vec!["vethrsp".into()], None, None),
    );
    watcher.wait_for_names(&["vethrsp"]);
    netns.ip(&["link", "set", "vethrsp", "down"]);
    watcher.wait_for_names(&[]);
    netns.ip(&["link", "set", "vethrsp", "up"]);
    watcher.wait_for_names(&["vethrsp"]);
}

#[test]
fn list_links_reports_every_link() {
    let netns = Netns::new("list");
    add_veth(&netns, "rsp0", "vethrsp0");
    netns.ip(&["address", "add", "198.51.100.1/24", "dev", "rsp0"]);
    netns.ip(&[
        "link",
        "add",
        "docker0",
        "type",
        "veth",
        "peer",
        "name",
        "vethdocker0",
    ]);

    let links = in_netns(&netns, || runtime().block_on(netwatch::list_links()))
        .join()
        .expect("listing thread finishes")
        .expect("links are listed");
    let ifindexes: Vec<u32> = links.iter().map(|link| link.ifindex).collect();
    assert!(
        ifindexes.is_sorted(),
        "links in ifindex order: {ifindexes:?}"
    );
    let names: BTreeSet<&str> = links.iter().map(|link| link.name.as_str()).collect();
    assert_eq!(
        names,
        BTreeSet::from(["lo", "rsp0", "vethrsp0", "docker0", "vethdocker0"]),
        "every link is listed"
    );

    let link = |name: &str| {
        links
            .iter()
            .find(|link| link.name == name)
            .unwrap_or_else(|| panic!("{name} is listed"))
    };
    let lo = link("lo");
    assert!(
        lo.loopback && !lo.admin_up,
        "lo is a loopback left down: {lo:?}"
    );
    let rsp0 = link("rsp0");
    assert!(
        rsp0.admin_up && rsp0.carrier && !rsp0.loopback && !rsp0.noarp && rsp0.master.is_none(),
        "rsp0: {rsp0:?}"
    );
    let ipv4: IpNet = "198.51.100.1/24".parse().expect("IPv4 prefix");
    assert!(
        rsp0.addresses.contains(&ipv4),
        "rsp0 addresses: {:?}",
        rsp0.addresses
    );
    assert!(!link("docker0").admin_up, "docker0 was never brought up");
}
