//! The keeper of a managed BIRD as a program of its own (tests, and
//! installations that run BIRD beside another supervisor); edged runs the
//! same code as `edged bird-keeper`. See `edged_bgp::keeper`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(edged_bgp::keeper::main(&args));
}
