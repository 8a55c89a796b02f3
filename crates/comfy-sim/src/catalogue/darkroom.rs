//! Darkroom's test node classes, mirroring `testing/comfy-nodes/` input for
//! input, so a graph behaves alike on the simulator and on a real ComfyUI
//! with those nodes installed.

use serde_json::json;

use super::{Behaviour, ClassSpec, NodeClass};

const CATEGORY: &str = "darkroom/testing";
const MODULE: &str = "custom_nodes.darkroom_test_nodes";

fn spec(input: serde_json::Value, output: Vec<&'static str>) -> ClassSpec {
    ClassSpec {
        input,
        output,
        output_name: Some(vec!["image"]),
        display_name: "",
        description: "",
        python_module: MODULE,
        category: CATEGORY,
        output_node: false,
    }
}

pub(super) fn classes() -> Vec<NodeClass> {
    let image = json!({"image": ["IMAGE"]});
    let color = |default: u32| {
        json!(["INT", {"default": default, "min": 0, "max": 0xFF_FFFF,
                                              "display": "color"}])
    };
    vec![
        NodeClass::new(
            "DarkroomSteps",
            Behaviour::Steps,
            ClassSpec {
                display_name: "Darkroom: steps with progress/previews",
                description: "Sleeps steps x step_ms with progress, previews and text frames.",
                ..spec(
                    json!({
                        "required": {
                            "steps": ["INT", {"default": 5, "min": 1, "max": 10000}],
                            "step_ms": ["INT", {"default": 100, "min": 0, "max": 600_000}],
                            "preview": ["BOOLEAN", {"default": false}],
                            "preview_format": [["JPEG", "PNG"], {"default": "JPEG"}],
                            "progress_text": ["BOOLEAN", {"default": false}],
                            "size": ["INT", {"default": 64, "min": 8, "max": 4096, "step": 8}],
                            "color": color(0x33_66CC),
                            "always_run": ["BOOLEAN", {"default": true}],
                        },
                        "optional": image,
                        "hidden": {"unique_id": "UNIQUE_ID"},
                    }),
                    vec!["IMAGE"],
                )
            },
        ),
        NodeClass::new(
            "DarkroomFail",
            Behaviour::Fail,
            ClassSpec {
                display_name: "Darkroom: fail on request",
                description: "Raises RuntimeError(message) when fail is true. Never cached.",
                ..spec(
                    json!({
                        "required": {
                            "message": ["STRING", {"default": "darkroom test failure"}],
                            "fail": ["BOOLEAN", {"default": true}],
                        },
                        "optional": image,
                    }),
                    vec!["IMAGE"],
                )
            },
        ),
        NodeClass::new(
            "DarkroomUntilInterrupted",
            Behaviour::UntilInterrupted,
            ClassSpec {
                display_name: "Darkroom: run until interrupted",
                description: "Loops until interrupted, reporting progress; returns after max_seconds.",
                ..spec(
                    json!({
                        "required": {
                            "max_seconds": ["INT", {"default": 600, "min": 1, "max": 86_400}],
                            "heartbeat_ms": ["INT", {"default": 250, "min": 10, "max": 60_000}],
                        },
                        "optional": image,
                    }),
                    vec!["IMAGE"],
                )
            },
        ),
        NodeClass::new(
            "DarkroomMultiOutput",
            Behaviour::MultiOutput,
            ClassSpec {
                display_name: "Darkroom: multi-kind output",
                description: "Saves a PNG and a WAV; UI result has images, text, audio and animated.",
                output_name: None,
                output_node: true,
                ..spec(
                    json!({
                        "required": {
                            "filename_prefix": ["STRING", {"default": "darkroom/multi"}],
                            "text": ["STRING", {"default": "darkroom multi output", "multiline": true}],
                            "size": ["INT", {"default": 16, "min": 1, "max": 4096}],
                            "color": color(0x22_AA44),
                            "audio_ms": ["INT", {"default": 100, "min": 1, "max": 60_000}],
                        },
                        "optional": image,
                    }),
                    vec![],
                )
            },
        ),
        NodeClass::new(
            "DarkroomText",
            Behaviour::Text,
            ClassSpec {
                display_name: "Darkroom: text output",
                description: "Output node whose UI result is {\"text\": [text]}.",
                output_name: None,
                output_node: true,
                ..spec(
                    json!({"required": {"text": ["STRING", {"default": "hello from darkroom",
                                                        "multiline": true}]}}),
                    vec![],
                )
            },
        ),
    ]
}
