//! The documentation's examples run as tests (issue 20): `tests/cmd/*.trycmd` and `*.toml` hold
//! the commands of README.md and docs/*.md with their output, run by trycmd against this build,
//! in a copy of the case's `.in/` directory. `TRYCMD=overwrite cargo test -p k3s-sandbox --test it
//! docs` rewrites them after a deliberate change of output; review the diff and the docs.

use crate::common::{built_plugins_dir, exe};

#[test]
fn documented_examples_run() {
    let bin = built_plugins_dir();
    let t = trycmd::TestCases::new();
    t.register_bin("k3s-sandbox", exe());
    for p in ["bridge", "host-local", "loopback"] {
        t.register_bin(p, bin.join(p));
    }
    t.env("NETCONFPATH", "net.d")
        .env("CNI_PATH", bin.to_string_lossy().into_owned())
        .env("CNI_CACHE_DIR", "cache")
        .env("SANDBOX_CNI_TRACE_DIR", "trace")
        .env("HOME", "home")
        .env("NO_COLOR", "1");
    // Empty counts as unset for each of these.
    for v in [
        "CNI_CONF_DIR",
        "CNI_BIN_DIR",
        "K3S_SANDBOX_DATA_DIR",
        "CNI_ARGS",
        "CAP_ARGS",
        "CLICOLOR_FORCE",
    ] {
        t.env(v, "");
    }
    t.case("tests/cmd/*.trycmd").case("tests/cmd/*.toml");
}
