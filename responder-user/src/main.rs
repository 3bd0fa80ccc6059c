fn main() -> anyhow::Result<()> {
    let mut ebpf = aya::Ebpf::load(responder::EBPF_OBJECT)?;
    let prog: &mut aya::programs::Xdp = ebpf.program_mut("responder").unwrap().try_into()?;
    prog.load()?;
    println!("loaded");
    Ok(())
}
