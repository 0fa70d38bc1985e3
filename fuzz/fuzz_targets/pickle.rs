//! The pickle machine: the input is the pickle, wrapped in a well-formed stored zip (and
//! also tried bare, which is the legacy format's path when it starts with PROTO).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safeshift_fuzz::pickle(data));
