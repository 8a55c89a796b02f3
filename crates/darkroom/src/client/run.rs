//! `darkroom run TEMPLATE`: uploads the inputs, submits the job, follows it with a progress
//! bar and writes its outputs. Also the end of `jobs wait`: report a finished job, write
//! its files.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::args::RunArgs;
use super::events::{self, Update};
use super::params;
use super::progress::{self, Progress};
use super::{Client, ClientError};

/// # Errors
///
/// Every [`ClientError`]; a job that did not succeed is `JobFailed`.
pub async fn run(args: RunArgs) -> Result<(), ClientError> {
    let client = Client::new(&args.server.server, args.server.api_key.as_deref())?;
    let template_path = format!("/api/templates/{}", encode(&args.template));
    let template = client.get(&template_path).await?;
    let schema = params::schema_of(&template);
    let mut values = params::from_flags(&schema, &args.set)?;
    for argument in &args.inputs {
        let (name, file) = params::split("--input", argument)?;
        let asset = client
            .upload(Path::new(&file))
            .await
            .map_err(|error| match error {
                ClientError::Io { source, path, .. } => ClientError::invalid(format!(
                    "--input {name}: cannot read {}: {source}",
                    path.display()
                )),
                other => other,
            })?;
        let id = asset["id"].as_str().unwrap_or_default().to_owned();
        values.insert(name, Value::from(id));
    }

    let job = client
        .post(&format!("{template_path}/jobs"), &json!({"params": values}))
        .await?;
    let id = job["id"]
        .as_str()
        .ok_or_else(|| ClientError::Server(format!("the server's job has no id: {job}")))?
        .to_owned();
    report(&client, &id, Some(&args.out_dir), args.output.json).await
}

/// Follows job `id` to its end, writes its outputs into `out_dir` when given, and prints
/// the outcome.
///
/// # Errors
///
/// `JobFailed` when the job did not succeed; reaching the server or writing files.
pub async fn report(
    client: &Client,
    id: &str,
    out_dir: Option<&Path>,
    json: bool,
) -> Result<(), ClientError> {
    let titles = match client.get(&format!("/api/v2/jobs/{id}/workflow")).await {
        Ok(answer) => progress::node_titles(&answer),
        Err(_) => Default::default(),
    };
    let visible = !json && std::io::stderr().is_terminal();
    let bar = Progress::new(visible, titles);
    let followed = events::follow(client, id, |update: Update<'_>| bar.update(update)).await;
    bar.finish();
    let job = followed?;

    let succeeded = job["status"] == "succeeded";
    let mut files = Vec::new();
    if let (true, Some(out_dir)) = (succeeded, out_dir) {
        files = write_outputs(client, &job, out_dir).await?;
    }
    print_outcome(&job, &files, json);
    if succeeded {
        return Ok(());
    }
    Err(ClientError::JobFailed(failure(&job)))
}

/// Downloads every output into `out_dir` under its own name; returns what was written.
async fn write_outputs(
    client: &Client,
    job: &Value,
    out_dir: &Path,
) -> Result<Vec<Value>, ClientError> {
    tokio::fs::create_dir_all(out_dir)
        .await
        .map_err(|source| ClientError::Io {
            action: "cannot create",
            path: out_dir.to_owned(),
            source,
        })?;
    let mut files = Vec::new();
    for output in job["outputs"].as_array().into_iter().flatten() {
        let name = safe_file_name(output["name"].as_str().unwrap_or("output"));
        let path: PathBuf = out_dir.join(&name);
        let url = output["url"].as_str().unwrap_or_default();
        let size = client.download(url, &path).await?;
        files.push(json!({
            "path": path.display().to_string(),
            "asset_id": output["id"],
            "content_type": output["content_type"],
            "size_bytes": size,
        }));
    }
    Ok(files)
}

/// The last path component, with nothing that could climb out of the folder.
fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|character| {
            if character.is_control() {
                '_'
            } else {
                character
            }
        })
        .collect();
    match cleaned.trim_start_matches('.') {
        "" => "output".to_owned(),
        kept => kept.to_owned(),
    }
}

/// Why a job did not succeed, in words naming the node when the server says.
pub fn failure(job: &Value) -> String {
    let id = job["id"].as_str().unwrap_or("?");
    let status = job["status"].as_str().unwrap_or("unknown");
    let error = &job["error"];
    let Some(message) = error["message"].as_str() else {
        return format!("job {id} {status}");
    };
    let node = match (error["node_id"].as_str(), error["class_type"].as_str()) {
        (Some(node), _) if message.contains(&format!("node {node}")) => String::new(),
        (Some(node), Some(class)) => format!(" at node {node} ({class})"),
        (Some(node), None) => format!(" at node {node}"),
        _ => String::new(),
    };
    // ComfyUI's message often names the exception already.
    let exception = error["exception_type"]
        .as_str()
        .filter(|kind| !message.contains(kind))
        .map(|kind| format!("{kind}: "))
        .unwrap_or_default();
    format!("job {id} {status}{node}: {exception}{message}")
}

#[allow(clippy::print_stdout, reason = "printing the outcome is the command")]
fn print_outcome(job: &Value, files: &[Value], json: bool) {
    if json {
        println!("{}", json!({"job": job, "files": files}));
        return;
    }
    let id = job["id"].as_str().unwrap_or("?");
    let status = job["status"].as_str().unwrap_or("unknown");
    println!("job {id} {status}");
    for file in files {
        println!("{}", file["path"].as_str().unwrap_or_default());
    }
}

/// A template name as one path segment.
fn encode(name: &str) -> String {
    name.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_stay_inside_the_folder() {
        assert_eq!(safe_file_name("ComfyUI_00001_.png"), "ComfyUI_00001_.png");
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        assert_eq!(safe_file_name("a\\b\\..\\c.png"), "c.png");
        assert_eq!(safe_file_name(".."), "output");
        assert_eq!(safe_file_name(""), "output");
    }

    #[test]
    fn a_failure_names_the_node() {
        let job = serde_json::json!({"id": "j", "status": "failed", "error": {
            "message": "boom", "node_id": "3", "class_type": "DarkroomFail",
            "exception_type": "RuntimeError"}});
        assert_eq!(
            failure(&job),
            "job j failed at node 3 (DarkroomFail): RuntimeError: boom"
        );
    }
}
