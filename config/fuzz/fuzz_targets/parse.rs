#![no_main]
//! Any bytes: parse never panics; a rejection always names its field (or,
//! for YAML broken outside any field, the line and column), and its
//! rendering leads with that name.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(e) = edged_config::parse(text)
    {
        let errors = e.field_errors();
        assert!(!errors.is_empty(), "a rejection without a field: {e}");
        for fe in errors {
            assert!(!fe.message.is_empty(), "{fe:?}");
            assert!(
                !fe.path.is_empty() || fe.position.is_some(),
                "names neither a field nor a place: {fe:?}"
            );
            let lead = if fe.path.is_empty() {
                "(document)"
            } else {
                fe.path.as_str()
            };
            assert!(fe.to_string().starts_with(&format!("{lead}: ")), "{fe}");
        }
    }
});
