#![no_main]
//! Fuzz target: see `darkroom::fuzzing::ui_conversion`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| darkroom::fuzzing::ui_conversion(data));
