//! Saved widget values to API input names, using the backend's `/object_info`.
//!
//! The editor saves a node's widgets as a bare list (`widgets_values`), in the order it
//! created them: one widget per input that takes a value (numbers, text, booleans,
//! choices, and a few editor-drawn kinds such as the webcam), in the order the backend
//! declares its inputs, required before optional. Some widgets leave extra values in
//! that list that are not inputs: the "control after generate" choice after a seed
//! (`fixed`, `randomize`, ...) and the buttons and previews after a file upload. The
//! walk below skips exactly those, so every later value still lands on its own input.
//!
//! Values past the last known widget are ignored: they come from a newer backend whose
//! node grew inputs this backend does not have.

use comfy::server_info::NodeSchema;
use serde_json::{Map, Value};

use super::workflow::WidgetValues;

/// What the editor stores after a seed widget to say how the seed changes between runs.
const CONTROL_WORDS: [&str; 4] = ["fixed", "increment", "decrement", "randomize"];

/// Values the editor stores for the buttons it adds after an upload widget.
const UPLOAD_MARKERS: [&str; 5] = [
    "image",
    "upload",
    "upload3dmodel",
    "uploadExtraResources",
    "clear",
];

/// Input types the editor draws as a widget even though they are not plain values.
const EDITOR_WIDGET_TYPES: [&str; 6] = [
    "WEBCAM",
    "AUDIO_RECORD",
    "LOAD_3D",
    "LOAD_3D_ANIMATION",
    "LOAD3D_CAMERA",
    "IMAGEUPLOAD",
];

/// One widget of a node, as the editor creates it from the backend's schema.
#[derive(Debug, Clone)]
pub(crate) struct WidgetSlot {
    pub name: String,
    kind: WidgetKind,
    /// The editor keeps a "control after generate" value right after this widget.
    control: bool,
    /// The editor adds upload buttons (with stored values) right after this widget.
    upload: bool,
    /// A choice widget's options, when the schema lists them.
    choices: Vec<Value>,
    /// What the editor shows before anyone sets it.
    default: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WidgetKind {
    Integer,
    Float,
    Text,
    Boolean,
    Choice,
    /// Drawn by the editor (webcam, recorder, 3D viewer); any value.
    Editor,
}

/// The widgets of a node class, in the editor's order.
pub(crate) fn widget_slots(schema: &NodeSchema) -> Vec<WidgetSlot> {
    let inputs = schema.input.required.iter().chain(&schema.input.optional);
    inputs
        .filter_map(|(name, spec)| WidgetSlot::from_spec(name, spec))
        .collect()
}

/// Assigns saved widget values to widget names. A widget with no saved value gets its
/// default, as the editor gives it one when it loads a file older than the node.
pub(crate) fn assign(slots: &[WidgetSlot], saved: &WidgetValues) -> Map<String, Value> {
    let values = match saved {
        WidgetValues::List(values) => align(slots, values),
        WidgetValues::Named(named) => slots
            .iter()
            .map(|slot| named.get(&slot.name).or(slot.default.as_ref()).cloned())
            .collect(),
        WidgetValues::None => slots.iter().map(|slot| slot.default.clone()).collect(),
    };
    slots
        .iter()
        .zip(values)
        .filter_map(|(slot, value)| Some((slot.name.clone(), value?)))
        .collect()
}

/// The value of each slot, in slot order: its saved value, else its default (`None` when
/// the schema has none).
///
/// A saved value that cannot be this widget's, while the next widget could take it and
/// there are fewer values left than widgets, means the file was saved before the backend
/// added this widget: the widget keeps its default and the value goes to the next one.
pub(crate) fn align(slots: &[WidgetSlot], values: &[Value]) -> Vec<Option<Value>> {
    let mut aligned = Vec::with_capacity(slots.len());
    let mut cursor = 0;
    for (index, slot) in slots.iter().enumerate() {
        let next = slots.get(index + 1);
        let Some(value) = values.get(cursor) else {
            aligned.push(slot.default.clone());
            continue;
        };
        let added_since = !slot.accepts(value)
            && values.len() - cursor < slots.len() - index
            && next.is_some_and(|next| next.fits(value));
        if added_since {
            aligned.push(slot.default.clone());
            continue;
        }
        aligned.push(Some(value.clone()));
        cursor += 1;
        cursor += slot.extras_after(&values[cursor..], next);
    }
    aligned
}

impl WidgetSlot {
    /// A widget for this input, or `None` when the input is only a socket.
    pub(crate) fn from_spec(name: &str, spec: &Value) -> Option<Self> {
        let options = spec.get(1).and_then(Value::as_object);
        let option = |key: &str| options.and_then(|options| options.get(key));
        // `forceInput` inputs are sockets that never had a widget.
        if option("forceInput").and_then(Value::as_bool) == Some(true) {
            return None;
        }
        let kind = WidgetKind::of(spec.get(0)?)?;
        let control = option("control_after_generate").is_some_and(truthy);
        let upload = options.is_some_and(|options| {
            options
                .iter()
                .any(|(key, value)| key.ends_with("_upload") && truthy(value))
        });
        let choices = match spec.get(0) {
            Some(Value::Array(choices)) => choices.clone(),
            _ => option("options")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        };
        // The editor starts a choice on its first option when the schema names no default.
        let default = option("default")
            .cloned()
            .or_else(|| choices.first().cloned());
        Some(Self {
            name: name.to_owned(),
            kind,
            control,
            upload,
            choices,
            default,
        })
    }

