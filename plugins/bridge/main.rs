//! The `bridge` CNI plugin binary (fake: no kernel work); the behaviour lives in plugin.rs.
#[path = "../chain/shared.rs"]
mod shared;

mod plugin;

fn main() -> std::process::ExitCode {
    cni_core::skel::run(&plugin::Bridge)
}
