//! The conversion layer's error type.

/// Why a UI-format workflow cannot be turned into an API-format graph.
///
/// Every variant names the node it is about, as an API node id (`"12"`, or `"75:12"` for
/// node 12 inside the subgraph instance 75), so a person can find it in the editor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// The JSON is not an editor export: no `nodes` and `links` lists.
    #[error("not a ui-format workflow: {reason}")]
    NotUiFormat { reason: String },

    /// A part of the workflow does not have the shape the editor writes.
    #[error("malformed workflow at {location}: {problem}")]
    Malformed { location: String, problem: String },

    /// A node whose class the backend's `/object_info` does not list.
    #[error("node {node} ({title:?}) has type {node_type:?}, which the backend does not know")]
    UnknownNodeType {
        node: String,
        title: String,
        node_type: String,
    },

    /// A link from an output the backend's node class does not have: the workflow was
    /// saved with a version of the node that has more outputs.
    #[error(
        "input {input:?} of node {node} is linked to output {slot} of node {origin} \
         ({origin_type}), which has {outputs} outputs in this backend"
    )]
    MissingOutput {
        node: String,
        input: String,
        origin: String,
        origin_type: String,
        slot: usize,
        outputs: usize,
    },

    /// A subgraph instance whose definition is missing from `definitions.subgraphs`.
    #[error(
        "node {node} is an instance of subgraph {subgraph:?}, which the workflow does not define"
    )]
    MissingSubgraph { node: String, subgraph: String },

    /// A legacy group node whose definition is missing from `extra.groupNodes`.
    #[error("node {node} is group node {group:?}, which the workflow does not define")]
    MissingGroupNode { node: String, group: String },

    /// A subgraph that contains an instance of itself, directly or through others.
    #[error("node {node} nests subgraph {subgraph:?} inside itself")]
    RecursiveSubgraph { node: String, subgraph: String },

    /// Subgraph instances nest so deeply or widely that the workflow expands past the cap.
    #[error("the workflow expands to more than {limit} nodes through its subgraphs")]
    TooLarge { limit: usize },

    /// Following a link through reroutes, bypassed nodes and subgraph borders came back to
    /// where it started.
    #[error("the links feeding input {input:?} of node {node} form a cycle")]
    LinkCycle { node: String, input: String },
}

impl ConvertError {
    pub(crate) fn malformed(location: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Malformed {
            location: location.into(),
            problem: problem.into(),
        }
    }
}
