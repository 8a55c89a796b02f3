//! Legacy group nodes (`workflow>NAME`, earlier `workflow/NAME`), read as a scope like a
//! subgraph instance.
//!
//! A group node is defined once in `extra.groupNodes[NAME]`: its inner nodes in order,
//! their links as `[origin index, origin slot, target index, target slot, ...]`, and the
//! inner outputs that also leave the group (`external`). The instance shows what is left
//! open: its input sockets are the inner sockets not linked inside, node by node (sockets
//! that were widgets come last, after every node's plain sockets); its outputs are the
//! inner outputs not used inside, unless they also leave it; its widget values are every
//! inner widget not turned into a socket, node by node. The editor names the inner nodes
//! `INSTANCE:INDEX` in the API graph, and so does this module.
//!
//! Editors since 2025 turn group nodes into subgraphs on load; this reading covers files
//! saved before that, for inner nodes of backend classes, Primitive nodes and reroutes.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::error::ConvertError;
use super::scope::{BorderInput, Context, Role, Scope};
use super::widgets::{WidgetSlot, align, widget_slots};
use super::workflow::{
    SUBGRAPH_INPUT_NODE, SUBGRAPH_OUTPUT_NODE, UiGraph, UiLink, UiNode, WidgetValues,
};

/// The group's name when `node_type` names a group node instance.
pub(crate) fn name_of(node_type: &str) -> Option<&str> {
    node_type
        .strip_prefix("workflow>")
        .or_else(|| node_type.strip_prefix("workflow/"))
}

/// The scope of one group node instance.
pub(crate) fn scope(
    context: Context<'_>,
    parent: &Scope,
    instance: &UiNode,
    name: &str,
) -> Result<Scope, ConvertError> {
    let api_id = format!("{}{}", parent.prefix, instance.id);
    let definition =
        context
            .workflow
            .group_nodes
            .get(name)
            .ok_or_else(|| ConvertError::MissingGroupNode {
                node: api_id.clone(),
                group: name.to_owned(),
            })?;
    let location = format!("extra.groupNodes.{name}");
    let mut inside = Inside::parse(definition, &location)?;

    let border_inputs = inside.open_inputs(context, definition);
    let border_outputs = inside.open_outputs(context, definition);
    let widget_overrides = inside.instance_widgets(context, instance);
    Ok(Scope {
        prefix: format!("{api_id}:"),
        graph: inside.graph,
        inherited: parent.inherited.within(instance.mode),
        border_inputs,
        border_outputs,
        widget_overrides,
        ..Scope::default()
    })
}

/// The inner graph being rebuilt, with the definition's links by endpoint.
struct Inside {
    graph: UiGraph,
    /// `(target index, target slot)` of every link inside the group.
    linked_inputs: HashSet<(usize, usize)>,
    /// `(origin index, origin slot)` of every link inside the group.
    linked_outputs: HashSet<(usize, usize)>,
    next_link: i64,
}

impl Inside {
    fn parse(definition: &Value, location: &str) -> Result<Self, ConvertError> {
        let mut graph = UiGraph::default();
        let nodes = definition.get("nodes").and_then(Value::as_array);
        for (index, node) in nodes.into_iter().flatten().enumerate() {
            let mut node = node.clone();
            if let Some(fields) = node.as_object_mut() {
                fields.insert("id".into(), index.into());
            }
            let mut node = UiNode::parse(&node, &format!("{location}.nodes[{index}]"))?;
            // Link ids inside the definition refer to the graph it was cut from.
            node.inputs.iter_mut().for_each(|input| input.link = None);
            graph.nodes.push(node);
        }

        let mut inside = Self {
            graph,
            linked_inputs: HashSet::new(),
            linked_outputs: HashSet::new(),
            next_link: 1,
        };
        let links = definition.get("links").and_then(Value::as_array);
        for link in links.into_iter().flatten() {
            let part = |position: usize| {
                link.get(position)
                    .and_then(Value::as_u64)
                    .and_then(|number| usize::try_from(number).ok())
            };
            // Links with no origin index came from outside the copied nodes.
            if let (Some(origin), Some(origin_slot), Some(target), Some(target_slot)) =
                (part(0), part(1), part(2), part(3))
            {
                inside.link(
                    (origin.to_string(), origin_slot),
                    (target.to_string(), target_slot),
                );
                inside.linked_inputs.insert((target, target_slot));
                inside.linked_outputs.insert((origin, origin_slot));
            }
        }
        Ok(inside)
    }

    /// Adds a link and, when it ends on an inner node, points that socket at it.
    fn link(
        &mut self,
        (origin, origin_slot): (String, usize),
        (target, target_slot): (String, usize),
    ) -> i64 {
        let id = self.next_link;
        self.next_link += 1;
        if let Some(input) = self
            .graph
            .nodes
            .iter_mut()
            .find(|node| node.id == target)
            .and_then(|node| node.inputs.get_mut(target_slot))
        {
            input.link = Some(id);
        }
        let link = UiLink {
            origin,
            origin_slot,
            target,
            target_slot,
        };
        self.graph.links.insert(id, link);
        id
    }

