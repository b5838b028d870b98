//! libcni result cache entries (`cni_runtime::cache::Entry::from_json`), as `cni check`, `del` and
//! `gc` read them from a directory others may write to: any bytes give an entry or an error, never a
//! panic; an entry written back reads back the same; its file name never leaves `results/`.
#![no_main]

use cni_runtime::cache::{Cache, Entry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(e) = Entry::from_json(data) else { return };
    // What we write, we read back unchanged (after one normalisation of empty optional fields).
    let once = Entry::from_json(e.to_json().as_bytes()).expect("our own entry reads back");
    let twice = Entry::from_json(once.to_json().as_bytes()).expect("our own entry reads back");
    assert_eq!(once, twice);
    // The names it carries make a path inside results/ or are refused.
    if let Ok(name) = Cache::file_name(&e.network, &e.container_id, &e.ifname) {
        assert!(!name.contains('/') && name != "." && name != "..", "{name:?}");
    }
});
