//! One server per SQLite database: a second `darkroom serve` on the same file refuses to
//! start. In a test binary of its own: the lock is an `flock`, which a child process
//! forked by a concurrent test holds until it execs, so a release would not be seen at
//! once.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod harness;

use harness::darkroom;

#[tokio::test]
async fn a_second_server_on_the_same_database_refuses_to_start() {
    let data = tempfile::tempdir().unwrap();
    let database = data.path().join("darkroom.db");
    // What a running server holds on its database while it serves.
    let held = darkroom::store::claim_ownership(&format!("sqlite://{}", database.display()))
        .expect("the first claim succeeds");

    let serve = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--backend",
        "http://127.0.0.1:9",
    ];
    let refused = darkroom(data.path(), &serve).await;
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("served by another Darkroom process") && stderr.contains("darkroom.db"),
        "{stderr}"
    );

    // Free again once the first owner is gone; in-memory databases need no claim.
    drop(held);
    let url = format!("sqlite://{}", database.display());
    drop(darkroom::store::claim_ownership(&url).expect("free once released"));
    darkroom::store::claim_ownership("sqlite::memory:").expect("memory needs no lock");
}
