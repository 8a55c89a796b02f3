//! Following a link back to what really feeds it, the way the editor does when it queues
//! a workflow: through reroutes, into and out of subgraphs and group nodes, past bypassed
//! nodes, stopping at muted ones.
//!
//! The answer is a backend node's output, a value (from a Primitive node, or a widget the
//! instance shows for a subgraph input), or nothing. Nothing is not an error: the editor
//! sends such an input without a link, and the consuming node keeps its own widget value
//! if it has one.

use serde_json::Value;

use super::scope::{Context, Role, Scope};
use super::workflow::{NodeMode, SUBGRAPH_INPUT_NODE, UiNode, WidgetValues};

/// More hops than any real graph needs; past this the links go round in a circle.
const MAX_HOPS: usize = 1024;

/// What feeds an input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// Output `slot` of the API node `id`, of class `node_type`.
    Node {
        id: String,
        slot: usize,
        node_type: String,
    },
    Value(Value),
    Nothing,
}

/// The links went round in a circle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cycle;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolver<'a> {
    pub context: Context<'a>,
    pub scopes: &'a [Scope],
}

impl Resolver<'_> {
    /// What feeds an input through link `link_id` of scope `scope`.
    pub(crate) fn link(&self, scope: usize, link_id: i64) -> Result<Source, Cycle> {
        self.follow(scope, link_id, 0)
    }

    fn follow(&self, scope_index: usize, link_id: i64, hops: usize) -> Result<Source, Cycle> {
        if hops > MAX_HOPS {
            return Err(Cycle);
        }
        let scope = &self.scopes[scope_index];
        // A link id no link has is left over from an edit; the editor ignores it too.
        let Some(link) = scope.graph.links.get(&link_id) else {
            return Ok(Source::Nothing);
        };
        if link.origin == SUBGRAPH_INPUT_NODE {
            return self.border_input(scope_index, link.origin_slot, hops);
        }
        self.output(scope_index, &link.origin, link.origin_slot, hops)
    }

    /// What feeds input `border` of a subgraph from outside: the instance's link, else
    /// the value the instance shows for it.
    fn border_input(
        &self,
        scope_index: usize,
        border: usize,
        hops: usize,
    ) -> Result<Source, Cycle> {
        let scope = &self.scopes[scope_index];
        let Some(border_input) = scope.border_inputs.get(border) else {
            return Ok(Source::Nothing);
        };
        if let Some((parent, instance_id)) = &scope.parent {
            let instance = self.scopes[*parent].graph.node(instance_id);
            let link = border_input
                .instance_input
                .and_then(|input| instance?.inputs.get(input)?.link);
            if let Some(link) = link {
                let source = self.follow(*parent, link, hops + 1)?;
                if source != Source::Nothing {
                    return Ok(source);
                }
            }
        }
        Ok(border_input
            .value
            .clone()
            .map_or(Source::Nothing, Source::Value))
    }

    /// What output `slot` of node `node_id` gives.
    fn output(
        &self,
        scope_index: usize,
        node_id: &str,
        slot: usize,
        hops: usize,
    ) -> Result<Source, Cycle> {
        let scope = &self.scopes[scope_index];
        let Some(node) = scope.graph.node(node_id) else {
            return Ok(Source::Nothing);
        };
        // Reroutes and Primitive nodes live in the editor only: mute and bypass do not
        // apply to them.
        let role = self.context.role(&node.node_type);
        match role {
            Role::Reroute => return self.first_input(scope_index, node, hops),
            Role::Primitive => return Ok(primitive_value(scope, node)),
            _ => {}
        }

        let mode = scope.inherited.within(node.mode);
        if let Some(&child) = scope.children.get(node_id) {
            // The inside of a bypassed instance is bypassed too, so the link through it
            // finds the matching input by itself.
            let inner = self.scopes[child].border_outputs.get(&slot);
            return match (mode, inner) {
                (NodeMode::Muted, _) | (_, None) => Ok(Source::Nothing),
                (_, Some(&inner)) => self.follow(child, inner, hops + 1),
            };
        }
        match (mode, role) {
            (NodeMode::Muted, _) => Ok(Source::Nothing),
            (NodeMode::Bypassed, _) => self.bypass(scope_index, node, slot, hops),
            (NodeMode::Active, Role::Backend) => Ok(Source::Node {
                id: format!("{}{}", scope.prefix, node.id),
                slot,
                node_type: node.node_type.clone(),
            }),
            (NodeMode::Active, _) => Ok(Source::Nothing),
        }
    }

    fn first_input(&self, scope_index: usize, node: &UiNode, hops: usize) -> Result<Source, Cycle> {
        match node.inputs.first().and_then(|input| input.link) {
            Some(link) => self.follow(scope_index, link, hops + 1),
            None => Ok(Source::Nothing),
        }
    }

    /// A bypassed node hands on the input that matches the output's type: the input in
    /// the same position when its type matches, else the first input that does.
    fn bypass(
        &self,
        scope_index: usize,
        node: &UiNode,
        slot: usize,
        hops: usize,
    ) -> Result<Source, Cycle> {
        let wanted = node
            .outputs
            .get(slot)
            .map_or("*", |output| output.output_type.as_str());
        let same_position = node
            .inputs
            .get(slot)
            .filter(|input| types_match(&input.input_type, wanted));
        let input = same_position.or_else(|| {
            node.inputs
                .iter()
                .find(|input| types_match(&input.input_type, wanted))
        });
        match input.and_then(|input| input.link) {
            Some(link) => self.follow(scope_index, link, hops + 1),
            None => Ok(Source::Nothing),
        }
    }
}

/// The value a Primitive node holds: the one its group node instance sets, else its own
/// first widget value (the second, if any, is its control value).
fn primitive_value(scope: &Scope, node: &UiNode) -> Source {
    let key = (node.id.clone(), "value".to_owned());
    if let Some(value) = scope.widget_overrides.get(&key) {
        return Source::Value(value.clone());
    }
    let value = match &node.widgets_values {
        WidgetValues::List(values) => values.first(),
        WidgetValues::Named(named) => named.get("value"),
        WidgetValues::None => None,
    };
    value.cloned().map_or(Source::Nothing, Source::Value)
}

/// Socket types match when equal, when either is the wildcard, or when comma-separated
/// unions share a member (as the backend's own check allows).
fn types_match(left: &str, right: &str) -> bool {
    if left == right || left == "*" || right == "*" {
        return true;
    }
    left.split(',')
        .any(|part| right.split(',').any(|other| part.trim() == other.trim()))
}
