//! Loopback push servers for tests, demos and benchmarks.
