//! `darkroom jobs list | show | wait | cancel`.

use serde_json::{Value, json};

use super::args::JobsCommand;
use super::{Client, ClientError, run};

/// # Errors
///
/// Every [`ClientError`]; `jobs wait` on a job that did not succeed is `JobFailed`.
pub async fn jobs(command: JobsCommand) -> Result<(), ClientError> {
    match command {
        JobsCommand::List {
            template,
            status,
            limit,
            server,
            output,
        } => {
            let client = Client::new(&server.server, server.api_key.as_deref())?;
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("limit", &limit.to_string());
            if let Some(template) = &template {
                query.append_pair("template", template);
            }
            if let Some(status) = &status {
                query.append_pair("status", status);
            }
            let page = client
                .get(&format!("/api/history?{}", query.finish()))
                .await?;
            print_list(&page, output.json);
            Ok(())
        }
        JobsCommand::Show { id, server, output } => {
            let client = Client::new(&server.server, server.api_key.as_deref())?;
            let job = client
                .get(&format!("/api/v2/jobs/{}", segment(&id)?))
                .await?;
            let entry = client
                .get(&format!("/api/history/{}", segment(&id)?))
                .await?;
            print_job(&job, &entry, output.json);
            Ok(())
        }
        JobsCommand::Wait {
            id,
            out_dir,
            server,
            output,
        } => {
            let client = Client::new(&server.server, server.api_key.as_deref())?;
            run::report(&client, segment(&id)?, out_dir.as_deref(), output.json).await
        }
        JobsCommand::Cancel { id, server, output } => {
            let client = Client::new(&server.server, server.api_key.as_deref())?;
            let path = format!("/api/v2/jobs/{}/cancel", segment(&id)?);
            let job = client.post(&path, &json!({})).await?;
            print_line(&job, output.json, |job| {
                format!("job {} {}", job["id"].as_str().unwrap_or("?"), state(job))
            });
            Ok(())
        }
    }
}

/// A job id as given, refused when it could not be one path segment.
fn segment(id: &str) -> Result<&str, ClientError> {
    let plausible = !id.is_empty()
        && id
            .chars()
            .all(|character| character.is_ascii_alphanumeric() || character == '-');
    if plausible {
        Ok(id)
    } else {
        Err(ClientError::invalid(format!("{id:?} is not a job id")))
    }
}

fn state(job: &Value) -> &str {
    job["status"].as_str().unwrap_or("unknown")
}

#[allow(clippy::print_stdout, reason = "printing is the command")]
fn print_line(value: &Value, json: bool, text: impl Fn(&Value) -> String) {
    if json {
        println!("{value}");
    } else {
        println!("{}", text(value));
    }
}

#[allow(clippy::print_stdout, reason = "printing the list is the command")]
fn print_list(page: &Value, json: bool) {
    if json {
        println!("{page}");
        return;
    }
    let entries = page["entries"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<36}  {:<10}  {:<20}  {:<27}  OUTPUTS",
        "ID", "STATUS", "TEMPLATE", "CREATED"
    );
    for entry in &entries {
        println!(
            "{:<36}  {:<10}  {:<20}  {:<27}  {}",
            entry["id"].as_str().unwrap_or("?"),
            state(entry),
            entry["template"].as_str().unwrap_or("(graph)"),
            entry["created_at"].as_str().unwrap_or(""),
            entry["outputs"].as_array().map_or(0, Vec::len),
        );
    }
    println!(
        "{} of {} jobs",
        entries.len(),
        page["total"].as_u64().unwrap_or(0)
    );
}

#[allow(clippy::print_stdout, reason = "printing the job is the command")]
fn print_job(job: &Value, entry: &Value, json: bool) {
    if json {
        let mut shown = job.clone();
        shown["template"] = entry["template"].clone();
        shown["parameters"] = entry["parameters"].clone();
        println!("{shown}");
        return;
    }
    let text = |value: &Value| value.as_str().map_or_else(|| "-".to_owned(), str::to_owned);
    println!("job        {}", text(&job["id"]));
    // The contract's status, and Darkroom's finer state when it says more.
    let finer = text(&job["state"]);
    if finer == state(job) {
        println!("status     {finer}");
    } else {
        println!("status     {} ({finer})", state(job));
    }
    println!("template   {}", text(&entry["template"]));
    println!("created    {}", text(&job["created_at"]));
    println!("started    {}", text(&job["started_at"]));
    println!("completed  {}", text(&job["completed_at"]));
    if let Some(parameters) = entry["parameters"].as_object() {
        println!("parameters");
        for (name, value) in parameters {
            println!("  {name} = {value}");
        }
    }
    for output in job["outputs"].as_array().into_iter().flatten() {
        println!(
            "output     {} ({}, {} bytes) {}",
            text(&output["name"]),
            text(&output["content_type"]),
            output["size_bytes"],
            text(&output["url"])
        );
    }
    if job["error"].is_object() {
        println!("error      {}", run::failure(job));
    }
}
