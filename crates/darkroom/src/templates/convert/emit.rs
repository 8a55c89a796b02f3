//! Writing the API graph: one `{class_type, inputs, _meta}` entry per backend node that
//! runs, with its widget values by name and its links resolved, and a note for
//! everything left out.

use std::collections::HashMap;

use comfy::ApiGraph;
use serde_json::{Map, Value, json};

use super::ConversionNote;
use super::error::ConvertError;
use super::resolve::{Resolver, Source};
use super::scope::{Role, Scope};
use super::widgets::{WidgetSlot, assign, widget_slots};
use super::workflow::{NodeMode, UiNode};

/// Builds the API graph and the notes from every scope, inner nodes in place of their
/// instance.
pub(crate) fn emit(
    resolver: Resolver<'_>,
) -> Result<(ApiGraph, Vec<ConversionNote>), ConvertError> {
    let mut writer = Writer {
        resolver,
        graph: ApiGraph::new(),
        notes: Vec::new(),
        slots: HashMap::new(),
    };
    writer.scope(0)?;
    Ok((writer.graph, writer.notes))
}

struct Writer<'a> {
    resolver: Resolver<'a>,
    graph: ApiGraph,
    notes: Vec<ConversionNote>,
    /// Widget slots per node class, worked out once.
    slots: HashMap<String, Vec<WidgetSlot>>,
}

impl Writer<'_> {
    fn scope(&mut self, index: usize) -> Result<(), ConvertError> {
        let scopes = self.resolver.scopes;
        for node in &scopes[index].graph.nodes {
            self.node(index, &scopes[index], node)?;
        }
        Ok(())
    }

    fn node(&mut self, index: usize, scope: &Scope, node: &UiNode) -> Result<(), ConvertError> {
        let api_id = format!("{}{}", scope.prefix, node.id);
        let node_type = node.node_type.clone();
        let runs = scope.inherited.within(node.mode) == NodeMode::Active;

        match self.resolver.context.role(&node.node_type) {
            Role::Reroute | Role::Primitive | Role::EditorOnly => {
                let dropped = ConversionNote::Dropped {
                    node: api_id,
                    node_type,
                };
                self.notes.push(dropped);
            }
            Role::Subgraph(_) | Role::GroupNode(_) => {
                self.note_own_mode(&api_id, node);
                if let Some(&child) = scope.children.get(&node.id) {
                    self.scope(child)?;
                }
            }
            Role::Unknown if runs => {
                return Err(ConvertError::UnknownNodeType {
                    node: api_id,
                    title: node.title.clone().unwrap_or_else(|| node_type.clone()),
                    node_type,
                });
            }
            Role::Backend if runs => {
                let api_node = self.api_node(index, scope, node, &api_id)?;
                self.graph.insert(api_id, api_node);
            }
            // Left out: the backend never sees it, so it need not know its type.
            Role::Unknown | Role::Backend => self.note_own_mode(&api_id, node),
        }
        Ok(())
    }

    /// Notes a node muted or bypassed in its own right (nodes inside a muted or bypassed
    /// instance are covered by the instance's note).
    fn note_own_mode(&mut self, api_id: &str, node: &UiNode) {
        let (node_id, node_type) = (api_id.to_owned(), node.node_type.clone());
        let note = match node.mode {
            NodeMode::Muted => ConversionNote::Muted {
                node: node_id,
                node_type,
            },
            NodeMode::Bypassed => ConversionNote::Bypassed {
                node: node_id,
                node_type,
            },
            NodeMode::Active => return,
        };
        self.notes.push(note);
    }

    fn api_node(
        &mut self,
        index: usize,
        scope: &Scope,
        node: &UiNode,
        api_id: &str,
    ) -> Result<Value, ConvertError> {
        let info = self.resolver.context.info;
        let schema = &info[&node.node_type];
        let slots = self
            .slots
            .entry(node.node_type.clone())
            .or_insert_with(|| widget_slots(schema));
        let mut inputs = assign(slots, &node.widgets_values);
        for ((owner, widget), value) in &scope.widget_overrides {
            if owner == &node.id && slots.iter().any(|slot| &slot.name == widget) {
                inputs.insert(widget.clone(), value.clone());
            }
        }
        inputs.values_mut().for_each(wrap_list);

        self.linked_inputs(index, node, api_id, &mut inputs)?;
        let title = node
            .title
            .clone()
            .filter(|title| !title.is_empty())
            .unwrap_or_else(|| fallback_title(&schema.display_name, &node.node_type));
        Ok(json!({
            "class_type": node.node_type,
            "inputs": inputs,
            "_meta": { "title": title },
        }))
    }

    /// Sets every linked input from what really feeds it. A widget whose link leads
    /// nowhere keeps its own value, as in the editor.
    fn linked_inputs(
        &mut self,
        index: usize,
        node: &UiNode,
        api_id: &str,
        inputs: &mut Map<String, Value>,
    ) -> Result<(), ConvertError> {
        for input in &node.inputs {
            let Some(link) = input.link else {
                continue;
            };
            let name = input.widget.clone().unwrap_or_else(|| input.name.clone());
            let source = self
                .resolver
                .link(index, link)
                .map_err(|_| ConvertError::LinkCycle {
                    node: api_id.to_owned(),
                    input: name.clone(),
                })?;
            match source {
                Source::Node {
                    id,
                    slot,
                    node_type,
                } => {
                    let outputs = self.resolver.context.info[&node_type].output.len();
                    if slot >= outputs {
                        return Err(ConvertError::MissingOutput {
                            node: api_id.to_owned(),
                            input: name,
                            origin: id,
                            origin_type: node_type,
                            slot,
                            outputs,
                        });
                    }
                    inputs.insert(name, json!([id, slot]));
                }
                Source::Value(mut value) => {
                    wrap_list(&mut value);
                    inputs.insert(name, value);
                }
                Source::Nothing if !inputs.contains_key(&name) => {
                    let unfed = ConversionNote::Unfed {
                        node: api_id.to_owned(),
                        input: name,
                    };
                    self.notes.push(unfed);
                }
                Source::Nothing => {}
            }
        }
        Ok(())
    }
}

/// A list value would read as a link (`[node, slot]`); the backend unwraps this form.
fn wrap_list(value: &mut Value) {
    if value.is_array() {
        *value = json!({ "__value__": value.take() });
    }
}

fn fallback_title(display_name: &str, node_type: &str) -> String {
    if display_name.is_empty() {
        node_type.to_owned()
    } else {
        display_name.to_owned()
    }
}
