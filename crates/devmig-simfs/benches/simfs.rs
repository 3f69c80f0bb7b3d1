//! simfs figures (written below).
fn main() {}
