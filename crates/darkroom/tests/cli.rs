//! The `darkroom` CLI against `darkroom serve` in front of a real ComfyUI: `run` writes
//! the output file byte for byte as the API serves it; uploads, `jobs` and `templates`
//! answer; and the exit status says whose fault a failure was (2 invalid input, 3 job
//! failed, 4 server unreachable).

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod served;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use served::Served;
use testkit::RealComfyUi;

/// One CLI command, start to exit, including a job it waits for.
const COMMAND: Duration = Duration::from_secs(180);

/// What a finished command left behind.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", self.describe()))
    }

    fn describe(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

async fn darkroom(server: &str, args: &[&str]) -> Ran {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_darkroom"));
    command
        .args(args)
        .env("DARKROOM_SERVER", server)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(COMMAND, command.output())
        .await
        .unwrap_or_else(|_| panic!("darkroom {args:?} did not end within {COMMAND:?}"))
        .unwrap();
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn start() -> Option<Served> {
    let comfyui = RealComfyUi::shared()?;
    Some(Served::start(&comfyui.base_url()).await)
}

async fn content(server: &str, asset_id: &str) -> Vec<u8> {
    let url = format!("{server}/api/v2/assets/{asset_id}/content");
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

#[tokio::test]
async fn run_writes_the_output_byte_for_byte_as_the_api_serves_it() {
    let Some(served) = start().await else {
        return;
    };
    let server = served.base_url();
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().to_str().unwrap();

    let ran = darkroom(
        &server,
        &[
            "run",
            "txt2img-sd15",
            "--set",
            "prompt=a lighthouse at dusk",
            "--set",
            "seed=7",
            "--set",
            "steps=4",
            "--set",
            "width=64",
            "--set",
            "height=64",
            "-o",
            out_dir,
            "--json",
        ],
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.describe());
    let answer = ran.json();
    assert_eq!(answer["job"]["status"], "succeeded");
    let files = answer["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{answer}");
    let written = std::fs::read(files[0]["path"].as_str().unwrap()).unwrap();
    let served_bytes = content(&server, files[0]["asset_id"].as_str().unwrap()).await;
    assert_eq!(
        written, served_bytes,
        "the written file differs from the API's"
    );
    assert!(written.starts_with(b"\x89PNG"));

    let id = answer["job"]["id"].as_str().unwrap();
    let shown = darkroom(&server, &["jobs", "show", id, "--json"]).await;
    assert_eq!(shown.code, 0, "{}", shown.describe());
    assert_eq!(shown.json()["parameters"]["seed"], 7);
    let listed = darkroom(&server, &["jobs", "list", "--template", "txt2img-sd15"]).await;
    assert!(listed.stdout.contains(id), "{}", listed.describe());
    // Each column starts where its heading does: the job's output count under OUTPUTS.
    let lines: Vec<&str> = listed.stdout.lines().collect();
    let column = lines[0].find("OUTPUTS").unwrap();
    let row = lines.iter().find(|line| line.starts_with(id)).unwrap();
    assert_eq!(row.get(column..), Some("1"), "{}", listed.describe());
    let plain = darkroom(&server, &["jobs", "show", id]).await;
    assert!(
        plain.stdout.contains("status     succeeded\n"),
        "a state the status already says is not repeated: {}",
        plain.describe()
    );
    let waited = darkroom(&server, &["jobs", "wait", id]).await;
    assert_eq!(waited.code, 0, "{}", waited.describe());
}

#[tokio::test]
async fn an_input_file_is_uploaded_and_used() {
    let Some(served) = start().await else {
        return;
    };
    let server = served.base_url();
    let out = tempfile::tempdir().unwrap();
    let picture = out.path().join("cat.png");
    write_png(&picture);

    let out_dir = out.path().join("out");
    let ran = darkroom(
        &server,
        &[
            "run",
            "invert-image",
            "--input",
            &format!("image={}", picture.display()),
            "-o",
            out_dir.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(ran.code, 0, "{}", ran.describe());
    let path = ran.stdout.lines().nth(1).unwrap();
    let inverted = image::open(path).unwrap().to_rgb8();
    assert_eq!(inverted.dimensions(), (8, 8));
    // ComfyUI computes in floats and truncates back to bytes: allow one step of rounding.
    let expected = [255 - 10, 255 - 200, 255 - 30];
    for (got, want) in inverted.get_pixel(0, 0).0.iter().zip(expected) {
        assert!(
            got.abs_diff(want) <= 1,
            "pixel {:?}",
            inverted.get_pixel(0, 0)
        );
    }
}

fn write_png(path: &Path) {
    image::RgbImage::from_pixel(8, 8, image::Rgb([10, 200, 30]))
        .save(path)
        .unwrap();
}

#[tokio::test]
async fn templates_are_listed_and_shown_from_the_server() {
    let Some(served) = start().await else {
        return;
    };
    let server = served.base_url();
    let listed = darkroom(&server, &["templates", "list"]).await;
    assert_eq!(listed.code, 0, "{}", listed.describe());
    assert!(
        listed.stdout.contains("txt2img-sd15"),
        "{}",
        listed.describe()
    );
    let marked = listed
        .stdout
        .lines()
        .skip_while(|line| !line.starts_with("needs-a-missing-node"))
        .nth(1)
        .unwrap_or_default();
    assert!(
        marked.contains("lacks node class \"DarkroomNodeNobodyHas\""),
        "{}",
        listed.describe()
    );
    let shown = darkroom(&server, &["templates", "show", "txt2img-sd15"]).await;
    assert_eq!(shown.code, 0, "{}", shown.describe());
    assert!(shown.stdout.contains("steps"), "{}", shown.describe());
    assert!(shown.stdout.contains("1 to 150"), "{}", shown.describe());
}

#[tokio::test]
async fn invalid_input_exits_2_naming_what_is_wrong() {
    let Some(served) = start().await else {
        return;
    };
    let server = served.base_url();
    let cases: &[(&[&str], &str)] = &[
        (&["run", "txt2img-sd15", "--set", "steps=many"], "\"steps\""),
        (&["run", "txt2img-sd15", "--set", "steps=1000"], "\"steps\""),
        (
            &["run", "txt2img-sd15", "--set", "colour=red"],
            "\"colour\"",
        ),
        (
            &["run", "txt2img-sd15", "--set", "no-equals-sign"],
            "NAME=VALUE",
        ),
        (&["run", "no-such-template"], "no-such-template"),
        (
            &["run", "invert-image", "--input", "image=/nonexistent.png"],
            "nonexistent",
        ),
        (&["run", "txt2img-sd15", "--bogus-flag"], "--bogus-flag"),
    ];
    for (args, named) in cases {
        let ran = darkroom(&server, args).await;
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.describe());
        assert!(
            ran.stderr.contains(named),
            "{args:?} does not name {named}: {}",
            ran.describe()
        );
    }
}

#[tokio::test]
async fn a_failed_job_exits_3_naming_the_node() {
    let Some(served) = start().await else {
        return;
    };
    let server = served.base_url();
    let ran = darkroom(&server, &["run", "always-fails", "--json"]).await;
    assert_eq!(ran.code, 3, "{}", ran.describe());
    assert!(
        ran.stderr.contains("node 2 (DarkroomFail)"),
        "{}",
        ran.describe()
    );
    assert!(
        ran.stderr.contains("darkroom test failure"),
        "{}",
        ran.describe()
    );
    assert_eq!(ran.json()["job"]["status"], "failed");
}

#[tokio::test]
async fn a_canceled_job_exits_3_for_whoever_waits() {
    let Some(served) = start().await else {
        return;
    };
    let server = served.base_url();
    let submitted: Value = reqwest::Client::new()
        .post(format!("{server}/api/templates/slow-steps/jobs"))
        .json(&serde_json::json!({"params": {"steps": 600, "step_ms": 500}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = submitted["id"].as_str().unwrap();

    // Waiting and canceling at once: whichever comes first, the waiter learns the end.
    let wait = ["jobs", "wait", id];
    let cancel = ["jobs", "cancel", id, "--json"];
    let (waited, canceled) = tokio::join!(darkroom(&server, &wait), darkroom(&server, &cancel));
    assert_eq!(canceled.code, 0, "{}", canceled.describe());
    assert_eq!(waited.code, 3, "{}", waited.describe());
    assert!(waited.stdout.contains("canceled"), "{}", waited.describe());
}

#[tokio::test]
async fn an_unreachable_server_exits_4() {
    // A port this test bound and let go: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!("http://127.0.0.1:{port}");
    for args in [
        &["run", "txt2img-sd15", "--set", "prompt=x"][..],
        &["jobs", "list"][..],
        &["templates", "list"][..],
    ] {
        let ran = darkroom(&server, args).await;
        assert_eq!(ran.code, 4, "{args:?}: {}", ran.describe());
        assert!(ran.stderr.contains("cannot reach"), "{}", ran.describe());
    }
}
