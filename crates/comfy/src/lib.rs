//! A typed client for ComfyUI.
