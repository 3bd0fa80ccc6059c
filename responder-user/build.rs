use anyhow::{anyhow, Context as _};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("MetadataCommand::exec")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "responder-ebpf")
        .ok_or_else(|| anyhow!("responder-ebpf package not found"))?;
    let root_dir = ebpf.manifest_path.parent().expect("manifest has a parent");
    aya_build::build_ebpf(
        [Package {
            name: "responder-ebpf",
            root_dir: root_dir.as_str(),
            ..Default::default()
        }],
        Toolchain::default(),
    )
}
