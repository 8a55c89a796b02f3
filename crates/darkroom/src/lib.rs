//! Darkroom: a gateway in front of ComfyUI.
