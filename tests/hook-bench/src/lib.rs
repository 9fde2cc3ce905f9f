//! Nothing: the benchmarks are in `benches/` (BENCHMARKS.md).
