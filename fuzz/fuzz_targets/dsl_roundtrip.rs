//! The language: parse, check, format, and the round trip `parse(format(parse(x)))`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safeshift_fuzz::dsl_roundtrip(data));
