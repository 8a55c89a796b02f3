//! A ComfyUI stand-in for tests.
