//! Placeholder until the tuning plugin lands.
fn main() {}
