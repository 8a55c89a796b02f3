//! The editor's workflow JSON read into typed parts: nodes, their sockets, links, and the
//! subgraph definitions. Only what conversion needs is kept; positions, sizes, colours and
//! groups are ignored.
//!
//! The editor has written two link shapes over the years (arrays
//! `[id, origin, origin_slot, target, target_slot, type]` at the top level of older files,
//! objects inside subgraph definitions and newer files); both are read here so nothing
//! above this module sees the difference.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::error::ConvertError;

/// The id the editor gives the input side of a subgraph's border.
pub(crate) const SUBGRAPH_INPUT_NODE: &str = "-10";
/// The id the editor gives the output side of a subgraph's border.
pub(crate) const SUBGRAPH_OUTPUT_NODE: &str = "-20";

/// A whole editor export.
#[derive(Debug, Clone)]
pub(crate) struct Workflow {
    pub root: UiGraph,
    pub subgraphs: HashMap<String, SubgraphDef>,
    /// Legacy group node definitions (`extra.groupNodes`), kept raw: each instance reads
    /// its own widget values into a copy.
    pub group_nodes: Map<String, Value>,
}

/// One level of graph: the top level, or the inside of a subgraph.
#[derive(Debug, Clone, Default)]
pub(crate) struct UiGraph {
    pub nodes: Vec<UiNode>,
    pub links: HashMap<i64, UiLink>,
}

#[derive(Debug, Clone)]
pub(crate) struct UiNode {
    /// The editor's id as text (`"12"`); unique within its graph level.
    pub id: String,
    pub node_type: String,
    pub title: Option<String>,
    pub mode: NodeMode,
    pub inputs: Vec<UiInput>,
    pub outputs: Vec<UiOutput>,
    pub widgets_values: WidgetValues,
    /// `properties.proxyWidgets` of a subgraph instance: `(inner node id or "-1", widget)`.
    pub proxy_widgets: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub(crate) struct UiInput {
    pub name: String,
    pub input_type: String,
    pub link: Option<i64>,
    /// Set when the socket belongs to a widget (a widget converted to an input).
    pub widget: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct UiOutput {
    pub output_type: String,
}

#[derive(Debug, Clone)]
pub(crate) struct UiLink {
    pub origin: String,
    pub origin_slot: usize,
    pub target: String,
    pub target_slot: usize,
}

/// What the editor does with a node when the workflow is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum NodeMode {
    #[default]
    Active,
    /// Mode 2, "never": left out, and whatever it fed gets nothing.
    Muted,
    /// Mode 4: left out, each output replaced by the input of the same type.
    Bypassed,
}

/// A node's saved widget values: a list in widget order (every core node), or an object
/// keyed by widget name (some custom nodes).
#[derive(Debug, Clone, Default)]
pub(crate) enum WidgetValues {
    #[default]
    None,
    List(Vec<Value>),
    Named(Map<String, Value>),
}

/// A subgraph definition from `definitions.subgraphs`.
#[derive(Debug, Clone)]
pub(crate) struct SubgraphDef {
    pub graph: UiGraph,
    pub inputs: Vec<BorderSlot>,
}

/// One input of a subgraph's border: its name and the inner links it starts.
#[derive(Debug, Clone)]
pub(crate) struct BorderSlot {
    pub name: String,
    pub link_ids: Vec<i64>,
}

impl Workflow {
    /// Reads an editor export.
    pub(crate) fn parse(workflow: &Value) -> Result<Self, ConvertError> {
        let root = UiGraph::parse(workflow, "workflow")?;
        let mut subgraphs = HashMap::new();
        let definitions = workflow.pointer("/definitions/subgraphs");
        for (index, definition) in definitions
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let location = format!("definitions.subgraphs[{index}]");
            let id = text(definition.get("id"), &location, "id")?;
            subgraphs.insert(id, SubgraphDef::parse(definition, &location)?);
        }
        let group_nodes = workflow
            .pointer("/extra/groupNodes")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        Ok(Self {
            root,
            subgraphs,
            group_nodes,
        })
    }
}

