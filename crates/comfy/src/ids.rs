//! Identifiers ComfyUI hands out or accepts, as newtypes so they cannot be mixed up.
//!
//! ComfyUI treats all of them as opaque strings; so do we. Nothing here checks a format,
//! because the server does not either (a reused `prompt_id` is silently accepted there).

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string the server or the caller chose.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The id as the server spells it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

string_id!(
    /// One queued run of a graph on one ComfyUI server.
    PromptId
);
string_id!(
    /// The id a websocket registers with; ComfyUI sends a prompt's events only to the
    /// socket whose id the prompt was posted with.
    ClientId
);
string_id!(
    /// A node id inside an API-format graph (`"3"`, or an expanded id such as `"12.4"`).
    NodeId
);

impl PromptId {
    /// A fresh random id, in the uuid4 form ComfyUI itself generates.
    pub fn random() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

impl ClientId {
    /// A fresh random id with a readable prefix, so a server log tells whose socket it is.
    pub fn random(prefix: &str) -> Self {
        Self(format!("{prefix}-{}", uuid::Uuid::new_v4().simple()))
    }
}
