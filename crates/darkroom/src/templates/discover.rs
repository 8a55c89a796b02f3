//! Finding the common parameters of a graph by tracing its links, never by guessing from
//! node ids: the sampler is the node that takes a `latent_image` link and conditioning;
//! the prompts are the text encoders feeding its `positive` and `negative` inputs; seed,
//! steps, cfg, sampler and scheduler are its settings (or those of the nodes feeding a
//! custom sampler); the size is the latent source's; the checkpoint is the loader at the
//! end of its `model` chain; input images are the image loaders.
//!
//! When several samplers chain (a refiner, a second pass), the first of the chain is the
//! one parameters follow; the others keep their values. Each finding says which rule made
//! it, so `darkroom template show` lets a person check it.

use super::graph::{self, Graph, Source};
use super::params::{Binding, Origin, Parameter, ParameterType};

/// Node classes whose `image` input is a file the client provides.
pub const IMAGE_LOADERS: &[&str] = &["LoadImage", "LoadImageMask"];
/// Inputs of a custom sampler that lead to the nodes holding its settings.
const SETTING_PROVIDERS: &[&str] = &["noise", "guider", "sampler", "sigmas"];
/// Conditioning filters are followed only this far, so a cycle cannot hold discovery.
const MAX_CHAIN: usize = 64;
/// The input of a text source node (`PrimitiveStringMultiline`, a node pack's "Text")
/// that may feed an encoder's text. A loader's file name never does.
const TEXT_SOURCE_INPUTS: &[&str] = &["value", "text", "string", "prompt"];

/// What tracing found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovery {
    pub parameters: Vec<Parameter>,
    /// The sampler the parameters follow.
    pub sampler: Option<String>,
    /// Things a person checking the template should know.
    pub notes: Vec<String>,
}

/// Traces `graph` for the common parameters.
pub fn discover(graph: &Graph) -> Discovery {
    let mut discovery = Discovery::default();
    let samplers: Vec<&str> = graph::ordered_ids(graph)
        .into_iter()
        .filter(|id| is_sampler(graph, id))
        .collect();
    let first_pass: Vec<&str> = samplers
        .iter()
        .copied()
        .filter(|id| {
            graph::upstream(graph, id)
                .iter()
                .all(|up| !samplers.contains(&up.as_str()))
        })
        .collect();
    if let Some(&sampler) = first_pass.first() {
        if samplers.len() > 1 {
            discovery.notes.push(format!(
                "{} samplers ({}); parameters follow node {sampler}, the first of its chain",
                samplers.len(),
                samplers.join(", ")
            ));
        }
        discovery.sampler = Some(sampler.to_owned());
        from_sampler(graph, sampler, &mut discovery);
    } else {
        discovery
            .notes
            .push("no sampler found: only image loaders, node titles and the manifest bind".into());
    }
    image_loaders(graph, &mut discovery);
    discovery
}

/// A node taking a latent image and conditioning, directly or through a guider.
fn is_sampler(graph: &Graph, node_id: &str) -> bool {
    let linked = |input: &str| graph::link(graph, node_id, input).is_some();
    linked("latent_image") && ((linked("positive") && linked("negative")) || linked("guider"))
}

