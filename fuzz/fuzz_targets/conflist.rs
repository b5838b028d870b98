//! Network configuration files as the runtime side loads them (`NetworkList::from_list_bytes` with
//! `cniVersions`, `from_conf_bytes`): any bytes give a network list or an error, never a panic, and
//! an accepted list has a valid name and a usable chain.
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
        assert_eq!(types.len(), chain.len());
        assert!(!list.cni_version.is_empty());
    }
});
