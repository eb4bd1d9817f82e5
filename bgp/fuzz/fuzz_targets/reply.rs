#![no_main]
//! Feed arbitrary bytes, line by line, to the BIRD reply assembler and error mapper.

use edged_bgp::reply::{Assembler, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut asm = Assembler::new();
    for line in data.split_inclusive(|b| *b == b'\n') {
        if let Ok(Step::Done(reply)) = asm.push(line) {
            let _ = edged_bgp::client::check("fuzz", reply);
        }
    }
});
