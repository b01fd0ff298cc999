//! Benchmarks for nn.
