//! The `loopback` CNI plugin binary; the behaviour lives in the `sandbox_cni::loopback` module.
fn main() -> std::process::ExitCode {
    cni_core::skel::run(&sandbox_cni::loopback::Loopback)
}
