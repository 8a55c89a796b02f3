//! Templates: ComfyUI workflows with named, typed parameters. This layer loads workflows
//! (API or UI format) and their manifests, finds and declares parameters, publishes their
//! schema, injects values into the parsed graph and checks the result against a backend's
//! `/object_info`.
//!
//! It does no I/O beyond its own folder and speaks to no backend: callers hand it the
//! `/object_info` they have, or none. Jobs, HTTP and the store are other layers' business.

mod bind;
mod check;
mod compile;
pub mod convert;
mod discover;
mod error;
mod folder;
mod format;
mod graph;
mod inject;
mod library;
mod manifest;
mod params;
mod schema;
mod show;
mod spec;

use comfy::server_info::ObjectInfo;
use serde_json::{Map, Value};

pub use check::Violation;
pub use error::{ParameterError, TemplateError};
pub use folder::{check_name, compile_file};
pub use format::WorkflowFormat;
pub use graph::Graph;
pub use inject::Instance;
pub use library::{Library, Loaded};
pub use manifest::{Bind, Manifest, ParameterManifest};
pub use params::{Binding, Origin, Parameter, ParameterSpec, ParameterType};

/// A loaded template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: String,
    pub title: String,
    pub description: Option<String>,
    /// The format the workflow was written in.
    pub format: WorkflowFormat,
    /// The workflow in API format, before any value is injected.
    pub graph: Graph,
    /// The parameters a client may give, in a stable order.
    pub parameters: Vec<Parameter>,
    /// Parameters the manifest hides: found, but not offered.
    pub hidden: Vec<Parameter>,
    /// The node id of the sampler discovery followed.
    pub sampler: Option<String>,
    /// What a person checking the template should know.
    pub notes: Vec<String>,
    /// Whether a backend's `/object_info` was at hand when it was compiled.
    pub with_object_info: bool,
}

/// What the backend would refuse in a filled-in graph, sorted by who can fix it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unfit {
    /// Problems where a parameter lands: the client's to fix.
    pub parameters: Vec<ParameterError>,
    /// Problems elsewhere in the graph: the template does not suit the backend.
    pub template: Vec<String>,
}

impl Template {
    /// Compiles a workflow and its manifest into a template.
    ///
    /// # Errors
    ///
    /// [`TemplateError`] naming the node, binding or parameter at fault.
    pub fn compile(
        name: &str,
        workflow: &Value,
        manifest: &Manifest,
        info: Option<&ObjectInfo>,
    ) -> Result<Self, TemplateError> {
        compile::compile(name, workflow, manifest, info)
    }

    /// Every parameter described with what `info` says about its inputs.
    pub fn specs(&self, info: Option<&ObjectInfo>) -> Vec<ParameterSpec> {
        self.parameters
            .iter()
            .map(|parameter| parameter.resolve(&self.graph, info))
            .collect()
    }

    /// The JSON Schema of the `params` object.
    pub fn json_schema(&self, specs: &[ParameterSpec]) -> Value {
        schema::json_schema(self, specs)
    }

    /// What `darkroom template show` prints.
    pub fn report(&self, specs: &[ParameterSpec]) -> String {
        show::render(self, specs)
    }

    /// The graph with `given` injected, and the values used.
    ///
    /// # Errors
    ///
    /// Every [`ParameterError`]: unknown names, missing values, wrong types, values out
    /// of bounds or not among the choices.
    pub fn instantiate(
        &self,
        specs: &[ParameterSpec],
        given: &Map<String, Value>,
    ) -> Result<Instance, Vec<ParameterError>> {
        inject::instantiate(&self.graph, specs, given)
    }

    /// Checks a filled-in graph against `info`, naming the parameter wherever one lands.
    ///
    /// # Errors
    ///
    /// [`Unfit`] with everything the backend would refuse.
    pub fn check(&self, graph: &Graph, info: &ObjectInfo) -> Result<(), Unfit> {
        let mut unfit = Unfit::default();
        for violation in check::violations(graph, info) {
            let owner = violation.input.as_ref().and_then(|input| {
                self.parameters.iter().find(|parameter| {
                    parameter.bindings.iter().any(|binding| {
                        binding.node_id == violation.node_id && &binding.input == input
                    })
                })
            });
            match owner {
                Some(parameter) => unfit.parameters.push(ParameterError::Refused {
                    parameter: parameter.name.clone(),
                    problem: violation.problem,
                }),
                None => unfit.template.push(self.describe(&violation)),
            }
        }
        if unfit.parameters.is_empty() && unfit.template.is_empty() {
            Ok(())
        } else {
            Err(unfit)
        }
    }

    fn describe(&self, violation: &Violation) -> String {
        let class = graph::class_type(&self.graph, &violation.node_id).unwrap_or("?");
        match &violation.input {
            Some(input) => format!(
                "node {:?} ({class}) input {input:?} {}",
                violation.node_id, violation.problem
            ),
            None if violation.node_id.is_empty() => violation.problem.clone(),
            None => format!("node {:?} {}", violation.node_id, violation.problem),
        }
    }
}
