//! Turning a workflow and its manifest into a [`Template`]: the graph in API format, then
//! parameters from discovery, overridden by node titles, overridden by the manifest; and
//! every binding checked. A template that loads has no binding that can miss.

use comfy::server_info::ObjectInfo;
use serde_json::Value;

use super::error::TemplateError;
use super::graph::{self, Graph};
use super::manifest::{Manifest, ParameterManifest};
use super::params::{Origin, Parameter};
use super::{Template, bind, discover, inject};

/// Compiles the template `name`.
///
/// # Errors
///
/// [`TemplateError`] naming the node, binding or parameter at fault.
pub fn compile(
    name: &str,
    workflow: &Value,
    manifest: &Manifest,
    info: Option<&ObjectInfo>,
) -> Result<Template, TemplateError> {
    let (format, graph) = super::format::to_api(name, workflow, info)?;
    let mut notes = Vec::new();

    let mut parameters = Vec::new();
    let mut sampler = None;
    if manifest.discover {
        let discovery = discover::discover(&graph);
        parameters = discovery.parameters;
        sampler = discovery.sampler;
        notes = discovery.notes;
        parameters.retain_mut(|parameter| keep_fitting(&graph, parameter, info, &mut notes));
    }
    for titled in titled(name, &graph, info)? {
        replace(&mut parameters, titled);
    }
    let mut hidden = Vec::new();
    for (parameter, overrides) in &manifest.parameters {
        let found = apply(name, &graph, &mut parameters, parameter, overrides, info)?;
        if overrides.hidden {
            parameters.retain(|kept| kept.name != found.name);
            hidden.push(found);
        }
    }
    for parameter in &parameters {
        check_bindings(name, &graph, parameter, info)?;
        check_default(name, &graph, parameter)?;
    }

    Ok(Template {
        name: name.to_owned(),
        title: manifest.title.clone().unwrap_or_else(|| name.to_owned()),
        description: manifest.description.clone(),
        format,
        graph,
        parameters,
        hidden,
        sampler,
        notes,
        with_object_info: info.is_some(),
    })
}

/// Discovery guesses from shapes; with the backend's specs at hand, a binding the input
/// cannot take (a combo beside an encoder's text) is dropped with a note, not fatal.
fn keep_fitting(
    graph: &Graph,
    parameter: &mut Parameter,
    info: Option<&ObjectInfo>,
    notes: &mut Vec<String>,
) -> bool {
    let kind = parameter.kind;
    parameter
        .bindings
        .retain(|binding| match bind::check(graph, binding, kind, info) {
            Ok(()) => true,
            Err(problem) => {
                notes.push(format!(
                    "{} not bound to {binding}: it {problem}",
                    parameter.name
                ));
                false
            }
        });
    !parameter.bindings.is_empty()
}

/// Parameters from nodes titled with a parameter name, in node order.
fn titled(
    name: &str,
    graph: &Graph,
    info: Option<&ObjectInfo>,
) -> Result<Vec<Parameter>, TemplateError> {
    let mut found: Vec<Parameter> = Vec::new();
    for node_id in graph::ordered_ids(graph) {
        let Some(title) = graph::title(graph, node_id).filter(|title| bind::parameter_title(title))
        else {
            continue;
        };
        let problem = |problem: String| TemplateError::Parameter {
            name: name.to_owned(),
            parameter: title.to_owned(),
            problem: format!("(the title of node {node_id}) {problem}"),
        };
        let bindings = bind::titled_inputs(graph, node_id, title).map_err(problem)?;
        if let Some(earlier) = found.iter_mut().find(|earlier| earlier.name == title) {
            // Two nodes with one title share the parameter, like an SDXL base and refiner.
            earlier.bindings.extend(bindings);
            continue;
        }
        let kind = bind::infer(graph, &bindings[0], info)
            .ok_or_else(|| problem("holds no value a parameter can take".to_owned()))?;
        found.push(Parameter {
            name: title.to_owned(),
            kind,
            bindings,
            origin: Origin::Title,
            description: None,
            default: None,
            min: None,
            max: None,
            choices: None,
        });
    }
    Ok(found)
}

