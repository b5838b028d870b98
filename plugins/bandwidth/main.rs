//! The `bandwidth` CNI plugin binary (pass-through: no kernel work); the behaviour lives in plugin.rs.
#[path = "../chain/shared.rs"]
mod shared;

mod plugin;

fn main() -> std::process::ExitCode {
    cni_core::skel::run(&plugin::PLUGIN)
}
