//! The `loopback` CNI plugin binary; the behaviour lives in plugin.rs.
mod plugin;

fn main() -> std::process::ExitCode {
    cni_core::skel::run(&plugin::Loopback)
}
