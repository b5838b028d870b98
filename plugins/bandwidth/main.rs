//! The `bandwidth` CNI plugin binary (pass-through: no kernel work); the behaviour lives in the
//! `sandbox_cni::bandwidth` module.
fn main() -> std::process::ExitCode {
    cni_core::skel::run(&sandbox_cni::bandwidth::PLUGIN)
}