fn from_sampler(graph: &Graph, sampler: &str, discovery: &mut Discovery) {
    let mut providers = vec![sampler.to_owned()];
    providers.extend(
        SETTING_PROVIDERS
            .iter()
            .filter_map(|input| graph::trace(graph, sampler, input))
            .map(|source| source.node_id),
    );

    for side in ["positive", "negative"] {
        let name = if side == "positive" {
            "prompt"
        } else {
            "negative_prompt"
        };
        let Some(encoder) = conditioning_source(graph, sampler, side)
            .and_then(|source| encoder(graph, source, side))
        else {
            discovery
                .notes
                .push(format!("no text encoder feeds the sampler's {side} input"));
            continue;
        };
        let rule = format!("text encoder {encoder} feeding sampler {sampler}'s {side} input");
        add(
            discovery,
            name,
            ParameterType::Text,
            text_bindings(graph, &encoder),
            rule,
        );
    }

    let settings = [
        ("seed", &["seed", "noise_seed"][..], ParameterType::Seed),
        ("steps", &["steps"], ParameterType::Integer),
        ("cfg", &["cfg"], ParameterType::Number),
        ("sampler_name", &["sampler_name"], ParameterType::Choice),
        ("scheduler", &["scheduler"], ParameterType::Choice),
        ("denoise", &["denoise"], ParameterType::Number),
    ];
    for (name, inputs, kind) in settings {
        if let Some(binding) = setting(graph, &providers, inputs) {
            let rule = format!("setting of sampler {sampler}");
            add(discovery, name, kind, vec![binding], rule);
        }
    }

    latent_size(graph, sampler, discovery);
    if let Some(binding) = checkpoint(graph, &providers) {
        let rule = format!("loader at the end of sampler {sampler}'s model chain");
        add(
            discovery,
            "checkpoint",
            ParameterType::Choice,
            vec![binding],
            rule,
        );
    }
}

/// What feeds the sampler's `side`, directly or through its guider (`CFGGuider` has
/// `positive` and `negative`, `BasicGuider` one `conditioning`).
fn conditioning_source(graph: &Graph, sampler: &str, side: &str) -> Option<Source> {
    if let Some(source) = graph::trace(graph, sampler, side) {
        return Some(source);
    }
    let guider = graph::trace(graph, sampler, "guider")?;
    graph::trace(graph, &guider.node_id, side).or_else(|| {
        (side == "positive")
            .then(|| graph::trace(graph, &guider.node_id, "conditioning"))
            .flatten()
    })
}

/// Walks back through conditioning filters (area, control net, guidance) to the text
/// encoder: a node with a `clip` link and text of its own. `ConditioningZeroOut` and
/// combinations end the walk: their text is nobody's prompt.
fn encoder(graph: &Graph, mut source: Source, side: &str) -> Option<String> {
    for _ in 0..MAX_CHAIN {
        let node = source.node_id.as_str();
        if graph::link(graph, node, "clip").is_some() && !text_bindings(graph, node).is_empty() {
            return Some(source.node_id);
        }
        // Filters with both sides (ControlNetApplyAdvanced) put positive out first.
        let own_side = match source.output {
            0 => "positive",
            1 => "negative",
            _ => side,
        };
        let next = graph::trace(graph, node, own_side).or_else(|| {
            let zero = graph::class_type(graph, node) == Some("ConditioningZeroOut");
            (!zero)
                .then(|| graph::trace(graph, node, "conditioning"))
                .flatten()
        })?;
        source = next;
    }
    None
}

/// The encoder's text inputs: its own strings, or the one string of a text source feeding
/// one.
fn text_bindings(graph: &Graph, encoder: &str) -> Vec<Binding> {
    let Some(inputs) = graph::inputs(graph, encoder) else {
        return Vec::new();
    };
    let mut bindings = Vec::new();
    for (input, value) in inputs {
        if value.is_string() {
            bindings.push(binding(encoder, input));
        } else if let Some(source) = graph::trace(graph, encoder, input)
            && let [only] = graph::literal_names(graph, &source.node_id).as_slice()
            && TEXT_SOURCE_INPUTS.contains(only)
            && graph::literal(graph, &source.node_id, only).is_some_and(|value| value.is_string())
        {
            bindings.push(binding(&source.node_id, only));
        }
    }
    bindings
}

/// The first of `names` set on a provider, or on a single-value node linked into it
/// (a seed from a primitive node).
fn setting(graph: &Graph, providers: &[String], names: &[&str]) -> Option<Binding> {
    for node in providers {
        for name in names {
            if graph::literal(graph, node, name).is_some() {
                return Some(binding(node, name));
            }
            if let Some(source) = graph::trace(graph, node, name)
                && let [only] = graph::literal_names(graph, &source.node_id).as_slice()
            {
                return Some(binding(&source.node_id, only));
            }
        }
    }
    None
}

