//! `darkroom keys` and the refusal to serve an exposed address without keys, through the
//! real binary, as an operator would run them.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod harness;
mod support;

use std::path::Path;
use std::process::Output;

use darkroom::auth::{KeyLimits, Role};

use harness::darkroom;
use tokio::process::Command;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn keys_are_created_shown_once_listed_without_secrets_and_revoked() {
    let data = tempfile::tempdir().unwrap();
    let created = darkroom(
        data.path(),
        &["keys", "create", "ci-runner", "--max-queued", "5"],
    )
    .await;
    assert!(created.status.success(), "{}", text(&created.stderr));
    let stdout = text(&created.stdout);
    let key = stdout.lines().last().unwrap().trim().to_owned();
    assert!(key.starts_with("drk_") && key.len() > 40, "{stdout}");
    assert!(stdout.contains("user key"), "{stdout}");

    let admin = darkroom(data.path(), &["keys", "create", "ops", "--admin"]).await;
    assert!(text(&admin.stdout).contains("admin key"));
    let again = darkroom(data.path(), &["keys", "create", "ci-runner"]).await;
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already named \"ci-runner\""),
        "{}",
        text(&again.stderr)
    );
    let bad = darkroom(data.path(), &["keys", "create", "has space"]).await;
    assert!(!bad.status.success());

    let listed = darkroom(data.path(), &["keys", "list"]).await;
    let listing = text(&listed.stdout);
    assert!(
        listing.contains("ci-runner") && listing.contains("ops"),
        "{listing}"
    );
    assert!(listing.contains("queued=5"), "{listing}");
    assert!(!listing.contains(&key), "the listing shows a key");
    assert!(
        listing.contains(&key[..12]),
        "the listing shows how the key starts"
    );

    let revoked = darkroom(data.path(), &["keys", "revoke", "ci-runner"]).await;
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let listing = text(&darkroom(data.path(), &["keys", "list"]).await.stdout);
    assert!(listing.contains("revoked"), "{listing}");
    let twice = darkroom(data.path(), &["keys", "revoke", "ci-runner"]).await;
    assert!(!twice.status.success());
    // The name is free again once its key is revoked.
    let reused = darkroom(data.path(), &["keys", "create", "ci-runner"]).await;
    assert!(reused.status.success(), "{}", text(&reused.stderr));
}

#[tokio::test]
async fn an_exposed_address_without_keys_refuses_to_start() {
    let data = tempfile::tempdir().unwrap();
    // Refused before binding, so nothing ever listens beyond loopback; the backend is never
    // contacted either.
    for listen in ["0.0.0.0:0", "[::]:0"] {
        let refused = darkroom(
            data.path(),
            &[
                "serve",
                "--listen",
                listen,
                "--backend",
                "http://127.0.0.1:9",
            ],
        )
        .await;
        assert!(!refused.status.success());
        let stderr = text(&refused.stderr);
        assert!(stderr.contains("refusing to listen"), "{stderr}");
        assert!(stderr.contains("--open-server"), "{stderr}");
    }
}

#[tokio::test]
async fn the_cli_sends_its_key_and_says_how_to_give_one() {
    let server = support::TestServer::start().await;
    let key = server
        .create_key("cli", Role::User, KeyLimits::default())
        .await;
    let data = tempfile::tempdir().unwrap();
    let list = ["templates", "list", "--server", server.base.as_str()];

    let refused = darkroom_cli(data.path(), &list, None).await;
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("DARKROOM_API_KEY"),
        "{}",
        text(&refused.stderr)
    );

    let listed = darkroom_cli(data.path(), &list, Some(&key)).await;
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    server.stop().await;
}

/// A client command, with `key` in `DARKROOM_API_KEY` when given.
async fn darkroom_cli(cwd: &Path, args: &[&str], key: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_darkroom"));
    command.args(args).current_dir(cwd);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DARKROOM_") {
            command.env_remove(name);
        }
    }
    if let Some(key) = key {
        command.env("DARKROOM_API_KEY", key);
    }
    let run = tokio::time::timeout(std::time::Duration::from_secs(60), command.output());
    run.await.expect("darkroom answers in time").unwrap()
}

#[tokio::test]
async fn a_running_server_follows_keys_created_and_revoked_at_once() {
    let data = tempfile::tempdir().unwrap();
    let server = harness::DarkroomProcess::start(data.path(), "http://127.0.0.1:9").await;
    let jobs = format!("{}/api/v2/jobs", server.base);
    let status = |key: Option<&str>| {
        let request = server.http.get(&jobs);
        let request = match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        };
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(None).await, 200, "no keys on loopback: open");

    let created = darkroom(data.path(), &["keys", "create", "first"]).await;
    assert!(created.status.success(), "{}", text(&created.stderr));
    let key = text(&created.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned();
    // Another process made the key; the very next request knows it.
    assert_eq!(
        status(None).await,
        401,
        "a key exists: no more anonymous requests"
    );
    assert_eq!(status(Some(&key)).await, 200);

    let revoked = darkroom(data.path(), &["keys", "revoke", "first"]).await;
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    assert_eq!(
        status(Some(&key)).await,
        401,
        "a revoked key is refused at once"
    );
    assert_eq!(status(None).await, 200, "no live key left: open again");
}
