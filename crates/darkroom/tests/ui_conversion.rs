//! UI-format to API-format conversion: every rule on small hand-made workflows, then the
//! real workflow corpus against a real ComfyUI.

// An inline module so the parts live in `tests/ui_conversion/` beside this file.
mod ui_conversion {
    mod corpus;
    mod features;
    mod nesting;
    mod validate;
    mod workflows;
}
