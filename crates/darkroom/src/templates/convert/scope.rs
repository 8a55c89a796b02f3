//! The graph levels of a workflow, flattened into one list: the top level, then one scope
//! per subgraph or group node instance, each knowing its parent and its border.
//!
//! A scope owns a copy of its instance's inner graph, because two instances of the same
//! subgraph differ: in the values promoted to the instance, in its mode, in the API ids
//! of their nodes (`"75:12"` is node 12 inside instance 75, the editor's own scheme).

use std::collections::HashMap;

use comfy::server_info::ObjectInfo;
use serde_json::Value;

use super::error::ConvertError;
use super::group_node;
use super::widgets::is_control_word;
use super::workflow::{
    NodeMode, SUBGRAPH_OUTPUT_NODE, SubgraphDef, UiGraph, UiNode, WidgetValues, Workflow,
};

/// What a node is, for conversion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// A class the backend lists in `/object_info`.
    Backend,
    Subgraph(String),
    GroupNode(String),
    Reroute,
    Primitive,
    /// Notes and other nodes that exist only in the editor.
    EditorOnly,
    Unknown,
}

/// Types the editor draws that never reach the backend and carry no value.
const EDITOR_ONLY_TYPES: [&str; 2] = ["Note", "MarkdownNote"];

/// The workflow and the backend's schemas: what every step of conversion reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub workflow: &'a Workflow,
    pub info: &'a ObjectInfo,
}

impl Context<'_> {
    pub(crate) fn role(&self, node_type: &str) -> Role {
        if self.info.contains_key(node_type) {
            return Role::Backend;
        }
        if self.workflow.subgraphs.contains_key(node_type) {
            return Role::Subgraph(node_type.to_owned());
        }
        if let Some(name) = group_node::name_of(node_type) {
            return Role::GroupNode(name.to_owned());
        }
        match node_type {
            "Reroute" => Role::Reroute,
            "PrimitiveNode" => Role::Primitive,
            other if EDITOR_ONLY_TYPES.contains(&other) => Role::EditorOnly,
            _ => Role::Unknown,
        }
    }
}

