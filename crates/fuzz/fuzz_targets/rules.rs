//! Fuzz target `rules`: the checks of `hotlead_tests::fuzz_checks::rules` (tests/fuzz_checks.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| hotlead_fuzz::checks::rules(data));
