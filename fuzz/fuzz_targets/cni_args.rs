//! CNI_ARGS parsing, checked against a small independent model of libcni's rules
//! (pkg/types/args.go): `;`-separated `K=V` items with exactly one `=`, unknown keys refused unless
//! some `IgnoreUnknown` item is true.
#![no_main]

use arbitrary::Arbitrary;
use cni_core::args::CniArgs;
use cni_core::error::code;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    raw: String,
    known: Vec<String>,
}

/// What libcni would decide: `Some(pairs)` when accepted.
fn model(raw: &str, known: &[&str]) -> Option<Vec<(String, String)>> {
    if raw.is_empty() {
        return Some(Vec::new());
    }
    let mut pairs = Vec::new();
    for item in raw.split(';') {
        let parts: Vec<&str> = item.split('=').collect();
        if parts.len() != 2 {
            return None;
        }
        pairs.push((parts[0].to_owned(), parts[1].to_owned()));
    }
    let mut ignore = false;
    for (k, v) in &pairs {
        if k == "IgnoreUnknown" {
            match v.to_lowercase().as_str() {
                "1" | "true" => ignore = true,
                "0" | "false" => {}
                _ => return None,
            }
        }
    }
    let all_known = pairs
        .iter()
        .all(|(k, _)| k == "IgnoreUnknown" || known.contains(&k.as_str()));
    (ignore || all_known).then_some(pairs)
}

fuzz_target!(|input: Input| {
    let known: Vec<&str> = input.known.iter().map(String::as_str).collect();
    let got = CniArgs::parse(&input.raw, &known);
    let want = model(&input.raw, &known);
    match (&got, &want) {
        (Ok(a), Some(pairs)) => {
            assert_eq!(a.pairs(), pairs.as_slice());
            for (k, _) in pairs {
                let last = pairs
                    .iter()
                    .rev()
                    .find(|(k2, _)| k2 == k)
                    .map(|(_, v)| v.as_str());
                assert_eq!(a.get(k), last, "get({k:?}) must be the last value");
            }
        }
        (Err(e), None) => {
            assert_eq!(e.code, code::INVALID_ENVIRONMENT, "{}", e.msg);
            assert!(
                e.msg.starts_with("CNI_ARGS") || e.msg.starts_with("ARGS"),
                "{}",
                e.msg
            );
        }
        _ => panic!(
            "CNI_ARGS {:?} with known {known:?}: parser says {got:?}, libcni's rules say {want:?}",
            input.raw
        ),
    }
});
