//! Placeholder until the bridge plugin lands.
fn main() {}
