//! The `host-local` IPAM plugin binary; the behaviour lives in plugin.rs, config.rs and dns.rs.
mod config;
mod dns;
mod plugin;

fn main() -> std::process::ExitCode {
    cni_core::skel::run(&plugin::HostLocal)
}