impl UiGraph {
    pub(crate) fn parse(graph: &Value, location: &str) -> Result<Self, ConvertError> {
        let list = |key: &str| {
            graph
                .get(key)
                .and_then(Value::as_array)
                .ok_or_else(|| ConvertError::malformed(location, format!("no {key:?} list")))
        };
        let nodes = list("nodes")?
            .iter()
            .enumerate()
            .map(|(index, node)| UiNode::parse(node, &format!("{location}.nodes[{index}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let mut links = HashMap::new();
        for (index, link) in list("links")?.iter().enumerate() {
            // Editors leave `null` where a link was deleted; nothing refers to it.
            if link.is_null() {
                continue;
            }
            let (id, link) = UiLink::parse(link, &format!("{location}.links[{index}]"))?;
            links.insert(id, link);
        }
        Ok(Self { nodes, links })
    }

    pub(crate) fn node(&self, id: &str) -> Option<&UiNode> {
        self.nodes.iter().find(|node| node.id == id)
    }
}

impl UiNode {
    pub(crate) fn parse(node: &Value, location: &str) -> Result<Self, ConvertError> {
        let id = node_id(node.get("id"), location)?;
        let location = format!("{location} (node {id})");
        let node_type = text(node.get("type"), &location, "type")?;
        let mode = match node.get("mode").and_then(Value::as_i64) {
            Some(2) => NodeMode::Muted,
            Some(4) => NodeMode::Bypassed,
            _ => NodeMode::Active,
        };
        let inputs = sockets(node, "inputs")
            .enumerate()
            .map(|(slot, input)| UiInput::parse(input, &format!("{location}.inputs[{slot}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = sockets(node, "outputs")
            .map(|output| UiOutput {
                output_type: type_text(output.get("type")),
            })
            .collect();
        Ok(Self {
            id,
            node_type,
            title: node.get("title").and_then(Value::as_str).map(str::to_owned),
            mode,
            inputs,
            outputs,
            widgets_values: WidgetValues::parse(node.get("widgets_values")),
            proxy_widgets: proxy_widgets(node),
        })
    }
}

impl UiInput {
    fn parse(input: &Value, location: &str) -> Result<Self, ConvertError> {
        Ok(Self {
            name: text(input.get("name"), location, "name")?,
            input_type: type_text(input.get("type")),
            link: input.get("link").and_then(link_id),
            widget: input
                .pointer("/widget/name")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

impl UiLink {
    fn parse(link: &Value, location: &str) -> Result<(i64, Self), ConvertError> {
        let field = |key: &str, position: usize| match link {
            Value::Array(parts) => parts.get(position),
            _ => link.get(key),
        };
        let id = field("id", 0).and_then(link_id);
        let slot = |key: &str, position: usize| {
            field(key, position)
                .and_then(Value::as_u64)
                .and_then(|slot| usize::try_from(slot).ok())
        };
        let (Some(id), Some(origin_slot), Some(target_slot)) =
            (id, slot("origin_slot", 2), slot("target_slot", 4))
        else {
            return Err(ConvertError::malformed(
                location,
                "a link needs an id and two slots",
            ));
        };
        let link = Self {
            origin: node_id(field("origin_id", 1), location)?,
            origin_slot,
            target: node_id(field("target_id", 3), location)?,
            target_slot,
        };
        Ok((id, link))
    }
}

impl WidgetValues {
    fn parse(values: Option<&Value>) -> Self {
        match values {
            Some(Value::Array(list)) => Self::List(list.clone()),
            Some(Value::Object(named)) => Self::Named(named.clone()),
            _ => Self::None,
        }
    }
}

impl SubgraphDef {
    fn parse(definition: &Value, location: &str) -> Result<Self, ConvertError> {
        let inputs = definition
            .get("inputs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
            .map(|(index, slot)| BorderSlot::parse(slot, &format!("{location}.inputs[{index}]")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            graph: UiGraph::parse(definition, location)?,
            inputs,
        })
    }
}

impl BorderSlot {
    fn parse(slot: &Value, location: &str) -> Result<Self, ConvertError> {
        Ok(Self {
            name: text(slot.get("name"), location, "name")?,
            link_ids: slot
                .get("linkIds")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(link_id)
                .collect(),
        })
    }
}

fn sockets<'a>(node: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    node.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn proxy_widgets(node: &Value) -> Vec<(String, String)> {
    let entries = node
        .pointer("/properties/proxyWidgets")
        .and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let node = entry.get(0).and_then(|id| node_id(Some(id), "").ok())?;
            let widget = entry.get(1).and_then(Value::as_str)?;
            Some((node, widget.to_owned()))
        })
        .collect()
}

/// Node ids are numbers in every file seen, but the format allows strings.
fn node_id(value: Option<&Value>, location: &str) -> Result<String, ConvertError> {
    match value {
        Some(Value::Number(number)) => Ok(number.to_string()),
        Some(Value::String(text)) if !text.is_empty() => Ok(text.clone()),
        _ => Err(ConvertError::malformed(location, "missing node id")),
    }
}

fn link_id(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    }
}

fn text(value: Option<&Value>, location: &str, key: &str) -> Result<String, ConvertError> {
    value
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ConvertError::malformed(location, format!("no {key:?} text")))
}

/// A socket type: usually a string; a list of choices for combo sockets.
fn type_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(_)) => "COMBO".to_owned(),
        _ => "*".to_owned(),
    }
}
