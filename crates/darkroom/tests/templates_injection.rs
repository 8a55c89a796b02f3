//! Injection and checking without a server, against `/object_info` recorded from ComfyUI
//! 0.3.75 (`fixtures/object_info.json`): values land where their binding says, defaults
//! and drawn seeds are recorded, and the checked graph names the parameter at fault.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

use std::path::PathBuf;

use comfy::server_info::ObjectInfo;
use darkroom::templates::{Manifest, ParameterError, ParameterType, Template};
use serde_json::{Map, Value, json};

fn object_info() -> ObjectInfo {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/object_info.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn txt2img() -> Value {
    json!({
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "t"}}
    })
}

fn compile(graph: &Value, manifest: &str, info: &ObjectInfo) -> Template {
    Template::compile(
        "t",
        graph,
        &Manifest::from_toml(manifest).unwrap(),
        Some(info),
    )
    .unwrap()
}

fn params(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

#[test]
fn values_land_where_bound_and_everything_used_is_recorded() {
    let info = object_info();
    let template = compile(
        &txt2img(),
        "[parameters.seed]\ndefault = \"random\"\n",
        &info,
    );
    let specs = template.specs(Some(&info));
    let instance = template
        .instantiate(
            &specs,
            &params(json!({"prompt": "a heron", "steps": 12.0, "cfg": null})),
        )
        .unwrap();

    assert_eq!(instance.graph["6"]["inputs"]["text"], "a heron");
    assert_eq!(
        instance.graph["3"]["inputs"]["steps"], 12,
        "a whole 12.0 is the integer 12"
    );
    assert_eq!(
        instance.graph["3"]["inputs"]["cfg"], 7.0,
        "null leaves the default"
    );
    assert_eq!(instance.parameters["negative_prompt"], "blurry");
    let seed = instance.parameters["seed"].as_u64().unwrap();
    assert!(seed < 1 << 53, "a drawn seed stays exact in JavaScript");
    assert_eq!(instance.graph["3"]["inputs"]["seed"], seed);
    // The template's own graph is left as it was.
    assert_eq!(template.graph["6"]["inputs"]["text"], "a fox");
    assert!(template.check(&instance.graph, &info).is_ok());
}

#[test]
fn object_info_gives_bounds_choices_and_the_manifest_narrows_them() {
    let info = object_info();
    let template = compile(&txt2img(), "[parameters.steps]\nmax = 50\n", &info);
    let specs = template.specs(Some(&info));
    let spec = |name: &str| specs.iter().find(|spec| spec.name == name).unwrap().clone();
    assert_eq!(
        (spec("steps").min, spec("steps").max),
        (Some(1.into()), Some(50.into()))
    );
    assert_eq!(spec("width").max, Some(16384.into()));
    assert_eq!(
        spec("checkpoint").choices,
        Some(vec![json!("tiny-sd15.safetensors")])
    );
    assert!(
        spec("sampler_name")
            .choices
            .unwrap()
            .contains(&json!("euler"))
    );
    assert!(spec("prompt").multiline);

    let schema = template.json_schema(&specs);
    assert_eq!(
        schema["properties"]["seed"]["anyOf"][0]["maximum"],
        json!(u64::MAX)
    );
    assert_eq!(schema["properties"]["seed"]["anyOf"][1]["const"], "random");
    assert_eq!(schema["properties"]["steps"]["maximum"], 50);
    assert_eq!(schema["required"], json!([]));
}

#[test]
fn a_bound_value_the_backend_refuses_names_the_parameter() {
    let info = object_info();
    // The manifest allows more than the backend does: the backend's check catches it.
    let template = compile(&txt2img(), "[parameters.width]\nmax = 100000\n", &info);
    let specs = template.specs(Some(&info));
    let instance = template
        .instantiate(&specs, &params(json!({"width": 20000})))
        .unwrap();
    let unfit = template.check(&instance.graph, &info).unwrap_err();
    assert!(unfit.template.is_empty(), "{unfit:?}");
    assert_eq!(unfit.parameters.len(), 1);
    let message = unfit.parameters[0].to_string();
    assert_eq!(unfit.parameters[0].parameter(), "width");
    assert_eq!(
        message,
        "parameter \"width\" must be between 16 and 16384 on the backend, got 20000"
    );
}

#[test]
fn problems_where_no_parameter_lands_are_the_templates() {
    let info = object_info();
    let mut graph = txt2img();
    graph["8"]["inputs"]["vae"] = json!(["4", 1]);
    graph["9"]["inputs"]
        .as_object_mut()
        .unwrap()
        .remove("filename_prefix");
    graph["5"]["inputs"]["batch_size"] = json!(0);
    graph.as_object_mut().unwrap().insert(
        "20".into(),
        json!({"class_type": "EmptyImage", "inputs": {"width": -5}}),
    );
    graph.as_object_mut().unwrap().insert(
        "21".into(),
        json!({"class_type": "NoSuchNode", "inputs": {}}),
    );
    let template = compile(&graph, "[parameters.batch_size]\nhidden = true\n", &info);
    let unfit = template.check(&template.graph, &info).unwrap_err();
    assert!(unfit.parameters.is_empty(), "{unfit:?}");
    let problems = unfit.template.join("\n");
    assert!(
        problems.contains(
            "node \"5\" (EmptyLatentImage) input \"batch_size\" must be between 1 and 4096"
        ),
        "{problems}"
    );
    assert!(problems.contains("node \"8\" (VAEDecode) input \"vae\" takes VAE but is linked to a CLIP output of node 4"), "{problems}");
    assert!(
        problems
            .contains("node \"9\" (SaveImage) input \"filename_prefix\" is required and missing"),
        "{problems}"
    );
    assert!(
        problems.contains("node \"21\" has class \"NoSuchNode\""),
        "{problems}"
    );
    // Node 20 feeds no output: like ComfyUI, its values are not checked.
    assert!(!problems.contains("\"20\""), "{problems}");
}

#[test]
fn an_uploaded_image_passes_where_the_backend_lists_no_files() {
    let info = object_info();
    let graph = json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inverted"}}
    });
    let template = compile(&graph, "", &info);
    assert_eq!(template.parameters[0].kind, ParameterType::Image);
    let specs = template.specs(Some(&info));
    let id = "7f3d2c1b-9a8e-4d6f-b012-3c4d5e6f7a8b";
    let instance = template
        .instantiate(&specs, &params(json!({"image": id})))
        .unwrap();
    assert_eq!(
        instance.graph["1"]["inputs"]["image"],
        json!({"__type": "core/ASSET", "info": {"id": id}})
    );
    assert_eq!(instance.assets[0].0, "image");
    assert!(template.check(&instance.graph, &info).is_ok());
}

