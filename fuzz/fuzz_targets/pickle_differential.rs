//! The pickle machine against CPython's C unpickler: the input is a pickle, read by both;
//! any disagreement on the value, the globals named or the globals invoked is a finding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| safeshift_fuzz::pickle_differential(data));
