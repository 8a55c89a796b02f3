//! The templates layer's errors. `TemplateError` is a template that cannot be loaded,
//! found or stored; `ParameterError` is one value a client gave (or left out) that cannot
//! be injected. Both name the thing at fault: the template, binding or parameter.

use std::path::PathBuf;

/// A template that cannot be loaded, found or stored.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("template {name:?} not found")]
    NotFound { name: String },
    #[error(
        "template name {name:?} must be 1 to 64 characters of a-z, 0-9, '-', '_' and '.', \
         starting with a letter or digit, and not \"reload\""
    )]
    InvalidName { name: String },
    #[error("template {name:?} already exists")]
    AlreadyExists { name: String },
    #[error("cannot access {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("template {name:?}: {detail}")]
    Workflow { name: String, detail: String },
    #[error("template {name:?}: manifest: {detail}")]
    Manifest { name: String, detail: String },
    #[error("template {name:?}: binding {binding:?} of parameter {parameter:?} {problem}")]
    Binding {
        name: String,
        parameter: String,
        binding: String,
        problem: String,
    },
    #[error("template {name:?}: parameter {parameter:?} {problem}")]
    Parameter {
        name: String,
        parameter: String,
        problem: String,
    },
    #[error(
        "template {name:?} is in ComfyUI's UI format; converting it needs a backend's \
         /object_info, and no backend answered"
    )]
    NeedsObjectInfo { name: String },
    #[error("template {name:?}: {detail}")]
    Conversion { name: String, detail: String },
    /// A template in the folder that did not load; `detail` is why, as logged then.
    #[error("{detail}")]
    Unusable { name: String, detail: String },
}

/// A parameter value that cannot be injected. Each message names the parameter and, for a
/// bad value, everything it may be.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParameterError {
    #[error("unknown parameter {parameter:?}; this template takes {known}")]
    Unknown { parameter: String, known: String },
    #[error("parameter {parameter:?} is required: {expected}")]
    Missing { parameter: String, expected: String },
    #[error("parameter {parameter:?} must be {expected}, got {got}")]
    WrongType {
        parameter: String,
        expected: String,
        got: String,
    },
    #[error("parameter {parameter:?} must be {expected}, got {got}")]
    OutOfBounds {
        parameter: String,
        expected: String,
        got: String,
    },
    #[error("parameter {parameter:?} must be {expected}, got {got}")]
    NotAChoice {
        parameter: String,
        expected: String,
        got: String,
    },
    #[error("parameter {parameter:?}: asset {asset_id:?} does not exist")]
    MissingAsset { parameter: String, asset_id: String },
    /// An image parameter naming an asset whose bytes are no picture.
    #[error("parameter {parameter:?}: asset {asset_id:?} is not an image (checked by its content)")]
    NotAnImage { parameter: String, asset_id: String },
    /// The backend refuses the value where the parameter lands; `problem` reads after
    /// the parameter's name ("must be one of ...").
    #[error("parameter {parameter:?} {problem}")]
    Refused { parameter: String, problem: String },
}

impl ParameterError {
    /// The parameter at fault.
    pub fn parameter(&self) -> &str {
        match self {
            Self::Unknown { parameter, .. }
            | Self::Missing { parameter, .. }
            | Self::WrongType { parameter, .. }
            | Self::OutOfBounds { parameter, .. }
            | Self::NotAChoice { parameter, .. }
            | Self::MissingAsset { parameter, .. }
            | Self::NotAnImage { parameter, .. }
            | Self::Refused { parameter, .. } => parameter,
        }
    }

    /// A stable snake_case reason for machine readers.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unknown { .. } => "unknown_parameter",
            Self::Missing { .. } => "missing_parameter",
            Self::WrongType { .. } => "wrong_type",
            Self::OutOfBounds { .. } => "out_of_bounds",
            Self::NotAChoice { .. } => "not_a_choice",
            Self::MissingAsset { .. } => "missing_asset",
            Self::NotAnImage { .. } => "not_an_image",
            Self::Refused { .. } => "refused_by_backend",
        }
    }

    /// What the parameter may be, when the error says.
    pub fn expected(&self) -> Option<&str> {
        match self {
            Self::Missing { expected, .. }
            | Self::WrongType { expected, .. }
            | Self::OutOfBounds { expected, .. }
            | Self::NotAChoice { expected, .. } => Some(expected),
            _ => None,
        }
    }
}
