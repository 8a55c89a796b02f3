//! The manifest beside a workflow (`NAME.toml` next to `NAME.json`): the template's title
//! and description, and parameter overrides. Every key is optional; an unknown key is an
//! error, so a misspelt one cannot be silently ignored.
//!
//! ```toml
//! title = "Text to image"
//! description = "A picture from a prompt."
//! discover = true              # find common parameters by tracing the graph
//!
//! [parameters.prompt]
//! bind = "Positive prompt.text" # NODE.INPUT, NODE a node id or title; or a list of them
//! type = "text"                 # text, integer, number, boolean, choice, image, seed
//! default = "a lighthouse at dusk"
//! description = "What the picture shows."
//!
//! [parameters.steps]
//! min = 1
//! max = 50
//!
//! [parameters.scheduler]
//! hidden = true                 # not offered; the graph keeps its value
//! ```
//!
//! The same shape travels as JSON in `POST /api/templates`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use super::params::ParameterType;

/// A template's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether to find parameters by tracing the graph; off, only titles and the manifest
    /// bind parameters.
    #[serde(default = "discover_by_default")]
    pub discover: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, ParameterManifest>,
}

/// Overrides for one parameter. Without `bind`, it refines a parameter found by discovery
/// or a node title; with `bind`, it declares the parameter (or moves a found one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterManifest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<Bind>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ParameterType>,
    /// For a choice, a list means "the first of these the backend offers".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
}

/// One `NODE.INPUT` target or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bind {
    One(String),
    Many(Vec<String>),
}

impl Bind {
    pub fn targets(&self) -> Vec<&str> {
        match self {
            Self::One(target) => vec![target.as_str()],
            Self::Many(targets) => targets.iter().map(String::as_str).collect(),
        }
    }
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            title: None,
            description: None,
            discover: true,
            parameters: BTreeMap::new(),
        }
    }
}

fn discover_by_default() -> bool {
    true
}

impl Manifest {
    /// Reads a manifest from TOML.
    ///
    /// # Errors
    ///
    /// The parser's message, naming the line and the key at fault.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|error| error.to_string().trim_end().to_owned())
    }

    /// The manifest as TOML, for writing a template created through the API.
    ///
    /// # Errors
    ///
    /// A value TOML cannot hold (such as `null` in a default).
    pub fn to_toml(&self) -> Result<String, String> {
        toml::to_string_pretty(self).map_err(|error| error.to_string())
    }
}

/// Splits `NODE.INPUT` at its last dot: titles may hold dots, input names do not.
pub fn split_target(target: &str) -> Option<(&str, &str)> {
    let (node, input) = target.rsplit_once('.')?;
    (!node.is_empty() && !input.is_empty()).then_some((node, input))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_manifest_reads_and_round_trips() {
        let manifest = Manifest::from_toml(
            r#"
            title = "T"
            [parameters.prompt]
            bind = ["CLIP Text Encode (Prompt).text", "7.text"]
            type = "text"
            [parameters.checkpoint]
            default = ["a.safetensors", "b.safetensors"]
            [parameters.steps]
            max = 50
            hidden = true
            "#,
        )
        .unwrap();
        let prompt = &manifest.parameters["prompt"];
        assert_eq!(prompt.kind, Some(ParameterType::Text));
        assert_eq!(prompt.bind.as_ref().unwrap().targets().len(), 2);
        assert!(manifest.parameters["steps"].hidden);
        assert!(manifest.discover);
        let again = Manifest::from_toml(&manifest.to_toml().unwrap()).unwrap();
        assert_eq!(again, manifest);
    }

    #[test]
    fn a_misspelt_key_is_an_error_naming_it() {
        let error = Manifest::from_toml("[parameters.seed]\nbnd = \"3.seed\"\n").unwrap_err();
        assert!(error.contains("bnd"), "{error}");
    }

    #[test]
    fn targets_split_at_the_last_dot() {
        assert_eq!(
            split_target("v1.5 loader.ckpt_name"),
            Some(("v1.5 loader", "ckpt_name"))
        );
        assert_eq!(split_target("6.text"), Some(("6", "text")));
        assert_eq!(split_target("text"), None);
        assert_eq!(split_target("6."), None);
    }
}
