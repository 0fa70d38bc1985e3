//! Integration tests of the engine: one test binary, one module per area.
//!
//! Property tests run `ProptestConfig::with_cases(64)` by default; set `PROPTEST_CASES`
//! to run more.

mod header_only;
mod malformed;
mod roundtrip;
mod strategies;
mod util;
mod writer;
