//! The `bridge` CNI plugin binary (fake: no kernel work); the behaviour lives in the `sandbox_cni::bridge`
//! module. It runs its IPAM plugin as a process.
fn main() -> std::process::ExitCode {
    cni_core::skel::run(&sandbox_cni::bridge::BRIDGE)
}
