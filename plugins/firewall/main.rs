//! Placeholder until the firewall plugin lands.
fn main() {}
