//! Each conversion rule on a small workflow written by hand in the editor's format, with
//! node schemas recorded from ComfyUI 0.3.75's `/object_info`.

use darkroom::templates::convert::{self, ConversionNote, ConvertError};
use serde_json::json;

use super::workflows::{add_node, converted, node_mut, object_info, relink, txt2img};

#[test]
fn widget_values_land_on_input_names_past_the_seed_control_value() {
    let graph = converted(&txt2img()).graph;

    assert_eq!(
        graph["3"],
        json!({
            "class_type": "KSampler",
            "inputs": {"seed": 42, "steps": 20, "cfg": 7.5, "sampler_name": "euler",
                       "scheduler": "normal", "denoise": 1,
                       "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                       "latent_image": ["5", 0]},
            "_meta": {"title": "KSampler"}
        })
    );
    assert_eq!(
        graph["5"]["inputs"],
        json!({"width": 768, "height": 512, "batch_size": 1})
    );
    assert_eq!(
        graph["6"]["_meta"]["title"], "Positive",
        "a renamed node keeps its title"
    );
    assert_eq!(graph.len(), 7);
}

#[test]
fn a_widget_newer_than_the_saved_file_keeps_its_default() {
    let mut workflow = txt2img();
    // Saved by a KSampler without `cfg`: the rest must not shift onto the wrong inputs.
    node_mut(&mut workflow, 3)["widgets_values"] = json!([42, "fixed", 20, "euler", "normal", 1]);

    let inputs = converted(&workflow).graph["3"]["inputs"].clone();

    assert_eq!(inputs["cfg"], 8.0);
    assert_eq!(inputs["sampler_name"], "euler");
    assert_eq!(inputs["denoise"], 1);
}

#[test]
fn upload_buttons_saved_after_a_file_widget_are_skipped() {
    let mut workflow = txt2img();
    add_node(
        &mut workflow,
        json!({"id": 20, "type": "LoadImageMask", "mode": 0, "inputs": [],
        "outputs": [{"name": "MASK", "type": "MASK", "links": []}],
        "widgets_values": ["mask.png", "image", "green"]}),
    );

    let graph = converted(&workflow).graph;

    assert_eq!(
        graph["20"]["inputs"],
        json!({"image": "mask.png", "channel": "green"})
    );
}

#[test]
fn a_widget_turned_into_an_input_takes_the_linked_output() {
    let mut workflow = txt2img();
    add_node(
        &mut workflow,
        json!({"id": 20, "type": "PrimitiveInt", "mode": 0, "inputs": [],
        "outputs": [{"name": "INT", "type": "INT", "links": [20]}],
        "widgets_values": [1024, "fixed"]}),
    );
    node_mut(&mut workflow, 5)["inputs"] =
        json!([{"name": "width", "type": "INT", "widget": {"name": "width"}, "link": null}]);
    relink(&mut workflow, 20, (20, 0), (5, 0), "INT");

    let graph = converted(&workflow).graph;

    assert_eq!(graph["20"]["inputs"], json!({"value": 1024}));
    assert_eq!(graph["5"]["inputs"]["width"], json!(["20", 0]));
    assert_eq!(
        graph["5"]["inputs"]["height"], 512,
        "the other widgets keep their values"
    );
}

#[test]
fn a_reroute_is_followed_to_its_source_and_dropped() {
    let mut workflow = txt2img();
    add_node(
        &mut workflow,
        json!({"id": 30, "type": "Reroute", "mode": 0,
        "inputs": [{"name": "", "type": "*", "link": null}],
        "outputs": [{"name": "", "type": "VAE", "links": [31]}]}),
    );
    relink(&mut workflow, 30, (4, 2), (30, 0), "VAE");
    relink(&mut workflow, 31, (30, 0), (8, 1), "VAE");

    let conversion = converted(&workflow);

    assert_eq!(conversion.graph["8"]["inputs"]["vae"], json!(["4", 2]));
    assert!(!conversion.graph.contains_key("30"));
    let dropped = ConversionNote::Dropped {
        node: "30".into(),
        node_type: "Reroute".into(),
    };
    assert!(conversion.notes.contains(&dropped));
}

#[test]
fn a_primitive_node_gives_its_value_to_the_widget_it_feeds() {
    let mut workflow = txt2img();
    add_node(
        &mut workflow,
        json!({"id": 40, "type": "PrimitiveNode", "mode": 0, "inputs": [],
        "outputs": [{"name": "INT", "type": "INT", "widget": {"name": "seed"}, "links": [40]}],
        "widgets_values": [777, "fixed"]}),
    );
    node_mut(&mut workflow, 3)["inputs"]
        .as_array_mut()
        .expect("inputs")
        .push(json!({"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": null}));
    relink(&mut workflow, 40, (40, 0), (3, 4), "INT");

    let graph = converted(&workflow).graph;

    assert_eq!(graph["3"]["inputs"]["seed"], 777);
    assert!(!graph.contains_key("40"));
}

#[test]
fn a_muted_node_is_left_out_and_what_it_fed_gets_nothing() {
    let mut workflow = txt2img();
    node_mut(&mut workflow, 7)["mode"] = json!(2);

    let conversion = converted(&workflow);

    assert!(!conversion.graph.contains_key("7"));
    assert!(conversion.graph["3"]["inputs"].get("negative").is_none());
    assert!(conversion.notes.contains(&ConversionNote::Muted {
        node: "7".into(),
        node_type: "CLIPTextEncode".into()
    }));
    assert!(conversion.notes.contains(&ConversionNote::Unfed {
        node: "3".into(),
        input: "negative".into()
    }));
}

#[test]
fn a_bypassed_node_passes_each_output_its_input_of_the_same_type() {
    let mut workflow = txt2img();
    add_node(
        &mut workflow,
        json!({"id": 10, "type": "LoraLoader", "mode": 4,
        "inputs": [{"name": "model", "type": "MODEL", "link": null},
                   {"name": "clip", "type": "CLIP", "link": null}],
        "outputs": [{"name": "MODEL", "type": "MODEL", "links": [12]},
                    {"name": "CLIP", "type": "CLIP", "links": [13]}],
        "widgets_values": ["style.safetensors", 1, 1]}),
    );
    relink(&mut workflow, 10, (4, 0), (10, 0), "MODEL");
    relink(&mut workflow, 11, (4, 1), (10, 1), "CLIP");
    relink(&mut workflow, 12, (10, 0), (3, 0), "MODEL");
    relink(&mut workflow, 13, (10, 1), (6, 0), "CLIP");

    let conversion = converted(&workflow);

    assert!(!conversion.graph.contains_key("10"));
    assert_eq!(conversion.graph["3"]["inputs"]["model"], json!(["4", 0]));
    assert_eq!(conversion.graph["6"]["inputs"]["clip"], json!(["4", 1]));
}

#[test]
fn notes_are_dropped() {
    let mut workflow = txt2img();
    add_node(
        &mut workflow,
        json!({"id": 50, "type": "Note", "mode": 0, "inputs": [], "outputs": [],
        "widgets_values": ["read me"]}),
    );
    add_node(
        &mut workflow,
        json!({"id": 51, "type": "MarkdownNote", "mode": 0, "inputs": [],
        "outputs": [], "widgets_values": ["# read me"]}),
    );

    let conversion = converted(&workflow);

    assert_eq!(conversion.graph.len(), 7);
    let dropped: Vec<_> = conversion
        .notes
        .iter()
        .filter(|note| matches!(note, ConversionNote::Dropped { .. }))
        .collect();
    assert_eq!(dropped.len(), 2);
}

#[test]
fn an_unknown_node_type_is_an_error_naming_the_node_and_the_type() {
    let mut workflow = txt2img();
    add_node(
        &mut workflow,
        json!({"id": 60, "type": "FancyUpscaler", "title": "Make it big",
        "mode": 0, "inputs": [], "outputs": []}),
    );

    let error = convert::ui_to_api(&workflow, &object_info()).expect_err("unknown type");

    assert_eq!(
        error,
        ConvertError::UnknownNodeType {
            node: "60".into(),
            title: "Make it big".into(),
            node_type: "FancyUpscaler".into()
        }
    );
    assert!(error.to_string().contains("node 60") && error.to_string().contains("FancyUpscaler"));
}

#[test]
fn a_muted_node_of_an_unknown_type_is_no_error() {
    let mut workflow = txt2img();
    add_node(
        &mut workflow,
        json!({"id": 60, "type": "FancyUpscaler", "mode": 2,
        "inputs": [], "outputs": []}),
    );

    assert_eq!(converted(&workflow).graph.len(), 7);
}

#[test]
fn a_link_from_an_output_the_backend_node_lacks_is_an_error() {
    let mut workflow = txt2img();
    relink(&mut workflow, 80, (5, 3), (3, 3), "LATENT");

    let error = convert::ui_to_api(&workflow, &object_info()).expect_err("missing output");

    assert!(
        matches!(error, ConvertError::MissingOutput { ref node, slot: 3, outputs: 1, .. } if node == "3"),
        "{error}"
    );
}

#[test]
fn reroutes_in_a_circle_are_an_error_not_a_hang() {
    let mut workflow = txt2img();
    for id in [70, 71] {
        add_node(
            &mut workflow,
            json!({"id": id, "type": "Reroute", "mode": 0,
            "inputs": [{"name": "", "type": "*", "link": null}],
            "outputs": [{"name": "", "type": "*", "links": []}]}),
        );
    }
    relink(&mut workflow, 70, (70, 0), (71, 0), "*");
    relink(&mut workflow, 71, (71, 0), (70, 0), "*");
    relink(&mut workflow, 72, (70, 0), (8, 1), "VAE");

    let error = convert::ui_to_api(&workflow, &object_info()).expect_err("cycle");

    assert!(
        matches!(error, ConvertError::LinkCycle { ref node, .. } if node == "8"),
        "{error}"
    );
}

#[test]
fn only_editor_exports_count_as_ui_format() {
    let api = json!({"3": {"class_type": "KSampler", "inputs": {}}});

    assert!(convert::is_ui_format(&txt2img()));
    assert!(!convert::is_ui_format(&api));
    let error = convert::ui_to_api(&api, &object_info()).expect_err("api format");
    assert!(matches!(error, ConvertError::NotUiFormat { .. }));
}
