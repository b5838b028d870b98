//! Placeholder until the bandwidth plugin lands.
fn main() {}
