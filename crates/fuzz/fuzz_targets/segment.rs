//! Fuzz target `segment`: the checks of `hotlead_tests::fuzz_checks::segment` (tests/fuzz_checks.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotlead_fuzz::checks::segment(data));
