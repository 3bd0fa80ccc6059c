//! `cargo xtask demo`: two namespaces joined by veth, `responder run` on one
//! side, arping and ndisc6 on the other. Everything it creates is removed
//! when it ends, also on failure.
use responder_tests::lab::pair::{arping, ndisc6, Lab, NODE_IF, VIP_V4, VIP_V6};

fn main() {
    if let Some(bin) = std::env::args().nth(1) {
        std::env::set_var("RESPONDER_BIN", bin);
    }
    let lab = Lab::new("demo");
    println!(
        "client namespace {} and node namespace {} joined by veth",
        lab.client.name(),
        lab.node.name()
    );
    println!("node {NODE_IF} MAC {}\n", lab.node_mac());
    let args = ["--interface", NODE_IF, "--vip", VIP_V4, "--vip", VIP_V6];
    println!("$ responder run {}", args.join(" "));
    let responder = lab.start_responder(&args, 2);

    println!("\n$ arping -c 3 {VIP_V4}   (from the client)");
    let (_, out) = arping(&lab, VIP_V4, 3);
    print!("{out}");
    println!("\n$ ndisc6 {VIP_V6}   (from the client)");
    let (_, out) = ndisc6(&lab, VIP_V6);
    print!("{out}");

    println!(
        "\n$ responder vips --pin-path {}",
        responder.pin_path.display()
    );
    let table = lab
        .node
        .command(
            responder_tests::lab::responder::responder_bin()
                .to_str()
                .expect("utf-8 path"),
        )
        .args(["vips", "--pin-path"])
        .arg(&responder.pin_path)
        .output()
        .expect("run responder vips");
    print!("{}", String::from_utf8_lossy(&table.stdout));
    println!("\nresponder log:\n{}", responder.log());
}
