//! The one list of sandbox-cni's plugins. `ALL` is generated from plugins/list.txt at build time
//! (see build.rs), the same file install.sh, tests/run.sh and bench/ read.

include!(concat!(env!("OUT_DIR"), "/plugin_list.rs"));

/// The plugins containerd needs for the default network: loopback for `lo`, and the three types of
/// cni-conf/10-sandbox-cni.conflist.
pub const DEFAULT_NETWORK: [&str; 4] = ["loopback", "bridge", "host-local", "portmap"];

#[cfg(test)]
mod tests {
    use super::*;

    /// Cargo cannot read the list, so the root Cargo.toml names each binary itself: the two agree.
    #[test]
    fn every_listed_plugin_is_a_binary_of_the_root_package_and_no_other_is() {
        let manifest = include_str!("../../../Cargo.toml");
        let mut section = "";
        let mut bins: Vec<&str> = Vec::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
            } else if section == "[[bin]]"
                && let Some(name) = line.strip_prefix("name = \"").and_then(|l| l.strip_suffix('"'))
            {
                bins.push(name);
            }
        }
        let mut want: Vec<&str> = ALL.to_vec();
        want.sort_unstable();
        let mut got = bins.clone();
        got.sort_unstable();
        assert_eq!(
            got, want,
            "plugins/list.txt and the [[bin]] entries of Cargo.toml differ"
        );
    }

    #[test]
    fn the_default_network_uses_listed_plugins() {
        for p in DEFAULT_NETWORK {
            assert!(ALL.contains(&p), "{p} is not in plugins/list.txt");
        }
    }
}
