//! host-local's configuration parsing (`sandbox_cni::host_local::config`) and its resolv.conf parser,
//! on arbitrary CNI_ARGS and stdin. Input format as in the dispatch target: `KEY=VALUE` lines, an
//! empty line, then stdin.
//!
//! Accepted configurations must be usable: at least one range set, no two sets sharing an address,
//! one label per set, a dataDir without `..`, at most one set per family below 0.3.0. Refusals carry
//! code 7 (configuration) or 4 (CNI_ARGS) and a message.
#![no_main]

use std::path::Component;

use cni_core::error::code;
use cni_core::{Command, Env, NetConf, Request, Version};
use libfuzzer_sys::fuzz_target;
use sandbox_cni::host_local::{config, dns};
use sandbox_cni_fuzz::{check_parse_error, split_env_input};

fuzz_target!(|data: &[u8]| {
    let (vars, stdin) = split_env_input(data);
    if let Ok(text) = std::str::from_utf8(stdin) {
        let d = dns::parse(text);
        for word in d
            .nameservers
            .iter()
            .chain(&d.search)
            .chain(&d.options)
            .chain(&d.domain)
        {
            assert!(
                !word.is_empty() && !word.contains(char::is_whitespace),
                "resolv.conf word {word:?}"
            );
        }
    }
    let Ok(env) = Env::from_vars(Command::Add, &vars) else {
        return;
    };
    let Ok(conf) = NetConf::parse(stdin) else { return };
    let req = Request {
        env,
        conf,
        stdin,
        vars: &vars,
    };
    let allowed = [code::INVALID_CONFIG, code::INVALID_ENVIRONMENT];
    match config::parse(&req) {
        Ok(c) => {
            assert!(!c.sets.is_empty(), "accepted a configuration without range sets");
            assert_eq!(c.sets.len(), c.labels.len());
            for (i, a) in c.sets.iter().enumerate() {
                for b in &c.sets[i + 1..] {
                    assert!(!a.overlaps(b), "accepted overlapping range sets {a} and {b}");
                }
            }
            assert!(
                !c.data_dir.components().any(|x| x == Component::ParentDir),
                "accepted dataDir {}",
                c.data_dir.display()
            );
            if req.conf.version < Version::V0_3_0 {
                let v4 = c.sets.iter().filter(|s| s.is_ipv4()).count();
                assert!(
                    v4 <= 1 && c.sets.len() - v4 <= 1,
                    "two sets of one family below 0.3.0"
                );
            }
        }
        Err(e) => check_parse_error(&e, &allowed),
    }
    match config::requested(&req) {
        Ok(ips) => {
            for (i, ip) in ips.iter().enumerate() {
                assert!(!ips[i + 1..].contains(ip), "requested address {ip} listed twice");
            }
        }
        Err(e) => check_parse_error(&e, &allowed),
    }
    if let Err(e) = config::store_settings(&req) {
        check_parse_error(&e, &allowed);
    }
});
