#![no_main]
//! Arbitrary bytes as an HTTP check's answer, whole and cut at every split
//! the first byte picks: the parser never panics, never claims more bytes
//! than it was given, and a prefix it called complete stays complete.

use edged_health::parse_http_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let mut body = Vec::new();
    let cut = usize::from(pick) % (data.len() + 1);
    let prefix = parse_http_response(&data[..cut], false, pick & 1 == 1, true, &mut body);
    let whole = parse_http_response(data, true, pick & 1 == 1, true, &mut body);
    if let Ok(Some(p)) = prefix {
        assert!(p.end <= cut);
        let w = whole.expect("a complete prefix stays parseable").expect("complete");
        assert_eq!((w.status, w.end), (p.status, p.end));
    }
});
