//! The safetensors reader on arbitrary bytes: a whole file (prefix, header, data).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safeshift_fuzz::safetensors_header(data));
