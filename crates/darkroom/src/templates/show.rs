//! The text `darkroom template show FILE` prints: what discovery, titles and the manifest
//! made of a workflow, so a person can check every parameter and where it lands before
//! anyone relies on it.

use std::fmt::Write;

use serde_json::Value;

use super::Template;
use super::graph;
use super::params::{Origin, Parameter, ParameterSpec};

/// How many choices a line lists.
const CHOICES_SHOWN: usize = 8;

/// The report for `template` with its parameters described by `specs`.
pub fn render(template: &Template, specs: &[ParameterSpec]) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "{}: {}", template.name, template.title);
    if let Some(description) = &template.description {
        let _ = writeln!(text, "  {description}");
    }
    let format = match template.format {
        super::WorkflowFormat::Api => "API",
        super::WorkflowFormat::Ui => "UI (converted)",
    };
    let sampler = template
        .sampler
        .as_deref()
        .map_or("none".to_owned(), |id| node(template, id));
    let _ = writeln!(
        text,
        "  format: {format}, {} nodes, sampler: {sampler}",
        template.graph.len()
    );
    if !template.with_object_info {
        let _ = writeln!(
            text,
            "  no /object_info: types come from the graph's values; bounds and choices unknown"
        );
    }

    let _ = writeln!(text, "\nparameters:");
    if specs.is_empty() {
        let _ = writeln!(text, "  (none)");
    }
    for spec in specs {
        let origin = template
            .parameters
            .iter()
            .find(|parameter| parameter.name == spec.name);
        parameter(&mut text, template, spec, origin);
    }
    if !template.hidden.is_empty() {
        let _ = writeln!(text, "\nhidden (the graph keeps its value):");
        for hidden in &template.hidden {
            let _ = writeln!(
                text,
                "  {:<16} {}",
                hidden.name,
                bindings(template, &hidden.bindings)
            );
        }
    }
    if !template.notes.is_empty() {
        let _ = writeln!(text, "\nnotes:");
        for note in &template.notes {
            let _ = writeln!(text, "  - {note}");
        }
    }
    text
}

fn parameter(
    text: &mut String,
    template: &Template,
    spec: &ParameterSpec,
    origin: Option<&Parameter>,
) {
    let mut line = format!("  {:<16} {:<8}", spec.name, spec.kind.as_str());
    match &spec.default {
        Some(default) => line.push_str(&format!(" default {}", short(default))),
        None => line.push_str(" required"),
    }
    match (&spec.min, &spec.max) {
        (Some(min), Some(max)) => line.push_str(&format!("  from {min} to {max}")),
        (Some(min), None) => line.push_str(&format!("  at least {min}")),
        (None, Some(max)) => line.push_str(&format!("  at most {max}")),
        (None, None) => {}
    }
    if let Some(choices) = &spec.choices {
        let shown: Vec<String> = choices.iter().take(CHOICES_SHOWN).map(short).collect();
        let more = choices.len().saturating_sub(CHOICES_SHOWN);
        let more = if more > 0 {
            format!(" +{more} more")
        } else {
            String::new()
        };
        line.push_str(&format!("  one of {}{more}", shown.join(", ")));
    }
    let _ = writeln!(text, "{}", line.trim_end());
    let _ = writeln!(
        text,
        "      bound to  {}",
        bindings(template, &spec.bindings)
    );
    let how = match origin.map(|parameter| &parameter.origin) {
        Some(Origin::Discovered(rule)) => format!("discovery: {rule}"),
        Some(Origin::Title) => "a node titled with its name".to_owned(),
        Some(Origin::Manifest) | None => "the manifest".to_owned(),
    };
    let _ = writeln!(text, "      from      {how}");
    if let Some(description) = &spec.description {
        let _ = writeln!(text, "      about     {description}");
    }
}

fn bindings(template: &Template, bindings: &[super::params::Binding]) -> String {
    let listed: Vec<String> = bindings
        .iter()
        .map(|binding| format!("{} of {}", binding.input, node(template, &binding.node_id)))
        .collect();
    listed.join("; ")
}

/// `node 6 (CLIPTextEncode "Positive prompt")`.
fn node(template: &Template, node_id: &str) -> String {
    let class = graph::class_type(&template.graph, node_id).unwrap_or("?");
    match graph::title(&template.graph, node_id) {
        Some(title) => format!("node {node_id} ({class} {title:?})"),
        None => format!("node {node_id} ({class})"),
    }
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() <= 48 {
        return text;
    }
    format!("{}...", text.chars().take(48).collect::<String>())
}
