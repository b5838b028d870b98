//! Any value in any bridge field: a result or a clean CNI error, never a crash, and an error never
//! leaves an allocation behind. In-process through the dispatcher, the IPAM too.

use super::*;
use crate::harness::strategy::any_json;
use proptest::prelude::*;

// Not "ipam": a random IPAM object without dataDir could reach the machine's default store.
const KEYS: [&str; 23] = [
    "bridge",
    "isGateway",
    "isDefaultGateway",
    "forceAddress",
    "ipMasq",
    "ipMasqBackend",
    "mtu",
    "hairpinMode",
    "promiscMode",
    "vlan",
    "vlanTrunk",
    "preserveDefaultVlan",
    "enabledad",
    "macspoofchk",
    "disableContainerInterface",
    "portIsolation",
    "dns",
    "args",
    "runtimeConfig",
    "capabilities",
    "prevResult",
    "cni.dev/valid-attachments",
    "unknownKey",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_field_values_never_crash(
        fields in prop::collection::vec((prop::sample::select(KEYS.to_vec()), any_json(&KEYS, 2)), 1..4),
        command in prop::sample::select(vec!["ADD", "CHECK", "DEL"]),
    ) {
        let dir = tmp();
        let mut c = single("1.0.0", dir.path());
        for (k, v) in &fields {
            c[*k] = v.clone();
        }
        let out = Cni::new("bridge", command).dispatch(&c);
        if !out.ok() {
            let e = out.json();
            let code = e["code"].as_u64().unwrap_or(0);
            prop_assert!(code != 999 && code != 0, "bad error code: {}", e);
            prop_assert!(e["msg"].as_str().is_some_and(|m| !m.is_empty()));
            if command == "ADD" {
                prop_assert!(reserved(dir.path()).is_empty(), "failed ADD left {:?}", reserved(dir.path()));
            }
        }
    }
}
