//! `crictl pods -o json` output (`k3s_sandbox::cni::cri::parse_pods`), which decides what `ipam gc
//! --from-cri` keeps: any text gives the sandboxes or an error, never a panic, and every sandbox
//! has an ID (a sandbox without one would make gc free a live pod's address).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(pods) = k3s_sandbox::cni::cri::parse_pods(text) {
        assert!(pods.iter().all(|p| !p.id.is_empty()));
    }
});
