//! Compiles the XDP programs in `bpf/` with clang (`-O2 -g -target bpf`; `-g`
//! is required: aya reads the BTF of `.maps`), after checking that every
//! header in `bpf/` compiles on its own (it includes what it uses).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn main() -> anyhow::Result<()> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let bpf = Path::new("bpf");
    for entry in std::fs::read_dir(bpf)? {
        println!("cargo:rerun-if-changed={}", entry?.path().display());
    }
    println!("cargo:rerun-if-changed=bpf");
    let mut headers: Vec<PathBuf> = std::fs::read_dir(bpf)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    headers.retain(|p| p.extension().is_some_and(|x| x == "h"));
    headers.sort();
    for h in &headers {
        header_alone(bpf, h)?;
    }
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

/// clang with the flags every compile here uses.
fn clang() -> anyhow::Result<Command> {
    let arch = match std::env::var("CARGO_CFG_TARGET_ARCH")?.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => anyhow::bail!("no multiarch include dir known for {other}"),
    };
    let mut cmd = Command::new(std::env::var("CLANG").unwrap_or_else(|_| "clang".into()));
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I/usr/include/{arch}"));
    Ok(cmd)
}

/// A translation unit that includes `header` twice and nothing else must
/// compile: the header includes what it uses and has an include guard.
fn header_alone(dir: &Path, header: &Path) -> anyhow::Result<()> {
    let name = header.file_name().expect("a file").to_string_lossy();
    let mut child = clang()?
        .arg("-I")
        .arg(dir)
        .args(["-fsyntax-only", "-x", "c", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("cannot run clang (apt-get install clang libbpf-dev): {e}"))?;
    let tu = format!("#include \"{name}\"\n#include \"{name}\"\n");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(tu.as_bytes())?;
    anyhow::ensure!(
        child.wait()?.success(),
        "{} does not compile on its own: include what it uses",
        header.display()
    );
    Ok(())
}

fn compile(src: &Path, obj: &Path, defines: &[&str]) -> anyhow::Result<()> {
    let status = clang()?
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
