//! The smallest lab: a "client" and a "node" namespace joined by one veth,
//! the responder running on the node side (no cluster), real clients (the
//! kernel, arping, ndisc6) on the client side.
use std::{path::PathBuf, process::Stdio, time::Duration};

use super::{
    link::{attach_pass_through, format_mac, PassThrough},
    responder::{pin_path_of, Responder},
};
use crate::netns::{run_ok, veth, NetNs};

pub const NODE_IF: &str = "rspnode0";
pub const CLIENT_IF: &str = "rspcli0";
pub const NODE_V4: &str = "198.51.100.1";
pub const CLIENT_V4: &str = "198.51.100.2";
pub const VIP_V4: &str = "198.51.100.10";
pub const OTHER_V4: &str = "198.51.100.20";
pub const NODE_V6: &str = "2001:db8:100::1";
pub const CLIENT_V6: &str = "2001:db8:100::2";
pub const VIP_V6: &str = "2001:db8:100::10";
pub const OTHER_V6: &str = "2001:db8:100::20";

pub struct Lab {
    pub client: NetNs,
    pub node: NetNs,
    /// Keeps the client's XDP program attached (see `attach_pass_through`).
    client_xdp: Option<PassThrough>,
}

impl Lab {
    pub fn new(name: &str) -> Self {
        let client = NetNs::new(&format!("rsp-{name}-c"));
        let node = NetNs::new(&format!("rsp-{name}-n"));
        link(&client, &node);
        let client_xdp = Some(attach_pass_through(&client, CLIENT_IF));
        Lab {
            client,
            node,
            client_xdp,
        }
    }

    /// A lab whose client interface has no XDP program, for callers that
    /// attach their own (the benchmark's reply counter).
    pub fn without_client_xdp(name: &str) -> Self {
        let client = NetNs::new(&format!("rsp-{name}-c"));
        let node = NetNs::new(&format!("rsp-{name}-n"));
        link(&client, &node);
        Lab {
            client,
            node,
            client_xdp: None,
        }
    }

    /// Deletes the veth pair and creates it again with the same names and
    /// addresses (new ifindexes and MACs), as a reloaded driver would.
    pub fn recreate_link(&mut self) {
        self.node.ip(&["link", "del", NODE_IF]);
        link(&self.client, &self.node);
        if self.client_xdp.is_some() {
            self.client_xdp = Some(attach_pass_through(&self.client, CLIENT_IF));
        }
    }

    /// The pin path of this lab's responders: a restarted one adopts what
    /// the previous one left there.
    pub fn pin_path(&self) -> PathBuf {
        pin_path_of(&self.node)
    }

    /// Starts `responder run` on the node side (see [`Responder::start`]).
    pub fn start_responder(&self, args: &[&str], expected_entries: usize) -> Responder {
        Responder::start(&self.node, args, expected_entries)
    }

    /// The client's neighbor entry for `ip`: (lladdr, state), if any.
    pub fn client_neighbor(&self, ip: &str) -> Option<(String, String)> {
        let out = self.client.ip(&["neigh", "show", ip, "dev", CLIENT_IF]);
        let words: Vec<&str> = out.split_whitespace().collect();
        let lladdr = words
            .iter()
            .position(|w| *w == "lladdr")
            .map(|i| words[i + 1].to_owned())?;
        Some((lladdr, words.last().expect("state").to_string()))
    }

    /// The id of the XDP program the kernel runs on the node interface.
    pub fn xdp_prog_id(&self) -> u64 {
        let out = self.node.ip(&["-d", "link", "show", "dev", NODE_IF]);
        let words: Vec<&str> = out.split_whitespace().collect();
        words
            .windows(3)
            .find(|w| w[0].starts_with("prog/xdp") && w[1] == "id")
            .and_then(|w| w[2].parse().ok())
            .unwrap_or_else(|| panic!("no XDP program on {NODE_IF}:\n{out}"))
    }

    /// SIGTERMs `responder` and checks the teardown an agent without
    /// `--kube` owes: exit 0, no pins left, no XDP program on the interface.
    pub fn terminate_and_check_teardown(&self, responder: &mut Responder) {
        responder.child().signal(nix::sys::signal::Signal::SIGTERM);
        let code = responder.child().wait_exit(Duration::from_secs(10));
        assert_eq!(
            code,
            Some(0),
            "responder did not exit cleanly; log:\n{}",
            responder.log()
        );
        assert!(
            !responder.pin_path.exists(),
            "pins left behind at {}",
            responder.pin_path.display()
        );
        let link = self.node.ip(&["link", "show", "dev", NODE_IF]);
        assert!(
            !link.contains("xdp"),
            "XDP still attached after SIGTERM:\n{link}"
        );
    }

    pub fn node_mac(&self) -> String {
        format_mac(&self.node.mac(NODE_IF))
    }
}

/// The veth pair between the namespaces, addressed.
fn link(client: &NetNs, node: &NetNs) {
    veth(node, NODE_IF, client, CLIENT_IF);
    node.ip(&["addr", "add", &format!("{NODE_V4}/24"), "dev", NODE_IF]);
    node.ip(&[
        "addr",
        "add",
        &format!("{NODE_V6}/64"),
        "dev",
        NODE_IF,
        "nodad",
    ]);
    client.ip(&["addr", "add", &format!("{CLIENT_V4}/24"), "dev", CLIENT_IF]);
    client.ip(&[
        "addr",
        "add",
        &format!("{CLIENT_V6}/64"),
        "dev",
        CLIENT_IF,
        "nodad",
    ]);
}

/// `responder run` arguments answering for both lab VIPs on the node
/// interface in XDP `mode` (`driver`, `skb`), then `extra`.
pub fn lab_vip_args(mode: &'static str, extra: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec![
        "--interface",
        NODE_IF,
        "--vip",
        VIP_V4,
        "--vip",
        VIP_V6,
        "--xdp-mode",
        mode,
    ];
    args.extend_from_slice(extra);
    args
}

/// `arping` from the client: (exit success, output).
pub fn arping(lab: &Lab, ip: &str, count: u32) -> (bool, String) {
    let out = lab
        .client
        .command("arping")
        .args([
            "-c",
            &count.to_string(),
            "-w",
            &(count + 2).to_string(),
            "-I",
            CLIENT_IF,
            ip,
        ])
        .output()
        .expect("run arping");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `ndisc6` from the client: (exit success, output).
pub fn ndisc6(lab: &Lab, ip: &str) -> (bool, String) {
    let out = lab
        .client
        .command("ndisc6")
        .args(["-r", "3", "-w", "1000", ip, CLIENT_IF])
        .output()
        .expect("run ndisc6");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Makes the client's kernel resolve `ip` (one ping; the VIP answers ARP/NDP
/// but nothing answers the echo, which is fine).
pub fn kernel_resolve(lab: &Lab, ip: &str) {
    let _ = lab
        .client
        .command("ping")
        .args(["-c", "1", "-W", "1", ip])
        .stdout(Stdio::null())
        .status();
}

pub fn run_in(ns: &NetNs, program: &str, args: &[&str]) -> String {
    let out = run_ok(ns.command(program).args(args));
    String::from_utf8_lossy(&out.stdout).into_owned()
}
