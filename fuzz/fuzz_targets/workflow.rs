#![no_main]
//! Fuzz target: see `darkroom::fuzzing::workflow`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| darkroom::fuzzing::workflow(data));