    /// A widget made for a value the editor holds itself (a Primitive node's output, a
    /// seed in a group node): it may carry a control value whatever the backend declares.
    pub(crate) fn seed_like(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            kind: WidgetKind::Editor,
            control: true,
            upload: false,
            choices: Vec::new(),
            default: None,
        }
    }

    /// The same widget, followed by a control value in the saved list when one is there.
    pub(crate) fn with_control(self) -> Self {
        Self {
            control: true,
            ..self
        }
    }

    /// How many of the `rest` values belong to this widget's extras, not to `next`.
    fn extras_after(&self, rest: &[Value], next: Option<&WidgetSlot>) -> usize {
        let mut skipped = 0;
        if rest.first().is_some_and(is_control_word)
            && (self.control
                || self.kind == WidgetKind::Integer && !next.is_some_and(WidgetSlot::takes_text))
        {
            skipped += 1;
        }
        if self.upload {
            skipped += rest[skipped..]
                .iter()
                .take_while(|value| {
                    is_upload_marker(value) && !next.is_some_and(|next| next.fits(value))
                })
                .count();
        }
        skipped
    }

    fn takes_text(&self) -> bool {
        matches!(
            self.kind,
            WidgetKind::Text | WidgetKind::Choice | WidgetKind::Editor
        )
    }

    /// Whether a saved value can be this widget's at all. Choices take any text or number:
    /// the backend may lack the file or option, which is for it to say.
    fn accepts(&self, value: &Value) -> bool {
        match self.kind {
            WidgetKind::Integer | WidgetKind::Float => value.is_number(),
            WidgetKind::Boolean => value.is_boolean(),
            WidgetKind::Text => value.is_string(),
            WidgetKind::Choice => value.is_string() || value.is_number(),
            WidgetKind::Editor => true,
        }
    }

    /// Whether the next widget could plausibly have saved this value itself.
    fn fits(&self, value: &Value) -> bool {
        match self.kind {
            WidgetKind::Integer | WidgetKind::Float => value.is_number(),
            WidgetKind::Boolean => value.is_boolean(),
            WidgetKind::Text => value.is_string(),
            WidgetKind::Choice if self.choices.is_empty() => value.is_string(),
            WidgetKind::Choice => self.choices.contains(value),
            WidgetKind::Editor => false,
        }
    }
}

impl WidgetKind {
    fn of(input_type: &Value) -> Option<Self> {
        let name = match input_type {
            Value::Array(_) => return Some(Self::Choice),
            Value::String(name) => name.as_str(),
            _ => return None,
        };
        match name {
            "INT" => Some(Self::Integer),
            "FLOAT" => Some(Self::Float),
            "STRING" => Some(Self::Text),
            "BOOLEAN" => Some(Self::Boolean),
            "COMBO" => Some(Self::Choice),
            other if EDITOR_WIDGET_TYPES.contains(&other) => Some(Self::Editor),
            _ => None,
        }
    }
}

pub(crate) fn is_control_word(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|word| CONTROL_WORDS.contains(&word))
}

fn is_upload_marker(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => UPLOAD_MARKERS.contains(&text.as_str()),
        _ => false,
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(flag) => *flag,
        Value::Null => false,
        Value::String(text) => !text.is_empty(),
        _ => true,
    }
}
