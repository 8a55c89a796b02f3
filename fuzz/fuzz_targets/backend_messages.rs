#![no_main]
//! Fuzz target: see `darkroom::fuzzing::backend_messages`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| darkroom::fuzzing::backend_messages(data));
