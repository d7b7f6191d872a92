//! Runnable examples of herald: `cargo run --example quickstart` and `cargo run --example two_services`.
