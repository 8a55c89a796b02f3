//! `darkroom config`: defaults, file, environment and flags, in that order, secrets hidden.

use std::process::Command;

fn darkroom_config(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_darkroom"));
    command.arg("config").args(args);
    for key in [
        "DARKROOM_LISTEN",
        "DARKROOM_QUEUE_LIMIT",
        "DARKROOM_BACKEND_URL",
        "DARKROOM_CONFIG",
        "DARKROOM_DATABASE_URL",
    ] {
        command.env_remove(key);
    }
    command.envs(env.iter().copied());
    let output = command.output().expect("run darkroom config");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn defaults_serve_one_machine() {
    let (ok, stdout, stderr) = darkroom_config(&[], &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("listen = \"127.0.0.1:8420\""), "{stdout}");
    assert!(
        stdout.contains("url = \"http://127.0.0.1:8188\""),
        "{stdout}"
    );
    assert!(stdout.contains("database_url = \"sqlite://"), "{stdout}");
}

#[test]
fn file_then_environment_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("darkroom.toml");
    std::fs::write(&file, "listen = \"127.0.0.1:9001\"\nqueue_limit = 5\n").unwrap();
    let file = file.to_str().unwrap();

    let (_, stdout, _) = darkroom_config(&["--config", file], &[]);
    assert!(
        stdout.contains("127.0.0.1:9001") && stdout.contains("queue_limit = 5"),
        "{stdout}"
    );

    let (_, stdout, _) = darkroom_config(&["--config", file], &[("DARKROOM_QUEUE_LIMIT", "7")]);
    assert!(
        stdout.contains("127.0.0.1:9001") && stdout.contains("queue_limit = 7"),
        "{stdout}"
    );

    let (_, stdout, _) = darkroom_config(
        &["--config", file, "--listen", "127.0.0.1:9002"],
        &[("DARKROOM_LISTEN", "127.0.0.1:9003")],
    );
    assert!(stdout.contains("127.0.0.1:9002"), "{stdout}");
}

#[test]
fn secrets_in_urls_are_redacted() {
    let (ok, stdout, stderr) = darkroom_config(
        &[
            "--database-url",
            "postgres://darkroom:hunter2@127.0.0.1/darkroom",
        ],
        &[("DARKROOM_BACKEND_URL", "http://user:s3cret@127.0.0.1:8188")],
    );
    assert!(ok, "{stderr}");
    assert!(
        !stdout.contains("hunter2") && !stdout.contains("s3cret"),
        "{stdout}"
    );
    assert!(stdout.contains("****"), "{stdout}");
}

#[test]
fn bad_values_are_named() {
    let (ok, _, stderr) = darkroom_config(&[], &[("DARKROOM_QUEUE_LIMIT", "lots")]);
    assert!(!ok);
    assert!(stderr.to_lowercase().contains("queue_limit"), "{stderr}");

    let (ok, _, stderr) = darkroom_config(&["--config", "/nonexistent/darkroom.toml"], &[]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/darkroom.toml"), "{stderr}");
}

#[test]
fn the_example_file_loads_and_limits_layer_like_the_rest() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/darkroom.example.toml");
    let (ok, stdout, stderr) = darkroom_config(&["--config", example], &[]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("open_server = false"), "{stdout}");
    assert!(
        stdout.contains("[limits]") && stdout.contains("burst = 120"),
        "{stdout}"
    );
    assert!(stdout.contains("max_run_time = \"1h\""), "{stdout}");

    let (ok, stdout, stderr) = darkroom_config(
        &["--config", example, "--open-server"],
        &[
            ("DARKROOM_LIMITS__BURST", "7"),
            ("DARKROOM_TIMEOUTS__MAX_RUN_TIME", "10m"),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.contains("burst = 7"), "{stdout}");
    assert!(stdout.contains("max_run_time = \"10m\""), "{stdout}");
    assert!(stdout.contains("open_server = true"), "{stdout}");
}

#[test]
fn a_cors_origin_that_is_not_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("darkroom.toml");
    std::fs::write(&file, "cors_origins = [\"https://app.example/path\"]\n").unwrap();
    let (ok, _, stderr) = darkroom_config(&["--config", file.to_str().unwrap()], &[]);
    assert!(!ok);
    assert!(stderr.contains("https://app.example/path"), "{stderr}");
}
