//! An L2 segment: a bridge in a namespace of its own, with ports plugged in
//! from the root namespace (agents of a simulated cluster) or from other
//! namespaces (the real cluster's nodes), and optionally a client on the
//! bridge itself.
use std::{
    collections::BTreeSet,
    net::Ipv4Addr,
    process::{Command, Stdio},
};

use super::link::{attach_pass_through, root_mac, set_root_link, sysctl, PassThrough, RootVeth};
use crate::{
    netns::{quiet_ipv6, run_ok, veth, NetNs},
    prober::ArpProber,
    stream_prober::StreamProber,
};

pub const BRIDGE: &str = "br0";

pub struct Segment {
    // Drop order: the root veths (and with them their ports), then the XDP
    // programs that were on the ports, then the namespace.
    root_ports: Vec<RootVeth>,
    port_xdp: Vec<PassThrough>,
    pub ns: NetNs,
    client: Option<(String, String)>,
}

impl Segment {
    /// `prefix` names the namespace (the test's name and the PID follow);
    /// `bridge_mac` fixes the bridge's MAC, which would otherwise follow the
    /// lowest port MAC as ports come and go.
    pub fn new(prefix: &str, bridge_mac: Option<&str>) -> Self {
        let ns = NetNs::new(prefix);
        let mut add = vec!["link", "add", BRIDGE];
        if let Some(mac) = bridge_mac {
            add.extend(["address", mac]);
        }
        add.extend(["type", "bridge", "mcast_snooping", "0"]);
        ns.ip(&add);
        ns.ip(&["link", "set", BRIDGE, "up"]);
        Segment {
            root_ports: Vec::new(),
            port_xdp: Vec::new(),
            ns,
            client: None,
        }
    }

    /// Makes the bridge itself the segment's client, with these addresses.
    pub fn with_client(mut self, v4: &str, v6: &str) -> Self {
        self.ns
            .ip(&["addr", "add", &format!("{v4}/24"), "dev", BRIDGE]);
        self.ns
            .ip(&["addr", "add", &format!("{v6}/64"), "dev", BRIDGE, "nodad"]);
        self.client = Some((v4.to_owned(), v6.to_owned()));
        self
    }

    fn next_port(&self) -> String {
        format!("port{}", self.port_xdp.len())
    }

    /// Plugs a new root-namespace veth `interface` into the bridge and
    /// returns its MAC. The root namespace neither routes what the client
    /// sends to a VIP nor chatters (DAD, RS, MLD) on the segment.
    pub fn plug_root(&mut self, interface: &str) -> String {
        let port = self.next_port();
        run_ok(Command::new("ip").args([
            "link",
            "add",
            interface,
            "type",
            "veth",
            "peer",
            "name",
            &port,
            "netns",
            self.ns.name(),
        ]));
        self.root_ports.push(RootVeth(interface.to_owned()));
        quiet_ipv6(interface);
        sysctl(&format!("net.ipv4.conf.{interface}.forwarding"), "0");
        self.ns.ip(&["link", "set", &port, "master", BRIDGE, "up"]);
        set_root_link(interface, "up");
        self.port_xdp.push(attach_pass_through(&self.ns, &port));
        root_mac(interface)
    }

    /// Plugs namespace `ns` into the bridge through a veth whose end in `ns`
    /// is `inner`; it goes with `ns`.
    pub fn plug(&mut self, ns: &NetNs, inner: &str) {
        let port = self.next_port();
        veth(&self.ns, &port, ns, inner);
        self.ns.ip(&["link", "set", &port, "master", BRIDGE]);
        self.port_xdp.push(attach_pass_through(&self.ns, &port));
    }

    fn client_v4(&self) -> Ipv4Addr {
        let (v4, _) = self.client.as_ref().expect("a segment with a client");
        v4.parse().expect("client address")
    }

    /// MACs answering `arping` (broadcast every request, so every node sees
    /// each one) for an IPv4 address from the client.
    pub fn arp_answerers(&self, address: &str, count: u32) -> BTreeSet<String> {
        let out = self
            .ns
            .command("arping")
            .args([
                "-b",
                "-c",
                &count.to_string(),
                "-w",
                &(count + 2).to_string(),
                "-I",
                BRIDGE,
                address,
            ])
            .output()
            .expect("run arping");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| line.contains("reply from"))
            .filter_map(|line| Some(line.split('[').nth(1)?.split(']').next()?.to_lowercase()))
            .collect()
    }

    /// MACs answering `ndisc6 -m` (every advertisement within the wait) for an
    /// IPv6 address from the client.
    pub fn nd_answerers(&self, address: &str) -> BTreeSet<String> {
        let out = self
            .ns
            .command("ndisc6")
            .args(["-m", "-n", "-r", "2", "-w", "1000", address, BRIDGE])
            .output()
            .expect("run ndisc6");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Target link-layer address:"))
            .map(|mac| mac.trim().to_lowercase())
            .collect()
    }

    /// Makes the client's kernel resolve `address` (nothing answers the echo
    /// itself: the root namespace drops it).
    pub fn client_resolve(&self, address: &str) {
        let _ = self
            .ns
            .command("ping")
            .args(["-c", "1", "-W", "1", "-I", BRIDGE, address])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// The client's neighbor entry for `address`: its lladdr, if it has one.
    pub fn client_neighbor(&self, address: &str) -> Option<String> {
        let out = self.ns.ip(&["neigh", "show", address, "dev", BRIDGE]);
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "lladdr")
            .map(|i| words[i + 1].to_lowercase())
    }

    /// An ARP prober on the client's bridge, for failover measurements.
    pub fn arp_prober(&self) -> ArpProber {
        ArpProber::on(&self.ns, BRIDGE, self.client_v4())
    }

    /// A prober asking for every one of `targets` from the client, each
    /// request accounted for (see [`StreamProber`]).
    pub fn stream_prober(&self, targets: &[std::net::IpAddr]) -> StreamProber {
        StreamProber::on(&self.ns, BRIDGE, targets)
    }
}
