//! Generates man pages (section 8) and shell completions (bash, zsh, fish)
//! for `edged` and `edgectl` from their clap definitions.
//! Usage: `cargo run -p edge-daemon --example gen-assets -- OUTDIR`.

use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> anyhow::Result<()> {
    let out = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: gen-assets OUTDIR"))?;
    let out = Path::new(&out);
    for dir in ["man", "completions"] {
        std::fs::create_dir_all(out.join(dir))?;
    }
    for mut cmd in [
        edge_daemon::cli::Edged::command(),
        edge_daemon::cli::Edgectl::command(),
    ] {
        let name = cmd.get_name().to_string();
        let man = clap_mangen::Man::new(cmd.clone()).section("8");
        let mut page = Vec::new();
        man.render(&mut page)?;
        std::fs::write(out.join("man").join(format!("{name}.8")), page)?;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut cmd, &name, out.join("completions"))?;
        }
    }
    println!("wrote {}", out.display());
    Ok(())
}