#[test]
fn object_info_types_refuse_a_binding_the_graph_value_would_allow() {
    let info = object_info();
    let manifest =
        Manifest::from_toml("[parameters.style]\nbind = \"3.sampler_name\"\ntype = \"text\"\n")
            .unwrap();
    // Without object_info the string value looks like text; the backend says it is a list.
    assert!(Template::compile("t", &txt2img(), &manifest, None).is_ok());
    let error = Template::compile("t", &txt2img(), &manifest, Some(&info))
        .unwrap_err()
        .to_string();
    assert!(error.contains("binding \"3.sampler_name\" of parameter \"style\" lands on input \"sampler_name\" of node 3 (KSampler), which takes one of a list (COMBO)"), "{error}");
}

#[test]
fn a_default_the_backend_lacks_is_reported_as_the_default() {
    let info = object_info();
    let mut graph = txt2img();
    graph["4"]["inputs"]["ckpt_name"] = json!("sd_xl_base_1.0.safetensors");
    let template = compile(&graph, "", &info);
    let specs = template.specs(Some(&info));
    let errors = template.instantiate(&specs, &Map::new()).unwrap_err();
    assert!(
        matches!(&errors[0], ParameterError::NotAChoice { parameter, .. } if parameter == "checkpoint")
    );
    assert!(
        errors[0]
            .to_string()
            .ends_with("got \"sd_xl_base_1.0.safetensors\" (the template's default)"),
        "{}",
        errors[0]
    );

    // A list of candidates takes the first the backend has.
    let template = compile(
        &graph,
        "[parameters.checkpoint]\ndefault = [\"sd_xl_base_1.0.safetensors\", \"tiny-sd15.safetensors\"]\n",
        &info,
    );
    let specs = template.specs(Some(&info));
    assert!(template.instantiate(&specs, &Map::new()).is_ok());
}