    /// Links every open inner socket to the group's border, in the instance's socket
    /// order, and returns one border input per instance socket.
    fn open_inputs(&mut self, context: Context<'_>, definition: &Value) -> Vec<BorderInput> {
        let mut open = Vec::new();
        for widget_sockets in [false, true] {
            for (index, node) in self.graph.nodes.iter().enumerate() {
                if !self.shown(context, index) {
                    continue;
                }
                for (slot, input) in node.inputs.iter().enumerate() {
                    let hidden = config(definition, index, "input", &input.name)
                        .and_then(|entry| entry.get("visible"))
                        .and_then(Value::as_bool)
                        == Some(false);
                    if input.widget.is_some() == widget_sockets
                        && !hidden
                        && !self.linked_inputs.contains(&(index, slot))
                    {
                        open.push((index, slot));
                    }
                }
            }
        }
        open.iter()
            .enumerate()
            .map(|(border, &(index, slot))| {
                let origin = (SUBGRAPH_INPUT_NODE.to_owned(), border);
                self.link(origin, (index.to_string(), slot));
                BorderInput {
                    instance_input: Some(border),
                    value: None,
                }
            })
            .collect()
    }

    /// Links every output the instance shows to the border, in order.
    fn open_outputs(&mut self, context: Context<'_>, definition: &Value) -> HashMap<usize, i64> {
        let external: HashSet<(usize, usize)> = definition
            .get("external")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let part = |position| entry.get(position)?.as_u64()?.try_into().ok();
                Some((part(0)?, part(1)?))
            })
            .collect();
        let mut shown = Vec::new();
        for (index, node) in self.graph.nodes.iter().enumerate() {
            if !self.shown(context, index) {
                continue;
            }
            for slot in 0..node.outputs.len() {
                let used_inside = self.linked_outputs.contains(&(index, slot));
                let configured = config(definition, index, "output", &slot.to_string())
                    .and_then(|entry| entry.get("visible"))
                    .and_then(Value::as_bool);
                if configured.unwrap_or(!used_inside || external.contains(&(index, slot))) {
                    shown.push((index, slot));
                }
            }
        }
        shown
            .into_iter()
            .enumerate()
            .map(|(border, (index, slot))| {
                let target = (SUBGRAPH_OUTPUT_NODE.to_owned(), border);
                (border, self.link((index.to_string(), slot), target))
            })
            .collect()
    }

    /// Reads the instance's widget values onto the inner widgets they stand for.
    fn instance_widgets(
        &mut self,
        context: Context<'_>,
        instance: &UiNode,
    ) -> HashMap<(String, String), Value> {
        let WidgetValues::List(values) = &instance.widgets_values else {
            return HashMap::new();
        };
        let mut owners = Vec::new();
        let mut slots = Vec::new();
        for widget_sockets in [false, true] {
            for (index, node) in self.graph.nodes.iter().enumerate() {
                if self.shown(context, index) {
                    for slot in self.node_widgets(context, index, widget_sockets) {
                        owners.push(node.id.clone());
                        slots.push(slot);
                    }
                }
            }
        }
        let mut overrides = HashMap::new();
        for ((owner, slot), value) in owners.into_iter().zip(&slots).zip(align(&slots, values)) {
            if let Some(value) = value {
                overrides.insert((owner, slot.name.clone()), value);
            }
        }
        overrides
    }

    /// The widgets node `index` adds to the instance: its plain widgets, or (with
    /// `widget_sockets`) those turned into open sockets.
    fn node_widgets(
        &self,
        context: Context<'_>,
        index: usize,
        widget_sockets: bool,
    ) -> Vec<WidgetSlot> {
        let node = &self.graph.nodes[index];
        if context.role(&node.node_type) == Role::Primitive {
            let slots = vec![WidgetSlot::seed_like("value")];
            return if widget_sockets { Vec::new() } else { slots };
        }
        let Some(schema) = context.info.get(&node.node_type) else {
            return Vec::new();
        };
        let socket_of = |name: &str| {
            node.inputs
                .iter()
                .position(|input| input.widget.as_deref() == Some(name))
        };
        widget_slots(schema)
            .into_iter()
            .filter(|slot| match socket_of(&slot.name) {
                None => !widget_sockets,
                Some(socket) => widget_sockets && !self.linked_inputs.contains(&(index, socket)),
            })
            .map(|slot| match slot.name.as_str() {
                // The editor gave every seed in a group a control value.
                "seed" | "noise_seed" => slot.with_control(),
                _ => slot,
            })
            .collect()
    }

    /// Whether the editor gave node `index` a place on the instance: notes and unlinked
    /// Primitive nodes have none, nor does a reroute linked on both sides inside.
    fn shown(&self, context: Context<'_>, index: usize) -> bool {
        let node = &self.graph.nodes[index];
        let feeds =
            (0..node.outputs.len()).any(|slot| self.linked_outputs.contains(&(index, slot)));
        let fed = (0..node.inputs.len()).any(|slot| self.linked_inputs.contains(&(index, slot)));
        match context.role(&node.node_type) {
            Role::Backend => true,
            Role::Primitive => feeds,
            Role::Reroute => !(feeds && fed),
            _ => false,
        }
    }
}

/// The definition's per-node `config` entry for one input name or output slot.
fn config<'a>(definition: &'a Value, index: usize, side: &str, key: &str) -> Option<&'a Value> {
    definition
        .get("config")?
        .get(index.to_string())?
        .get(side)?
        .get(key)
}