/// Puts `parameter` in place of any of the same name or sharing an input with it.
fn replace(parameters: &mut Vec<Parameter>, parameter: Parameter) {
    parameters.retain(|other| {
        other.name != parameter.name
            && !other
                .bindings
                .iter()
                .any(|bound| parameter.bindings.contains(bound))
    });
    parameters.push(parameter);
}

/// Applies one manifest entry and returns the parameter as it now stands.
fn apply(
    name: &str,
    graph: &Graph,
    parameters: &mut Vec<Parameter>,
    parameter: &str,
    overrides: &ParameterManifest,
    info: Option<&ObjectInfo>,
) -> Result<Parameter, TemplateError> {
    if let Some(bind) = &overrides.bind {
        let mut bindings = Vec::new();
        for target in bind.targets() {
            let refused = |problem| TemplateError::Binding {
                name: name.to_owned(),
                parameter: parameter.to_owned(),
                binding: target.to_owned(),
                problem,
            };
            let binding = bind::target(graph, target).map_err(refused)?;
            bind::lands(graph, &binding, info).map_err(refused)?;
            bindings.push(binding);
        }
        let kind = overrides
            .kind
            .or_else(|| bind::infer(graph, bindings.first()?, info));
        let kind = kind.ok_or_else(|| TemplateError::Parameter {
            name: name.to_owned(),
            parameter: parameter.to_owned(),
            problem: "needs a `type`: its input holds no value to tell it from".to_owned(),
        })?;
        let declared = Parameter {
            name: parameter.to_owned(),
            kind,
            bindings,
            origin: Origin::Manifest,
            description: None,
            default: None,
            min: None,
            max: None,
            choices: None,
        };
        replace(parameters, declared);
    }
    let Some(found) = parameters.iter_mut().find(|found| found.name == parameter) else {
        return Err(TemplateError::Parameter {
            name: name.to_owned(),
            parameter: parameter.to_owned(),
            problem: "is in the manifest without `bind`, and nothing in the graph binds it"
                .to_owned(),
        });
    };
    refine(found, overrides);
    Ok(found.clone())
}

fn refine(parameter: &mut Parameter, overrides: &ParameterManifest) {
    if let Some(kind) = overrides.kind {
        parameter.kind = kind;
    }
    let description = overrides.description.clone();
    parameter.description = description.or(parameter.description.take());
    parameter.default = overrides.default.clone().or(parameter.default.take());
    parameter.min = overrides.min.clone().or(parameter.min.take());
    parameter.max = overrides.max.clone().or(parameter.max.take());
    parameter.choices = overrides.choices.clone().or(parameter.choices.take());
}

fn check_bindings(
    name: &str,
    graph: &Graph,
    parameter: &Parameter,
    info: Option<&ObjectInfo>,
) -> Result<(), TemplateError> {
    for binding in &parameter.bindings {
        bind::check(graph, binding, parameter.kind, info).map_err(|problem| {
            TemplateError::Binding {
                name: name.to_owned(),
                parameter: parameter.name.clone(),
                binding: binding.to_string(),
                problem,
            }
        })?;
    }
    Ok(())
}

/// A manifest default must suit its own parameter. Only the manifest's bounds and choices
/// apply here: a default the backend lacks (a checkpoint not installed) is the backend's
/// matter, reported when a job would use it.
fn check_default(name: &str, graph: &Graph, parameter: &Parameter) -> Result<(), TemplateError> {
    if parameter.default.is_none() {
        return Ok(());
    }
    let spec = parameter.resolve(graph, None);
    let Some(default) = &spec.default else {
        return Ok(());
    };
    inject::check(&spec, default)
        .map(drop)
        .map_err(|error| TemplateError::Parameter {
            name: name.to_owned(),
            parameter: parameter.name.clone(),
            problem: format!("has a default it cannot take: {error}"),
        })
}
