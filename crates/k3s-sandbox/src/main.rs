//! `k3s-sandbox`: check a sandbox, wire the sandbox-cni plugins and run k3s. See docs/k3s.md.
//! The command line and its dispatch are the library's `cli` module; this file holds the
//! allocator and the `cnitool` entry.

use std::process::ExitCode;

/// musl's allocator returns freed small blocks to the kernel at once, so a start of k3s-sandbox made
/// about 60 mmap/munmap calls (a third of the CPU time of a `cni` call outside its plugins).
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> ExitCode {
    if let Some(code) = k3s_sandbox::commands::cni::run_as_cnitool() {
        return code;
    }
    ExitCode::from(k3s_sandbox::cli::main())
}
