//! The two segments side by side: a client namespace holding both client
//! ends, a kernel namespace whose interface owns the VIPs, and a responder
//! namespace whose interface runs the XDP program with the same VIPs and
//! the same MAC. Both server interfaces are otherwise silent; the kernel's
//! behaviour is pinned by the sysctls below, each with its reason.

use std::process::Command;

use responder_common::{VipKey, VipValue};

use super::{link::ClientEnd, OracleError, Vips};
use crate::{
    lab::link::{attach_pass_through, format_mac, PassThrough},
    netns::{run_ok, NetNs},
    testrun::LoadedResponder,
};

const KERNEL_IF: &str = "orkern0";
const KERNEL_CLIENT_IF: &str = "orkcli0";
const RESPONDER_IF: &str = "orresp0";
const RESPONDER_CLIENT_IF: &str = "orrcli0";
/// Room for the generator's largest frames (1600 bytes of random bytes).
const MTU: &str = "2000";

/// `net.ipv4.conf.{all,default,<if>}.*` in the kernel namespace.
pub const KERNEL_IPV4_SYSCTLS: &[(&str, &str, &str)] = &[
    ("arp_ignore", "1", "answer only for addresses on the receiving interface: the responder answers only VIPs scoped to it"),
    ("arp_filter", "0", "with 1 the kernel answers only if its route back to the sender leaves by this interface, and the namespace has no routes"),
    ("rp_filter", "0", "no reverse-path check of the sender (the effective value is the larger of all and the interface)"),
    ("arp_accept", "0", "gratuitous ARP and replies create no neighbour entries"),
    ("drop_gratuitous_arp", "0", "gratuitous ARP is seen, as by default"),
    ("arp_notify", "0", "no gratuitous ARP of its own when addresses change"),
    ("arp_announce", "0", "default; it only picks the source of the kernel's own requests, which the oracle ignores"),
    ("proxy_arp", "0", "answer for its own addresses only"),
    ("proxy_arp_pvlan", "0", "answer for its own addresses only"),
    ("accept_local", "0", "a request whose sender address is one of the kernel's own is a martian and goes unanswered"),
    ("route_localnet", "0", "loopback senders and targets are martians"),
    ("forwarding", "0", "a host, not a router"),
];

/// `net.ipv6.conf.{all,default,<if>}.*` in the kernel namespace.
pub const KERNEL_IPV6_SYSCTLS: &[(&str, &str, &str)] = &[
    ("disable_ipv6", "0", "IPv6 on"),
    ("forwarding", "0", "a host: R is clear in its advertisements, as in the responder's"),
    ("accept_dad", "0", "with the addresses added nodad, never tentative (a tentative address answers nothing)"),
    ("optimistic_dad", "0", "no optimistic addresses (they advertise with O clear)"),
    ("use_optimistic", "0", "no optimistic addresses"),
    ("force_tllao", "1", "include the Target Link-Layer Address in answers to unicast solicitations, as the responder does"),
    ("ndisc_notify", "0", "no unsolicited advertisements of its own"),
    ("ndisc_tclass", "0", "traffic class 0 in advertisements, as the responder's"),
    ("proxy_ndp", "0", "answer for its own addresses only"),
    ("accept_ra", "0", "no router advertisements"),
    ("router_solicitations", "0", "no router solicitations of its own"),
    ("addr_gen_mode", "1", "no automatic link-local address: only the VIPs"),
    ("suppress_frag_ndisc", "1", "fragmented ND is dropped (RFC 6980), as by default"),
    ("ioam6_enabled", "0", "IOAM options in a Hop-by-Hop header are skipped, as by default"),
    ("drop_unsolicited_na", "0", "default; advertisements only change neighbour entries"),
    ("accept_untracked_na", "0", "advertisements create no neighbour entries"),
];

/// Namespace-wide sysctls of the kernel namespace.
pub const KERNEL_NET_SYSCTLS: &[(&str, &str, &str)] = &[(
    "net.ipv6.max_hbh_opts_number",
    "8",
    "at most 8 Hop-by-Hop options that are not padding, as by default",
)];

pub struct Segment {
    client: NetNs,
    kernel: NetNs,
    _responder_ns: NetNs,
    /// Attached to the responder's interface while the segment lives.
    _program: LoadedResponder,
    _pass_through: [PassThrough; 2],
}

