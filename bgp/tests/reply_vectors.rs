//! Byte-vector tests of the control-socket reply parser, and a seeded robustness
//! test feeding random and mutated input.

use edged_bgp::client::{ClientError, check};
use edged_bgp::reply::{Assembler, LineKind, ReplyError, Step, parse_config_location, parse_line};
use edged_testlab::Rng;

fn feed(asm: &mut Assembler, bytes: &[u8]) -> Vec<Result<Step, ReplyError>> {
    bytes
        .split_inclusive(|b| *b == b'\n')
        .map(|l| asm.push(l))
        .collect()
}

#[test]
fn greeting_is_a_single_line_reply() {
    let mut a = Assembler::new();
    let r = a.push(b"0001 BIRD 2.0.12 ready.\n").unwrap();
    let Step::Done(reply) = r else {
        panic!("{r:?}")
    };
    assert_eq!(reply.code, 1);
    assert_eq!(reply.message(), "BIRD 2.0.12 ready.");
}

#[test]
fn multi_line_reply_with_space_continuation() {
    let bytes = b"1000-BIRD 2.0.12\n1011-Router ID is 192.0.2.1\n Hostname is vm\n Current server time\n0013 Daemon is up and running\n";
    let mut a = Assembler::new();
    let steps = feed(&mut a, bytes);
    assert!(steps[..4].iter().all(|s| *s == Ok(Step::Pending)));
    let Ok(Step::Done(reply)) = &steps[4] else {
        panic!("{steps:?}")
    };
    assert_eq!(reply.code, 13);
    assert_eq!(
        reply.lines[2],
        (1011, "Hostname is vm".to_string()),
        "continuation keeps previous code"
    );
    assert_eq!(reply.lines.len(), 5);
}

#[test]
fn bare_code_and_crlf_and_async_lines() {
    assert_eq!(parse_line(b"0000\n").unwrap().kind, LineKind::Last);
    assert_eq!(parse_line(b"0000 \r\n").unwrap().text, "");
    let l = parse_line(b"+0019 spontaneous\n").unwrap();
    assert_eq!(
        (l.kind, l.code, l.text.as_str()),
        (LineKind::Async, Some(19), "spontaneous")
    );
    let mut a = Assembler::new();
    let steps = feed(
        &mut a,
        b"2002-Name Proto\n+log line\n1002-device1 Device\n0000 \n",
    );
    assert_eq!(steps[1], Ok(Step::Async("log line".into())));
    let Ok(Step::Done(r)) = &steps[3] else {
        panic!("{steps:?}")
    };
    assert_eq!(r.lines.len(), 3, "async line is not part of the reply");
}

#[test]
fn malformed_lines_are_typed_errors() {
    assert_eq!(parse_line(b"\n"), Err(ReplyError::EmptyLine));
    assert_eq!(parse_line(b""), Err(ReplyError::EmptyLine));
    assert!(matches!(
        parse_line(b"12a4 x\n"),
        Err(ReplyError::BadCode { .. })
    ));
    assert!(matches!(
        parse_line(b"123\n"),
        Err(ReplyError::BadCode { .. })
    ));
    assert!(matches!(
        parse_line(b"hello world\n"),
        Err(ReplyError::BadCode { .. })
    ));
    assert!(matches!(
        parse_line(b"0001:x\n"),
        Err(ReplyError::BadSeparator { sep: ':', .. })
    ));
    assert_eq!(parse_line(b"0001 \xff\xfe\n"), Err(ReplyError::NotUtf8));
    let long = vec![b'0'; edged_bgp::reply::MAX_LINE + 1];
    assert!(matches!(parse_line(&long), Err(ReplyError::TooLong { .. })));
    let mut a = Assembler::new();
    assert!(matches!(
        a.push(b" orphan\n"),
        Err(ReplyError::OrphanContinuation { .. })
    ));
    // After an error the assembler starts clean.
    assert!(a.push(b"1000-x\n").is_ok());
    assert!(a.push(b"garbage\n").is_err());
    let Ok(Step::Done(r)) = a.push(b"0000 \n") else {
        panic!()
    };
    assert_eq!(r.lines.len(), 1);
}

