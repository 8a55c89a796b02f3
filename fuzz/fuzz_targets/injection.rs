#![no_main]
//! Fuzz target: see `darkroom::fuzzing::injection`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| darkroom::fuzzing::injection(data));
