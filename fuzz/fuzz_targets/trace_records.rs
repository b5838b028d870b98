//! Trace records as `k3s-sandbox trace` reads them from `trace.jsonl` (forged ones included):
//! every line that is JSON becomes a table row, never a panic; the rows shown on a terminal carry
//! no control characters once made printable.
#![no_main]

use cni_core::safefs::printable;
use k3s_sandbox::commands::trace::render::{fmt_time, parents, row};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let recs: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let ps = parents(&recs);
    assert_eq!(ps.len(), recs.len());
    for (v, p) in recs.iter().zip(&ps) {
        let r = row(v, p, false);
        for col in [&r.time, &r.plugin, &r.verb, &r.network, &r.container, &r.ifname, &r.result] {
            assert!(!printable(col).chars().any(char::is_control));
        }
        if let Some(t) = v.get("time").and_then(Value::as_f64) {
            let _ = fmt_time(t);
        }
    }
});
