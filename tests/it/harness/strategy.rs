//! The proptest strategy of the robustness tests: any JSON value, with the numbers and strings that sit
//! on the edges of what the plugins check, and objects keyed by names the plugins read.

use proptest::prelude::*;
use serde_json::Value;

/// Any JSON value up to `depth` levels deep: leaves from null to edge-case numbers and strings, and
/// objects whose keys are drawn from `keys` or are short random words.
pub(crate) fn any_json(keys: &'static [&'static str], depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        (-1.0e12f64..1.0e12).prop_map(Value::from),
        prop::sample::select(vec![0i64, -1, 1, 67, 68, 1500, 4094, 4095, 65535, 65536]).prop_map(Value::from),
        "[a-z0-9:./-]{0,20}".prop_map(Value::from),
        prop::sample::select(vec![
            "0a:58:0a:2a:00:07",
            "01:00:5e:00:00:01",
            "cni0",
            "",
            "iptables"
        ])
        .prop_map(Value::from),
    ];
    let key = prop_oneof![
        prop::sample::select(keys.to_vec()).prop_map(str::to_owned),
        "[a-zA-Z]{1,8}",
    ];
    leaf.prop_recursive(depth, 4 * depth, 3, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map(key.clone(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
