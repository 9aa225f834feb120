//! Fuzz target `normalize`: the checks of `hotlead_tests::fuzz_checks::normalize` (tests/fuzz_checks.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotlead_fuzz::checks::normalize(data));
