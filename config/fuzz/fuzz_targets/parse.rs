#![no_main]
//! Any bytes: parse never panics; a rejection always names its field.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(e) = edged_config::parse(text)
    {
        assert!(!e.to_string().is_empty());
    }
});
