//! `darkroom templates list | show`: what a Darkroom server offers, read from its API.
//! (`darkroom template show FILE` is another command: it reads a local file.)

use serde_json::Value;

use super::args::TemplatesCommand;
use super::{Client, ClientError, params};

/// # Errors
///
/// Every [`ClientError`]; an unknown template is `InvalidInput`.
pub async fn templates(command: TemplatesCommand) -> Result<(), ClientError> {
    match command {
        TemplatesCommand::List { server, output } => {
            let client = Client::new(&server.server, server.api_key.as_deref())?;
            let answer = client.get("/api/templates").await?;
            print_list(&answer, output.json);
        }
        TemplatesCommand::Show {
            name,
            server,
            output,
        } => {
            let client = Client::new(&server.server, server.api_key.as_deref())?;
            let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
            let template = client.get(&format!("/api/templates/{encoded}")).await?;
            print_template(&name, &template, output.json);
        }
    }
    Ok(())
}

/// The list, whatever envelope the server wraps it in.
fn entries(answer: &Value) -> Vec<Value> {
    let list = answer
        .as_array()
        .or(answer["templates"].as_array())
        .cloned()
        .unwrap_or_default();
    list.into_iter()
        .map(|item| match item {
            Value::String(name) => serde_json::json!({"name": name}),
            other => other,
        })
        .collect()
}

#[allow(clippy::print_stdout, reason = "printing the list is the command")]
fn print_list(answer: &Value, json: bool) {
    if json {
        println!("{answer}");
        return;
    }
    for template in entries(answer) {
        let name = template["name"].as_str().unwrap_or("?");
        match (template["error"].as_str(), template["title"].as_str()) {
            (Some(error), _) => println!("{name:<24}  (does not load: {error})"),
            (None, Some(title)) => println!("{name:<24}  {title}"),
            (None, None) => println!("{name}"),
        }
        if let Some(why) = template["unrunnable"].as_str() {
            println!("{:<24}  ({why})", "");
        }
    }
}

#[allow(clippy::print_stdout, reason = "printing the template is the command")]
fn print_template(name: &str, template: &Value, json: bool) {
    if json {
        println!("{template}");
        return;
    }
    println!("{name}: {}", template["title"].as_str().unwrap_or(name));
    if let Some(description) = template["description"].as_str() {
        println!("{description}");
    }
    if let Some(why) = template["unrunnable"].as_str() {
        println!("Cannot run: {why}.");
    }
    let schema = params::schema_of(template);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    println!();
    for (parameter, property) in schema["properties"].as_object().into_iter().flatten() {
        let kind = property["x-darkroom-type"]
            .as_str()
            .or(property["type"].as_str())
            .unwrap_or("?");
        let mut facts = vec![kind.to_owned()];
        if required.contains(&parameter.as_str()) {
            facts.push("required".to_owned());
        }
        if let Some(default) = property.get("default") {
            facts.push(format!("default {default}"));
        }
        let bounds = property["anyOf"]
            .as_array()
            .and_then(|branches| branches.iter().find(|branch| branch["type"] == "integer"))
            .unwrap_or(property);
        if let (Some(min), Some(max)) = (bounds.get("minimum"), bounds.get("maximum")) {
            facts.push(format!("{min} to {max}"));
        }
        if let Some(choices) = property["enum"].as_array() {
            let shown: Vec<String> = choices.iter().take(8).map(Value::to_string).collect();
            let more = if choices.len() > 8 { ", ..." } else { "" };
            facts.push(format!("one of {}{more}", shown.join(", ")));
        }
        println!("  {parameter:<16} {}", facts.join("; "));
        if let Some(description) = property["description"].as_str() {
            println!("  {:<16} {description}", "");
        }
    }
}
