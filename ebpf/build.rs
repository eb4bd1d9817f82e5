//! Compiles the XDP programs in `bpf/` with clang (`-O2 -g -target bpf`; `-g`
//! is required: aya reads the BTF of `.maps`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let bpf = Path::new("bpf");
    for entry in std::fs::read_dir(bpf)? {
        println!("cargo:rerun-if-changed={}", entry?.path().display());
    }
    println!("cargo:rerun-if-changed=bpf");
    compile(&bpf.join("edged_xdp.bpf.c"), &out.join("edged_xdp.o"), &[])?;
    compile(
        &bpf.join("edged_xdp.bpf.c"),
        &out.join("edged_xdp_bench.o"),
        &["-DEDGED_BENCH_FRESH_FLOW"],
    )?;
    compile(
        &bpf.join("bench_base.bpf.c"),
        &out.join("bench_base.o"),
        &[],
    )?;
    Ok(())
}

fn compile(src: &Path, obj: &Path, defines: &[&str]) -> anyhow::Result<()> {
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH")?.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => anyhow::bail!("no multiarch include dir known for {other}"),
    };
    let status = Command::new(std::env::var("CLANG").unwrap_or_else(|_| "clang".into()))
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I/usr/include/{arch}"))
        .args(defines)
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(obj)
        .status()
        .map_err(|e| anyhow::anyhow!("cannot run clang (apt-get install clang libbpf-dev): {e}"))?;
    anyhow::ensure!(status.success(), "clang failed on {}", src.display());
    Ok(())
}
