//! Subgraphs and legacy group nodes: expanded in place, inner nodes named
//! `INSTANCE:INNER` as the editor names them.

use darkroom::templates::convert::{self, ConvertError};
use serde_json::{Value, json};

use super::workflows::{add_node, converted, node_mut, object_info, relink, remove_node, txt2img};

const PROMPT_SUBGRAPH: &str = "5f0c2c0e-0000-4000-8000-000000000001";
const OUTER_SUBGRAPH: &str = "5f0c2c0e-0000-4000-8000-000000000002";

/// A subgraph wrapping one text encoder: border inputs `clip` and `text` (the text is a
/// widget inside, so the instance shows it), border output `CONDITIONING`.
fn prompt_subgraph() -> Value {
    json!({
        "id": PROMPT_SUBGRAPH, "name": "Prompt", "version": 1,
        "inputNode": {"id": -10}, "outputNode": {"id": -20},
        "inputs": [{"id": "a", "name": "clip", "type": "CLIP", "linkIds": [101]},
                   {"id": "b", "name": "text", "type": "STRING", "linkIds": [102]}],
        "outputs": [{"id": "c", "name": "CONDITIONING", "type": "CONDITIONING", "linkIds": [103]}],
        "widgets": [],
        "nodes": [
            {"id": 1, "type": "CLIPTextEncode", "mode": 0,
             "inputs": [{"name": "clip", "type": "CLIP", "link": 101},
                        {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 102}],
             "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [103]}],
             "widgets_values": ["what the subgraph says by default"]}
        ],
        "links": [
            {"id": 101, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "CLIP"},
            {"id": 102, "origin_id": -10, "origin_slot": 1, "target_id": 1, "target_slot": 1, "type": "STRING"},
            {"id": 103, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "CONDITIONING"}
        ]
    })
}

/// The text-to-image workflow with its positive prompt node replaced by instance 20 of
/// `subgraph`, showing `text` in the format the newer editors save.
fn with_prompt_instance(subgraph: &str, definitions: Vec<Value>) -> Value {
    let mut workflow = txt2img();
    remove_node(&mut workflow, 6);
    add_node(
        &mut workflow,
        json!({"id": 20, "type": subgraph, "mode": 0,
        "inputs": [{"name": "clip", "type": "CLIP", "link": null}],
        "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}],
        "properties": {"proxyWidgets": [["-1", "text"]]},
        "widgets_values": ["a castle on a hill"]}),
    );
    relink(&mut workflow, 20, (4, 1), (20, 0), "CLIP");
    relink(&mut workflow, 21, (20, 0), (3, 1), "CONDITIONING");
    workflow["definitions"] = json!({"subgraphs": definitions});
    workflow
}

#[test]
fn a_subgraph_is_expanded_with_the_instance_values() {
    let workflow = with_prompt_instance(PROMPT_SUBGRAPH, vec![prompt_subgraph()]);

    let graph = converted(&workflow).graph;

    assert_eq!(
        graph["20:1"]["inputs"],
        json!({"text": "a castle on a hill", "clip": ["4", 1]})
    );
    assert_eq!(graph["3"]["inputs"]["positive"], json!(["20:1", 0]));
    assert!(!graph.contains_key("20"));
}

#[test]
fn an_older_instance_saves_one_value_per_border_input_that_feeds_a_widget() {
    let mut workflow = with_prompt_instance(PROMPT_SUBGRAPH, vec![prompt_subgraph()]);
    let instance = node_mut(&mut workflow, 20);
    instance["properties"] = json!({});
    instance["widgets_values"] = json!(["an old castle"]);

    let graph = converted(&workflow).graph;

    assert_eq!(graph["20:1"]["inputs"]["text"], "an old castle");
}

#[test]
fn nested_subgraphs_are_expanded_all_the_way_down() {
    // The outer subgraph holds instance 5 of the prompt subgraph and passes its border
    // straight through.
    let outer = json!({
        "id": OUTER_SUBGRAPH, "name": "Outer", "version": 1,
        "inputs": [{"name": "clip", "type": "CLIP", "linkIds": [201]}],
        "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "linkIds": [202]}],
        "nodes": [
            {"id": 5, "type": PROMPT_SUBGRAPH, "mode": 0,
             "inputs": [{"name": "clip", "type": "CLIP", "link": 201}],
             "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [202]}],
             "widgets_values": ["deep inside"]}
        ],
        "links": [
            {"id": 201, "origin_id": -10, "origin_slot": 0, "target_id": 5, "target_slot": 0, "type": "CLIP"},
            {"id": 202, "origin_id": 5, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "CONDITIONING"}
        ]
    });
    let mut workflow = with_prompt_instance(OUTER_SUBGRAPH, vec![prompt_subgraph(), outer]);
    node_mut(&mut workflow, 20)["widgets_values"] = json!([]);

    let graph = converted(&workflow).graph;

    assert_eq!(
        graph["20:5:1"]["inputs"],
        json!({"text": "deep inside", "clip": ["4", 1]})
    );
    assert_eq!(graph["3"]["inputs"]["positive"], json!(["20:5:1", 0]));
}

