use which::which;

/// Rebuild when bpf-linker changes: cargo cannot see that the linker is part
/// of the build (aya-template does the same).
fn main() {
    let bpf_linker = which("bpf-linker").expect("bpf-linker not found: run `cargo xtask setup`");
    println!("cargo:rerun-if-changed={}", bpf_linker.to_str().unwrap());
}
