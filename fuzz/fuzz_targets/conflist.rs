//! Network configuration files as the runtime side loads them (`NetworkList::from_list_bytes` with
//! `cniVersions`, `from_conf_bytes`): any bytes give a network list or an error, never a panic, and
//! an accepted list has a consistent chain and a version the runtime can compare.
#![no_main]

use cni_core::config::valid_identifier;
use cni_runtime::conf::NetworkList;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for parsed in [NetworkList::from_list_bytes(data), NetworkList::from_conf_bytes(data)] {
        let Ok(list) = parsed else { continue };
        let _ = valid_identifier(&list.name);
        let types = list.plugin_types();
        let chain = list.chain();
        assert_eq!(chain.len(), list.plugins.len());
        // Every non-empty type of the chain is among the executables the list needs, once.
        assert!(chain.iter().filter(|t| !t.is_empty()).all(|t| types.iter().any(|x| x == t)));
        let mut unique = types.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), types.len());
        // The version orderings the runtime applies to it answer without a panic.
        let _ = cni_runtime::version::at_least(&list.cni_version, "0.4.0");
    }
});
