//! The `host-local` IPAM plugin binary; the behaviour lives in the `sandbox_cni::host_local` module.
fn main() -> std::process::ExitCode {
    cni_core::skel::run(&sandbox_cni::host_local::HostLocal)
}