#[test]
fn a_subgraph_inside_itself_is_an_error() {
    let mut looping = prompt_subgraph();
    looping["nodes"]
        .as_array_mut()
        .expect("nodes")
        .push(json!({"id": 9,
        "type": PROMPT_SUBGRAPH, "mode": 0, "inputs": [], "outputs": []}));
    let workflow = with_prompt_instance(PROMPT_SUBGRAPH, vec![looping]);

    let error = convert::ui_to_api(&workflow, &object_info()).expect_err("recursion");

    assert_eq!(
        error,
        ConvertError::RecursiveSubgraph {
            node: "20:9".into(),
            subgraph: PROMPT_SUBGRAPH.into()
        }
    );
}

#[test]
fn a_group_node_is_expanded_into_its_inner_nodes() {
    // Group "Loader and prompt": a checkpoint loader feeding a text encoder. Its CLIP
    // output is used inside but also leaves the group, so the instance shows it.
    let mut workflow = txt2img();
    remove_node(&mut workflow, 4);
    remove_node(&mut workflow, 6);
    workflow["extra"]["groupNodes"] = json!({"Loader and prompt": {
        "nodes": [
            {"type": "CheckpointLoaderSimple", "index": 0, "inputs": [],
             "outputs": [{"name": "MODEL", "type": "MODEL", "links": []},
                         {"name": "CLIP", "type": "CLIP", "links": []},
                         {"name": "VAE", "type": "VAE", "links": []}],
             "widgets_values": ["inner.safetensors"]},
            {"type": "CLIPTextEncode", "index": 1,
             "inputs": [{"name": "clip", "type": "CLIP", "link": 3}],
             "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": []}],
             "widgets_values": ["inner text"]}
        ],
        "links": [[0, 1, 1, 0, 4, "CLIP"]],
        "external": [[0, 1, "CLIP"]]
    }});
    add_node(
        &mut workflow,
        json!({"id": 30, "type": "workflow>Loader and prompt", "mode": 0,
        "inputs": [],
        "outputs": [{"name": "MODEL", "type": "MODEL"}, {"name": "CLIP", "type": "CLIP"},
                    {"name": "VAE", "type": "VAE"},
                    {"name": "CONDITIONING", "type": "CONDITIONING"}],
        "widgets_values": ["tiny-sd15.safetensors", "a castle on a hill"]}),
    );
    relink(&mut workflow, 30, (30, 0), (3, 0), "MODEL");
    relink(&mut workflow, 31, (30, 1), (7, 0), "CLIP");
    relink(&mut workflow, 32, (30, 2), (8, 1), "VAE");
    relink(&mut workflow, 33, (30, 3), (3, 1), "CONDITIONING");

    let graph = converted(&workflow).graph;

    assert_eq!(
        graph["30:0"]["inputs"],
        json!({"ckpt_name": "tiny-sd15.safetensors"})
    );
    assert_eq!(
        graph["30:1"]["inputs"],
        json!({"text": "a castle on a hill", "clip": ["30:0", 1]})
    );
    assert_eq!(graph["3"]["inputs"]["model"], json!(["30:0", 0]));
    assert_eq!(graph["3"]["inputs"]["positive"], json!(["30:1", 0]));
    assert_eq!(graph["7"]["inputs"]["clip"], json!(["30:0", 1]));
    assert_eq!(graph["8"]["inputs"]["vae"], json!(["30:0", 2]));
}

#[test]
fn a_subgraph_bomb_is_refused_before_it_eats_the_memory() {
    // Level k holds ten instances of level k+1; eight levels would be 10^8 nodes from a few
    // kilobytes of JSON. The innermost level is the prompt subgraph.
    let level_id = |level: usize| format!("5f0c2c0e-0000-4000-8000-0000000001{level:02}");
    let mut definitions = vec![prompt_subgraph()];
    for level in 0..8 {
        let inner = if level == 7 {
            PROMPT_SUBGRAPH.to_owned()
        } else {
            level_id(level + 1)
        };
        let nodes: Vec<Value> = (1..=10)
            .map(|id| json!({"id": id, "type": inner, "mode": 0, "inputs": [], "outputs": [], "widgets_values": []}))
            .collect();
        definitions.push(json!({
            "id": level_id(level), "name": format!("level {level}"), "version": 1,
            "inputs": [{"name": "clip", "type": "CLIP", "linkIds": []}],
            "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "linkIds": []}],
            "nodes": nodes, "links": []
        }));
    }
    let workflow = with_prompt_instance(&level_id(0), definitions);

    let error = convert::ui_to_api(&workflow, &object_info()).expect_err("too large");

    assert!(matches!(error, ConvertError::TooLarge { .. }), "{error}");
    assert!(error.to_string().contains("more than"), "{error}");
}
