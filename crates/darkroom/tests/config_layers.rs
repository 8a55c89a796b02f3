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

    let (ok, _, stderr) = darkroom_config(&[], &[("DARKROOM_LEASE_DURATION", "100ms")]);
    assert!(!ok);
    assert!(
        stderr.contains("`lease_duration` must be at least 1s"),
        "{stderr}"
    );
}

#[test]
fn backends_carry_weight_tags_limits_and_managed_processes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("darkroom.toml");
    std::fs::write(
        &file,
        r#"
prompts_per_backend = 3
max_attempts = 4

[[backends]]
name = "remote"
url = "http://127.0.0.1:8188"
weight = 2
tags = ["sdxl"]
max_prompts = 1

[[backends]]
name = "gpu1"
[backends.managed]
python = "/opt/comfyui/venv/bin/python"
comfyui_dir = "/opt/comfyui"
args = ["--cpu"]
env = { CUDA_VISIBLE_DEVICES = "1", HF_TOKEN = "hunter2" }
"#,
    )
    .unwrap();
    let (ok, stdout, stderr) = darkroom_config(&["--config", file.to_str().unwrap()], &[]);
    assert!(ok, "{stderr}");
    for expected in [
        "prompts_per_backend = 3",
        "max_attempts = 4",
        "weight = 2",
        "max_prompts = 1",
        "comfyui_dir = \"/opt/comfyui\"",
        "CUDA_VISIBLE_DEVICES = \"1\"",
        "ready_timeout = \"5m\"",
    ] {
        assert!(stdout.contains(expected), "{expected} missing:\n{stdout}");
    }
    assert!(!stdout.contains("hunter2"), "a token is hidden:\n{stdout}");
}

#[test]
fn a_backend_needs_exactly_one_of_url_and_managed_and_a_unique_name() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[[backends]]\nname = \"a\"\n",
            "needs a `url` or a `managed` table",
        ),
        (
            "[[backends]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\n[backends.managed]\npython = \"p\"\ncomfyui_dir = \"c\"\n",
            "has both `url` and `managed`",
        ),
        (
            "[[backends]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\n[[backends]]\nname = \"a\"\nurl = \"http://127.0.0.1:2\"\n",
            "backend name \"a\" is used twice",
        ),
        (
            "[[backends]]\nname = \"../x\"\nurl = \"http://127.0.0.1:1\"\n",
            "backend name \"../x\" must be",
        ),
        (
            "[[backends]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\nwieght = 2\n",
            "wieght",
        ),
    ];
    for (index, (toml, message)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case-{index}.toml"));
        std::fs::write(&file, toml).unwrap();
        let (ok, _, stderr) = darkroom_config(&["--config", file.to_str().unwrap()], &[]);
        assert!(!ok, "case {index} accepted");
        assert!(stderr.contains(message), "case {index}: {stderr}");
    }
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
