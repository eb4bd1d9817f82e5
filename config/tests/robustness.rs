//! The parser never panics and every rejection names a field (or, for YAML
//! broken outside any field, the line and column): thousands of
//! seeded mutations of the full example (byte flips, truncations, line
//! swaps, splices of other lines). A libFuzzer target over the same entry
//! point lives in `config/fuzz` (`make fuzz`, on stable: scripts/fuzz.sh).

use edged_testlab::Rng;
use std::path::Path;

fn mutate(rng: &mut Rng, src: &str) -> String {
    let mut lines: Vec<String> = src.lines().map(str::to_string).collect();
    match rng.below(5) {
        0 => {
            let mut bytes = src.as_bytes().to_vec();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(bytes.len());
                let alphabet = b" :-[]{}0aZ#'\"\n\t9.";
                bytes[i] = alphabet[rng.below(alphabet.len())];
            }
            return String::from_utf8_lossy(&bytes).into_owned();
        }
        1 => return src[..rng.below(src.len())].to_string(),
        2 => {
            let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
            lines.swap(a, b);
        }
        3 => {
            let (a, b) = (rng.below(lines.len()), rng.below(lines.len()));
            let l = lines[a].clone();
            lines.insert(b, l);
        }
        _ => {
            let a = rng.below(lines.len());
            lines.remove(a);
        }
    }
    lines.join("\n")
}

#[test]
fn mutated_configs_never_panic_and_errors_name_a_field() {
    let full =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/full.yaml"))
            .unwrap();
    let mut rng = Rng(0x5eed_cafe_f00d_0001);
    let (mut accepted, mut rejected, mut unnamed) = (0, 0, 0);
    for i in 0..3000 {
        let text = mutate(&mut rng, &full);
        match edged_config::parse(&text) {
            Ok(_) => accepted += 1,
            Err(e) => {
                rejected += 1;
                // A rejection is a list of field errors, never empty; each
                // names its field by path (or, for YAML broken outside any
                // field, "(document)" with the line and column), and the
                // rendering leads with that name.
                let errors = e.field_errors();
                assert!(!errors.is_empty(), "case {i}: no field named: {e}");
                for fe in errors {
                    assert!(!fe.message.is_empty(), "case {i}: empty message");
                    assert!(
                        !fe.message.contains('\n'),
                        "case {i}: multi-line message {:?}",
                        fe.message
                    );
                    if fe.path.is_empty() {
                        unnamed += 1;
                    }
                    assert!(
                        !fe.path.is_empty() || fe.position.is_some(),
                        "case {i}: names neither a field nor a place: {fe:?}"
                    );
                    let shown = fe.to_string();
                    let lead = if fe.path.is_empty() {
                        "(document)"
                    } else {
                        &fe.path
                    };
                    assert!(
                        shown.starts_with(&format!("{lead}: ")),
                        "case {i}: {shown:?}"
                    );
                }
            }
        }
    }
    // Both outcomes occur, so the mutations exercise parsing and validation.
    println!("accepted {accepted}, rejected {rejected}, {unnamed} errors without a path");
    assert!(
        accepted > 50 && rejected > 500,
        "accepted {accepted}, rejected {rejected}"
    );
    // Only YAML broken outside any field (a file cut in its first lines)
    // has no path, and then its line and column stand for it.
    assert!(
        unnamed * 20 < rejected,
        "{unnamed} of {rejected} name no field"
    );
}