/// One graph level.
#[derive(Debug, Clone, Default)]
pub(crate) struct Scope {
    /// Put before every inner node id to make its API id: `""` at the top, `"75:"` inside
    /// instance 75.
    pub prefix: String,
    pub graph: UiGraph,
    /// The scope holding the instance node, and that node's id there.
    pub parent: Option<(usize, String)>,
    /// Muted or bypassed when the instance (or one around it) is.
    pub inherited: NodeMode,
    /// Per input of the border: which input of the instance feeds it, and the value the
    /// instance holds for it when nothing is linked.
    pub border_inputs: Vec<BorderInput>,
    /// Per output of the border: the inner link that ends there.
    pub border_outputs: HashMap<usize, i64>,
    /// Instance node id in this scope to the scope of its inside.
    pub children: HashMap<String, usize>,
    /// Widget values the instance sets on inner nodes: `(inner node id, widget)`.
    pub widget_overrides: HashMap<(String, String), Value>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct BorderInput {
    pub instance_input: Option<usize>,
    pub value: Option<Value>,
}

impl NodeMode {
    /// A node's mode inside an instance whose mode is `self`: muting wins over bypassing.
    pub(crate) fn within(self, own: NodeMode) -> NodeMode {
        match (self, own) {
            (Self::Muted, _) | (_, Self::Muted) => Self::Muted,
            (Self::Bypassed, _) | (_, Self::Bypassed) => Self::Bypassed,
            _ => Self::Active,
        }
    }
}

/// Every scope of the workflow; index 0 is the top level.
pub(crate) fn build(context: Context<'_>) -> Result<Vec<Scope>, ConvertError> {
    let mut scopes = vec![Scope {
        graph: context.workflow.root.clone(),
        ..Scope::default()
    }];
    let mut expanded = scopes[0].graph.nodes.len();
    expand(context, &mut scopes, 0, &mut Vec::new(), &mut expanded)?;
    Ok(scopes)
}

/// The most nodes a workflow may expand to. Subgraphs nest instances of other subgraphs,
/// so a few kilobytes of JSON can describe billions of nodes; real workflows stay far
/// below this (the largest in ComfyUI's own template corpus expands to a few hundred).
pub(crate) const MAX_EXPANDED_NODES: usize = 20_000;

/// Adds a scope for every instance node in scope `index`, depth first. `open` holds the
/// subgraph and group names being expanded, to refuse one that contains itself.
fn expand(
    context: Context<'_>,
    scopes: &mut Vec<Scope>,
    index: usize,
    open: &mut Vec<String>,
    expanded: &mut usize,
) -> Result<(), ConvertError> {
    let nodes = scopes[index].graph.nodes.clone();
    for node in &nodes {
        let role = context.role(&node.node_type);
        let (definition, child) = match &role {
            Role::Subgraph(id) => (id, subgraph_scope(context, &scopes[index], node, id)?),
            Role::GroupNode(name) => (
                name,
                group_node::scope(context, &scopes[index], node, name)?,
            ),
            _ => continue,
        };
        if open.contains(definition) {
            return Err(ConvertError::RecursiveSubgraph {
                node: format!("{}{}", scopes[index].prefix, node.id),
                subgraph: definition.clone(),
            });
        }
        *expanded += child.graph.nodes.len();
        if *expanded > MAX_EXPANDED_NODES {
            return Err(ConvertError::TooLarge {
                limit: MAX_EXPANDED_NODES,
            });
        }
        let child_index = scopes.len();
        scopes.push(Scope {
            parent: Some((index, node.id.clone())),
            ..child
        });
        scopes[index].children.insert(node.id.clone(), child_index);

        open.push(definition.clone());
        expand(context, scopes, child_index, open, expanded)?;
        open.pop();
    }
    Ok(())
}

fn subgraph_scope(
    context: Context<'_>,
    parent: &Scope,
    instance: &UiNode,
    id: &str,
) -> Result<Scope, ConvertError> {
    let definition =
        context
            .workflow
            .subgraphs
            .get(id)
            .ok_or_else(|| ConvertError::MissingSubgraph {
                node: format!("{}{}", parent.prefix, instance.id),
                subgraph: id.to_owned(),
            })?;
    let border_inputs = definition
        .inputs
        .iter()
        .map(|slot| BorderInput {
            instance_input: instance
                .inputs
                .iter()
                .position(|input| input.name == slot.name),
            value: None,
        })
        .collect();
    let border_outputs = definition
        .graph
        .links
        .iter()
        .filter(|(_, link)| link.target == SUBGRAPH_OUTPUT_NODE)
        .map(|(id, link)| (link.target_slot, *id))
        .collect();
    let mut scope = Scope {
        prefix: format!("{}{}:", parent.prefix, instance.id),
        graph: definition.graph.clone(),
        inherited: parent.inherited.within(instance.mode),
        border_inputs,
        border_outputs,
        ..Scope::default()
    };
    promote_values(&mut scope, instance, definition);
    Ok(scope)
}

/// Reads the widget values an instance shows for its subgraph.
///
/// Newer editors list the shown widgets in `properties.proxyWidgets`, one saved value
/// each: `("-1", input)` is a border input, `(node, widget)` a widget of an inner node.
/// Older editors save one value per border input that feeds a widget inside, in border
/// order. With neither, the inner nodes' own values stand.
fn promote_values(scope: &mut Scope, instance: &UiNode, definition: &SubgraphDef) {
    let WidgetValues::List(values) = &instance.widgets_values else {
        return;
    };
    if values.is_empty() {
        return;
    }
    if instance.proxy_widgets.len() == values.len() {
        for ((node, widget), value) in instance.proxy_widgets.iter().zip(values) {
            if node == "-1" {
                let border = definition
                    .inputs
                    .iter()
                    .position(|slot| &slot.name == widget);
                if let Some(border) = border {
                    scope.border_inputs[border].value = Some(value.clone());
                }
            } else {
                let key = (node.clone(), widget.clone());
                scope.widget_overrides.insert(key, value.clone());
            }
        }
        return;
    }

    let promoted: Vec<usize> = (0..definition.inputs.len())
        .filter(|&border| feeds_widget(definition, border))
        .collect();
    let mut rest = values.as_slice();
    for (position, &border) in promoted.iter().enumerate() {
        let Some((value, after)) = rest.split_first() else {
            break;
        };
        scope.border_inputs[border].value = Some(value.clone());
        rest = after;
        // A seed's control value sits after it only when there are values to spare.
        let still_wanted = promoted.len() - position - 1;
        if rest.len() > still_wanted && rest.first().is_some_and(is_control_word) {
            rest = &rest[1..];
        }
    }
}

fn feeds_widget(definition: &SubgraphDef, border: usize) -> bool {
    let graph = &definition.graph;
    definition.inputs[border].link_ids.iter().any(|link_id| {
        graph
            .links
            .get(link_id)
            .and_then(|link| Some((graph.node(&link.target)?, link.target_slot)))
            .and_then(|(node, slot)| node.inputs.get(slot))
            .is_some_and(|input| input.widget.is_some())
    })
}