#[test]
fn error_codes_map_to_typed_errors() {
    let mut a = Assembler::new();
    let steps = feed(&mut a, b"0002-Reading configuration from /x/bird.conf\n8002 /x/bird.conf:2:74 Hold time must be in range 3-65535 or zero\n");
    let Ok(Step::Done(r)) = steps[1].clone() else {
        panic!("{steps:?}")
    };
    match check("configure", r) {
        Err(ClientError::Config(loc)) => {
            assert_eq!(
                (loc.file.as_str(), loc.line, loc.column),
                ("/x/bird.conf", 2, 74)
            );
            assert!(loc.message.starts_with("Hold time"));
        }
        other => panic!("{other:?}"),
    }
    let Ok(Step::Done(r)) = a.push(b"8003 No protocols match\n") else {
        panic!()
    };
    assert!(matches!(
        check("enable x", r),
        Err(ClientError::Runtime { code: 8003, .. })
    ));
    let Ok(Step::Done(r)) = a.push(b"9001 syntax error, unexpected CF_SYM_UNDEFINED\n") else {
        panic!()
    };
    assert!(matches!(
        check("foo", r),
        Err(ClientError::Parse { code: 9001, .. })
    ));
    let Ok(Step::Done(r)) = a.push(b"0011 Enabled\n") else {
        panic!()
    };
    assert!(check("enable x", r).is_ok());
}

#[test]
fn config_location_forms() {
    let l = parse_config_location("bird: a/b.conf:12:3 syntax error").unwrap();
    assert_eq!(
        (l.file.as_str(), l.line, l.column, l.message.as_str()),
        ("a/b.conf", 12, 3, "syntax error")
    );
    assert!(parse_config_location("no location here").is_none());
    assert!(parse_config_location("file:x:3 msg").is_none());
}

#[test]
fn random_and_mutated_input_never_panics() {
    let seeds: &[&[u8]] = &[
        b"0001 BIRD 2.0.12 ready.\n",
        b"1000-BIRD 2.0.12\n1011-Router ID is 192.0.2.1\n Hostname is vm\n0013 Daemon is up and running\n",
        b"0002-Reading configuration from /x\n8002 /x:2:74 Hold time\n",
        b"+0019 x\n2002-Name\n1002-edged_p_t BGP --- up 1700000000 Established\n0000 \n",
    ];
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let (mut ok, mut err) = (0u32, 0u32);
    for i in 0..20_000 {
        let mut input: Vec<u8> = if i % 4 == 0 {
            (0..rng.below(200)).map(|_| rng.next_u64() as u8).collect()
        } else {
            seeds[rng.below(seeds.len())].to_vec()
        };
        for _ in 0..rng.below(8) {
            if input.is_empty() {
                break;
            }
            let p = rng.below(input.len());
            match rng.below(4) {
                0 => input[p] = rng.next_u64() as u8,
                1 => input.insert(p, [b'\n', b' ', b'-', b'+', b'9'][rng.below(5)]),
                2 => {
                    input.remove(p);
                }
                _ => input.truncate(p),
            }
        }
        let mut a = Assembler::new();
        for line in input.split_inclusive(|b| *b == b'\n') {
            match a.push(line) {
                Ok(Step::Done(r)) => {
                    ok += 1;
                    // Mapping must also be total.
                    let _ = check("x", r);
                }
                Ok(_) => {}
                Err(e) => {
                    err += 1;
                    assert!(!e.to_string().is_empty());
                }
            }
        }
    }
    assert!(
        ok > 1000 && err > 1000,
        "both paths exercised: ok={ok} err={err}"
    );
}