impl Segment {
    /// Builds both segments with `vips` owned on each side under `mac`.
    pub fn new(vips: &Vips, mac: [u8; 6]) -> Result<Segment, OracleError> {
        let client = NetNs::new("rsp-oracle-c");
        let kernel = NetNs::new("rsp-oracle-k");
        let responder_ns = NetNs::new("rsp-oracle-r");
        // The client ends and the responder's own stack stay silent: no
        // IPv4 address, IPv6 off (the XDP program runs before the stack).
        for ns in [&client, &responder_ns] {
            sysctl(
                ns,
                &[
                    "net.ipv6.conf.all.disable_ipv6=1".to_string(),
                    "net.ipv6.conf.default.disable_ipv6=1".to_string(),
                ],
            );
        }
        let mut settings: Vec<String> = KERNEL_NET_SYSCTLS
            .iter()
            .map(|(key, value, _)| format!("{key}={value}"))
            .collect();
        for scope in ["all", "default"] {
            settings.extend(conf_settings(scope));
        }
        sysctl(&kernel, &settings);

        let mac = format_mac(&mac);
        pair(&kernel, KERNEL_IF, &client, KERNEL_CLIENT_IF, &mac);
        pair(
            &responder_ns,
            RESPONDER_IF,
            &client,
            RESPONDER_CLIENT_IF,
            &mac,
        );
        sysctl(&kernel, &conf_settings(KERNEL_IF));
        for v4 in &vips.v4 {
            let address = format!("{}/32", std::net::Ipv4Addr::from(*v4));
            kernel.ip(&["addr", "add", &address, "dev", KERNEL_IF]);
        }
        for v6 in &vips.v6 {
            let address = format!("{}/128", std::net::Ipv6Addr::from(*v6));
            kernel.ip(&["addr", "add", &address, "dev", KERNEL_IF, "nodad"]);
        }
        for (ns, ifname) in [
            (&kernel, KERNEL_IF),
            (&client, KERNEL_CLIENT_IF),
            (&responder_ns, RESPONDER_IF),
            (&client, RESPONDER_CLIENT_IF),
        ] {
            ns.ip(&["link", "set", ifname, "up"]);
        }

        let mut program = LoadedResponder::load()?;
        let ifindex = responder_ns.ifindex(RESPONDER_IF);
        let value = VipValue {
            mac: responder_ns.mac(RESPONDER_IF),
            ..VipValue::default()
        };
        for v4 in &vips.v4 {
            program.insert_vip(VipKey::v4(ifindex, 0, 0, *v4), value)?;
        }
        for v6 in &vips.v6 {
            program.insert_vip(VipKey::v6(ifindex, 0, 0, *v6), value)?;
        }
        program.attach(&responder_ns, RESPONDER_IF)?;
        // Driver-mode XDP_TX on a veth reaches the peer only if the peer
        // runs XDP too; the kernel's side gets the same for symmetry.
        let pass_through = [
            attach_pass_through(&client, KERNEL_CLIENT_IF),
            attach_pass_through(&client, RESPONDER_CLIENT_IF),
        ];
        Ok(Segment {
            client,
            kernel,
            _responder_ns: responder_ns,
            _program: program,
            _pass_through: pass_through,
        })
    }

    pub fn kernel_end(&self) -> Result<ClientEnd, OracleError> {
        ClientEnd::open(&self.client, KERNEL_CLIENT_IF)
    }

    pub fn responder_end(&self) -> Result<ClientEnd, OracleError> {
        ClientEnd::open(&self.client, RESPONDER_CLIENT_IF)
    }

    /// Forgets every neighbour the kernel learnt, so that no frame of the
    /// next batch meets an entry an earlier frame left. The table is
    /// shared by all namespaces of the host, so it also keeps the oracle's
    /// share of it to one batch.
    pub fn flush_neighbours(&self) {
        self.kernel.ip(&["neigh", "flush", "dev", KERNEL_IF]);
    }
}

fn conf_settings(scope: &str) -> Vec<String> {
    let v4 = KERNEL_IPV4_SYSCTLS
        .iter()
        .map(|(key, value, _)| format!("net.ipv4.conf.{scope}.{key}={value}"));
    let v6 = KERNEL_IPV6_SYSCTLS
        .iter()
        .map(|(key, value, _)| format!("net.ipv6.conf.{scope}.{key}={value}"));
    v4.chain(v6).collect()
}

fn sysctl(ns: &NetNs, settings: &[String]) {
    let mut cmd = ns.command("sysctl");
    cmd.arg("-qw").args(settings);
    run_ok(&mut cmd);
}

/// A veth pair `server_if` (in `server`, with `mac`) – `client_if` (in
/// `client`), both with room for the largest generated frame, still down.
fn pair(server: &NetNs, server_if: &str, client: &NetNs, client_if: &str, mac: &str) {
    run_ok(Command::new("ip").args([
        "-n",
        server.name(),
        "link",
        "add",
        server_if,
        "address",
        mac,
        "mtu",
        MTU,
        "type",
        "veth",
        "peer",
        "name",
        client_if,
        "mtu",
        MTU,
        "netns",
        client.name(),
    ]));
}
