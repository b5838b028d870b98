//! The dispatcher end to end: environment + stdin -> stdout, exit status, for the real loopback plugin
//! and for a probe plugin that reads the request through every cni-core accessor.
//!
//! Input format: `KEY=VALUE` lines, an empty line, then stdin (see `split_env_input`).
#![no_main]

use cni_core::skel::dispatch;
use cni_core::{Command, Version};
use libfuzzer_sys::fuzz_target;
use sandbox_cni::loopback;
use sandbox_cni_fuzz::{Probe, check_add_reply, check_outcome, request_version, split_env_input};

fuzz_target!(|data: &[u8]| {
    let (vars, stdin) = split_env_input(data);
    let command = vars
        .get(std::ffi::OsStr::new("CNI_COMMAND"))
        .and_then(|c| c.to_str())
        .and_then(Command::parse);
    for plugin in [&Probe as &dyn cni_core::Plugin, &loopback::Loopback] {
        let out = dispatch(plugin, &vars, stdin);
        let reply = check_outcome(&out);
        // Same input, same answer: nothing may depend on state or time.
        assert_eq!(
            out,
            dispatch(plugin, &vars, stdin),
            "dispatch is not deterministic"
        );
        let Some(reply) = reply else {
            if command == Some(Command::Add) {
                panic!("ADD succeeded without printing a result");
            }
            continue;
        };
        if out.exit != 0 {
            continue;
        }
        match command {
            Some(Command::Version) => {
                let versions = reply["supportedVersions"].as_array().map(Vec::len);
                assert_eq!(versions, Some(Version::ALL.len()), "VERSION reply: {reply}");
            }
            Some(Command::Add) => {
                let version = request_version(stdin);
                assert!(version.is_some(), "ADD succeeded on a config that does not parse");
                check_add_reply(&reply, version.unwrap_or(Version::V1_1_0));
            }
            _ => panic!("only ADD and VERSION print on success, got {reply}"),
        }
    }
});
