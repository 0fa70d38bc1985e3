//! The zip reader (and everything behind it): the input is a whole checkpoint file.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safeshift_fuzz::torch_file(data));