/// Width, height and batch size of the empty latent the sampler starts from.
fn latent_size(graph: &Graph, sampler: &str, discovery: &mut Discovery) {
    let Some(source) = graph::trace(graph, sampler, "latent_image") else {
        return;
    };
    let node = source.node_id;
    let has = |input: &str| graph::literal(graph, &node, input).is_some_and(|value| value.is_u64());
    if !(has("width") && has("height")) {
        return;
    }
    for name in ["width", "height", "batch_size"]
        .into_iter()
        .filter(|name| has(name))
    {
        let rule = format!("latent source {node} of sampler {sampler}");
        add(
            discovery,
            name,
            ParameterType::Integer,
            vec![binding(&node, name)],
            rule,
        );
    }
}

/// Follows `model` links from the providers back past patches (LoRA, sampling tweaks) to
/// a loader with a `ckpt_name`.
fn checkpoint(graph: &Graph, providers: &[String]) -> Option<Binding> {
    let mut current = providers
        .iter()
        .find_map(|node| graph::trace(graph, node, "model"))?;
    for _ in 0..MAX_CHAIN {
        if graph::literal(graph, &current.node_id, "ckpt_name").is_some() {
            return Some(binding(&current.node_id, "ckpt_name"));
        }
        current = graph::trace(graph, &current.node_id, "model")?;
    }
    None
}

/// `image`, then `image_2`, `image_3`... for the loaders in node order.
fn image_loaders(graph: &Graph, discovery: &mut Discovery) {
    let loaders = graph::ordered_ids(graph).into_iter().filter(|id| {
        graph::class_type(graph, id).is_some_and(|class| IMAGE_LOADERS.contains(&class))
            && graph::literal(graph, id, "image").is_some()
    });
    for (index, loader) in loaders.enumerate() {
        let name = match index {
            0 => "image".to_owned(),
            _ => format!("image_{}", index + 1),
        };
        let rule = format!("image loader {loader}");
        add(
            discovery,
            &name,
            ParameterType::Image,
            vec![binding(loader, "image")],
            rule,
        );
    }
}

fn binding(node_id: &str, input: &str) -> Binding {
    Binding {
        node_id: node_id.to_owned(),
        input: input.to_owned(),
    }
}

/// Records a finding, unless an earlier one already binds one of its inputs (a negative
/// prompt traced to the positive encoder): one input never takes two parameters.
fn add(
    discovery: &mut Discovery,
    name: &str,
    kind: ParameterType,
    bindings: Vec<Binding>,
    rule: String,
) {
    if bindings.is_empty() {
        return;
    }
    let taken = discovery.parameters.iter().find(|earlier| {
        earlier
            .bindings
            .iter()
            .any(|bound| bindings.contains(bound))
    });
    if let Some(earlier) = taken {
        discovery.notes.push(format!(
            "{name} not bound: its input already takes {}",
            earlier.name
        ));
        return;
    }
    discovery.parameters.push(Parameter {
        name: name.to_owned(),
        kind,
        bindings,
        origin: Origin::Discovered(rule),
        description: Some(describe(name).to_owned()),
        default: None,
        min: None,
        max: None,
        choices: None,
    });
}

fn describe(name: &str) -> &'static str {
    match name {
        "prompt" => "What the picture shows.",
        "negative_prompt" => "What the picture should not show.",
        "seed" => {
            "Noise seed: the same seed and settings give the same picture; \"random\" draws one."
        }
        "steps" => "Sampling steps: more is slower and usually finer.",
        "cfg" => "How closely the picture follows the prompt (classifier-free guidance).",
        "sampler_name" => "Sampling algorithm.",
        "scheduler" => "Noise schedule of the sampler.",
        "denoise" => "How much is redrawn: 1 draws from scratch, less keeps more of the input.",
        "width" => "Width in pixels.",
        "height" => "Height in pixels.",
        "batch_size" => "Pictures made in one run.",
        "checkpoint" => "Model checkpoint file on the backend.",
        _ => "An uploaded image: the id of an asset.",
    }
}
