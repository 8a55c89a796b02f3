//! The web page in a real headless Chromium (Debian's `chromium`, driven by Playwright's
//! `playwright-core` from `testing/browser`), against `darkroom serve` in front of a real
//! ComfyUI: a prompt becomes a picture whose pixels are the stored output's, an uploaded
//! image is used, a queued then running job is canceled, a refused parameter and a failed
//! node are named, history, backends, a phone screen, the keyboard, and reconnects across
//! a network drop and a server restart.
//!
//! The checks live in `testing/browser/page.test.mjs`, run by node's test runner; this
//! test sets the stage and serves `POST /restart` on a control port, so the page test can
//! restart darkroom at the moment it chooses. Screenshots of every step are kept in
//! `target/browser-artifacts/`. `scripts/test.sh` installs Chromium and the npm package.
//!
//! The server has an API key (a user key, made with `darkroom keys create`): the page
//! asks for it on the first 401, and the test's own API calls send it too.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

mod served;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use served::Served;
use testkit::RealComfyUi;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

/// The whole page test; each of its waits is bounded at a minute on its own.
const PAGE_TEST: Duration = Duration::from_secs(600);
const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_turns_a_prompt_into_the_stored_picture_in_chromium() {
    let Some(comfyui) = RealComfyUi::shared() else {
        return;
    };
    let browser_dir = served::repo_root().join("testing/browser");
    check_tools(&browser_dir);
    let artifacts = artifacts_dir();

    let served = Arc::new(Mutex::new(Served::start(&comfyui.base_url()).await));
    let base_url = served.lock().await.base_url();
    let api_key = served.lock().await.create_key("page-test").await;
    let control = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let control_url = format!("http://{}", control.local_addr().unwrap());
    let controller = tokio::spawn(serve_control(control, Arc::clone(&served)));

    let mut node = tokio::process::Command::new("node");
    node.args(["--test", "page.test.mjs"])
        .current_dir(&browser_dir)
        .env("DARKROOM_URL", &base_url)
        .env("DARKROOM_API_KEY", &api_key)
        .env("DARKROOM_CONTROL", &control_url)
        .env("DARKROOM_ARTIFACTS", &artifacts)
        .env("CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let run = tokio::time::timeout(PAGE_TEST, node.output()).await;
    controller.abort();

    let served = served.lock().await;
    let Ok(run) = run else {
        panic!(
            "the page test did not end within {PAGE_TEST:?}\n--- darkroom log\n{}",
            served.log_tail()
        );
    };
    let output = run.unwrap();
    let report = format!(
        "--- node --test page.test.mjs ({})\n{}{}\n--- screenshots in {}\n--- darkroom log (last lines)\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        artifacts.display(),
        served.log_tail(),
    );
    assert!(output.status.success(), "the page test failed:\n{report}");
    // Shown with --nocapture: every step of the page test.
    eprintln!("{report}");
}

/// Everything the page test needs besides Darkroom, with the command that installs it.
fn check_tools(browser_dir: &Path) {
    let install = "run scripts/test.sh, which installs them (apt-get install chromium; \
                   npm ci in testing/browser)";
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: {install}"
    );
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "testing/browser/node_modules/playwright-core is missing: {install}"
    );
}

/// `target/browser-artifacts/`, emptied of an earlier run's screenshots.
fn artifacts_dir() -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser-artifacts");
    let _ = std::fs::remove_dir_all(&target);
    std::fs::create_dir_all(&target).unwrap();
    target
}

/// Answers `POST /restart` by restarting darkroom on its port, then `200`; anything else
/// `404`. One request per connection.
async fn serve_control(listener: TcpListener, served: Arc<Mutex<Served>>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let mut head = Vec::new();
        let mut buffer = [0u8; 1024];
        while !head.windows(4).any(|window| window == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => head.extend_from_slice(&buffer[..read]),
            }
        }
        let status = if head.starts_with(b"POST /restart ") {
            served.lock().await.restart().await;
            "200 OK"
        } else {
            "404 Not Found"
        };
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        let _ = stream.write_all(answer.as_bytes()).await;
    }
}
