//! The registry: generated schema/migration text → load, validate, check, plan.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safeshift_fuzz::registry(data));
