//! Replays every input kept in `fuzz/regressions/TARGET/` through its fuzz target's entry
//! point (`darkroom::fuzzing`): crashes the fuzzers found, and hostile inputs written by
//! hand, stay fixed under plain `cargo test`.

use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        .map(|entry| entry.expect("a readable folder entry").path())
        .filter(|path| path.is_file())
        .collect();
    found.sort();
    assert!(
        !found.is_empty(),
        "{} holds no input: a regression folder must not be empty",
        folder.display()
    );
    found
}

fn replay(target: &str, run: fn(&[u8])) {
    for path in inputs(target) {
        let data = std::fs::read(&path).expect("a readable regression input");
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{target}: {} crashes again", path.display());
        }
    }
}

#[test]
fn workflow_inputs_are_answered_without_a_crash() {
    replay("workflow", darkroom::fuzzing::workflow);
}

#[test]
fn ui_conversion_inputs_are_answered_without_a_crash() {
    replay("ui_conversion", darkroom::fuzzing::ui_conversion);
}

#[test]
fn backend_messages_are_answered_without_a_crash() {
    replay("backend_messages", darkroom::fuzzing::backend_messages);
}

#[test]
fn injection_inputs_are_answered_without_a_crash() {
    replay("injection", darkroom::fuzzing::injection);
}
