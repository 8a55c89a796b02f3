//! Parameter discovery, node titles and manifests on small real-world graphs and on the
//! shipped templates: each parameter must land on the input a person would pick, and a
//! binding that cannot land must stop the template from loading, naming the binding.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] fns panic too: that is the failure message we want"
)]

use std::path::PathBuf;

use darkroom::templates::{Manifest, ParameterType, Template, TemplateError};
use serde_json::{Value, json};

fn compile(graph: &Value) -> Template {
    Template::compile("t", graph, &Manifest::default(), None).unwrap()
}

fn with_manifest(graph: &Value, manifest: &str) -> Result<Template, TemplateError> {
    Template::compile("t", graph, &Manifest::from_toml(manifest).unwrap(), None)
}

/// Where `name` lands, as `NODE.INPUT` texts; empty when the parameter does not exist.
fn bound(template: &Template, name: &str) -> Vec<String> {
    let parameter = template
        .parameters
        .iter()
        .find(|parameter| parameter.name == name);
    parameter
        .map(|parameter| parameter.bindings.iter().map(ToString::to_string).collect())
        .unwrap_or_default()
}

fn names(template: &Template) -> Vec<&str> {
    template
        .parameters
        .iter()
        .map(|parameter| parameter.name.as_str())
        .collect()
}

fn shipped_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../templates")
}

fn shipped(name: &str) -> Template {
    let dir = shipped_dir();
    let workflow: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap())
            .unwrap();
    let manifest = match std::fs::read_to_string(dir.join(format!("{name}.toml"))) {
        Ok(text) => Manifest::from_toml(&text).unwrap(),
        Err(_) => Manifest::default(),
    };
    Template::compile(name, &workflow, &manifest, None).unwrap()
}

/// ComfyUI's default graph, as the editor's "Export (API)" writes it.
fn default_graph() -> Value {
    json!({
        "3": {"class_type": "KSampler", "inputs": {"seed": 156680208700286_u64, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal", "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "v1-5-pruned-emaonly.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "beautiful scenery", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "text, watermark", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]}}
    })
}

#[test]
fn the_default_graph_has_every_common_parameter() {
    let template = compile(&default_graph());
    assert_eq!(
        names(&template),
        vec![
            "prompt",
            "negative_prompt",
            "seed",
            "steps",
            "cfg",
            "sampler_name",
            "scheduler",
            "denoise",
            "width",
            "height",
            "batch_size",
            "checkpoint"
        ]
    );
    assert_eq!(bound(&template, "prompt"), vec!["6.text"]);
    assert_eq!(bound(&template, "negative_prompt"), vec!["7.text"]);
    assert_eq!(bound(&template, "seed"), vec!["3.seed"]);
    assert_eq!(bound(&template, "width"), vec!["5.width"]);
    assert_eq!(bound(&template, "checkpoint"), vec!["4.ckpt_name"]);
    assert_eq!(template.sampler.as_deref(), Some("3"));
    let seed = &template.parameters[2];
    assert_eq!(seed.kind, ParameterType::Seed);
}

#[test]
fn prompts_follow_the_sampler_inputs_not_node_order() {
    // The negative encoder comes first by id; only the links say which is which.
    let mut graph = default_graph();
    graph["3"]["inputs"]["positive"] = json!(["7", 0]);
    graph["3"]["inputs"]["negative"] = json!(["6", 0]);
    let template = compile(&graph);
    assert_eq!(bound(&template, "prompt"), vec!["7.text"]);
    assert_eq!(bound(&template, "negative_prompt"), vec!["6.text"]);
}

#[test]
fn reroutes_lora_and_control_nets_are_traced_through() {
    let mut graph = default_graph();
    let nodes = graph.as_object_mut().unwrap();
    nodes.insert("20".into(), json!({"class_type": "LoraLoader", "inputs": {"lora_name": "style.safetensors", "strength_model": 1, "strength_clip": 1, "model": ["4", 0], "clip": ["4", 1]}}));
    nodes.insert(
        "21".into(),
        json!({"class_type": "Reroute (rgthree)", "inputs": {"": ["20", 0]}}),
    );
    nodes.insert("22".into(), json!({"class_type": "ControlNetLoader", "inputs": {"control_net_name": "canny.safetensors"}}));
    nodes.insert(
        "23".into(),
        json!({"class_type": "LoadImage", "inputs": {"image": "edges.png"}}),
    );
    nodes.insert("24".into(), json!({"class_type": "ControlNetApplyAdvanced", "inputs": {"strength": 1, "start_percent": 0, "end_percent": 1, "positive": ["6", 0], "negative": ["7", 0], "control_net": ["22", 0], "image": ["23", 0]}}));
    nodes.insert(
        "25".into(),
        json!({"class_type": "Reroute (rgthree)", "inputs": {"": ["24", 1]}}),
    );
    graph["3"]["inputs"]["model"] = json!(["21", 0]);
    graph["3"]["inputs"]["positive"] = json!(["24", 0]);
    graph["3"]["inputs"]["negative"] = json!(["25", 0]);

    let template = compile(&graph);
    assert_eq!(bound(&template, "prompt"), vec!["6.text"]);
    assert_eq!(bound(&template, "negative_prompt"), vec!["7.text"]);
    assert_eq!(bound(&template, "checkpoint"), vec!["4.ckpt_name"]);
    assert_eq!(bound(&template, "image"), vec!["23.image"]);
    assert_eq!(
        template
            .parameters
            .iter()
            .find(|parameter| parameter.name == "image")
            .unwrap()
            .kind,
        ParameterType::Image
    );
}

#[test]
fn sdxl_base_and_refiner_bind_the_first_sampler_and_both_texts() {
    let graph = json!({
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "12": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_refiner_1.0.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncodeSDXL", "inputs": {"width": 4096, "height": 4096, "crop_w": 0, "crop_h": 0, "target_width": 4096, "target_height": 4096, "text_g": "a fox", "text_l": "a fox", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "15": {"class_type": "CLIPTextEncode", "inputs": {"text": "a fox", "clip": ["12", 1]}},
        "16": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["12", 1]}},
        "10": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": "enable", "noise_seed": 721, "steps": 25, "cfg": 8, "sampler_name": "euler", "scheduler": "normal", "start_at_step": 0, "end_at_step": 20, "return_with_leftover_noise": "enable", "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "11": {"class_type": "KSamplerAdvanced", "inputs": {"add_noise": "disable", "noise_seed": 0, "steps": 25, "cfg": 8, "sampler_name": "euler", "scheduler": "normal", "start_at_step": 20, "end_at_step": 10000, "return_with_leftover_noise": "disable", "model": ["12", 0], "positive": ["15", 0], "negative": ["16", 0], "latent_image": ["10", 0]}},
        "17": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["12", 2]}},
        "19": {"class_type": "SaveImage", "inputs": {"filename_prefix": "sdxl", "images": ["17", 0]}}
    });
    let template = compile(&graph);
    assert_eq!(template.sampler.as_deref(), Some("10"));
    assert_eq!(bound(&template, "prompt"), vec!["6.text_g", "6.text_l"]);
    assert_eq!(bound(&template, "seed"), vec!["10.noise_seed"]);
    assert_eq!(bound(&template, "checkpoint"), vec!["4.ckpt_name"]);
    assert!(
        template
            .notes
            .iter()
            .any(|note| note.contains("2 samplers")),
        "{:?}",
        template.notes
    );
}

#[test]
fn a_custom_sampler_finds_its_settings_on_the_nodes_feeding_it() {
    // The shape of ComfyUI's Flux example: no negative, settings spread over helpers.
    let graph = json!({
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat holding a sign", "clip": ["11", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["10", 0]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "flux", "images": ["8", 0]}},
        "10": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "11": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl.safetensors", "clip_name2": "clip_l.safetensors", "type": "flux"}},
        "12": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
        "13": {"class_type": "SamplerCustomAdvanced", "inputs": {"noise": ["25", 0], "guider": ["22", 0], "sampler": ["16", 0], "sigmas": ["17", 0], "latent_image": ["27", 0]}},
        "16": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
        "17": {"class_type": "BasicScheduler", "inputs": {"scheduler": "simple", "steps": 20, "denoise": 1, "model": ["12", 0]}},
        "22": {"class_type": "BasicGuider", "inputs": {"model": ["12", 0], "conditioning": ["26", 0]}},
        "25": {"class_type": "RandomNoise", "inputs": {"noise_seed": 219670278747233_u64}},
        "26": {"class_type": "FluxGuidance", "inputs": {"guidance": 3.5, "conditioning": ["6", 0]}},
        "27": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}}
    });
    let template = compile(&graph);
    assert_eq!(bound(&template, "prompt"), vec!["6.text"]);
    assert_eq!(bound(&template, "negative_prompt"), Vec::<String>::new());
    assert_eq!(bound(&template, "seed"), vec!["25.noise_seed"]);
    assert_eq!(bound(&template, "steps"), vec!["17.steps"]);
    assert_eq!(bound(&template, "sampler_name"), vec!["16.sampler_name"]);
    assert_eq!(bound(&template, "scheduler"), vec!["17.scheduler"]);
    assert_eq!(bound(&template, "width"), vec!["27.width"]);
    // A UNET loader is not a checkpoint.
    assert_eq!(bound(&template, "checkpoint"), Vec::<String>::new());
}

#[test]
fn a_zeroed_negative_is_nobodys_prompt() {
    let mut graph = default_graph();
    graph.as_object_mut().unwrap().insert(
        "30".into(),
        json!({"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["6", 0]}}),
    );
    graph["3"]["inputs"]["negative"] = json!(["30", 0]);
    let template = compile(&graph);
    assert_eq!(bound(&template, "prompt"), vec!["6.text"]);
    assert_eq!(bound(&template, "negative_prompt"), Vec::<String>::new());
}

#[test]
fn a_hires_fix_second_pass_does_not_take_the_parameters() {
    let mut graph = default_graph();
    let nodes = graph.as_object_mut().unwrap();
    nodes.insert("10".into(), json!({"class_type": "LatentUpscale", "inputs": {"upscale_method": "nearest-exact", "width": 1024, "height": 1024, "crop": "disabled", "samples": ["3", 0]}}));
    nodes.insert("11".into(), json!({"class_type": "KSampler", "inputs": {"seed": 1, "steps": 12, "cfg": 8, "sampler_name": "euler", "scheduler": "normal", "denoise": 0.5, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["10", 0]}}));
    graph["8"]["inputs"]["samples"] = json!(["11", 0]);
    let template = compile(&graph);
    assert_eq!(template.sampler.as_deref(), Some("3"));
    assert_eq!(bound(&template, "steps"), vec!["3.steps"]);
    assert_eq!(bound(&template, "width"), vec!["5.width"]);
}

#[test]
fn a_seed_from_a_primitive_node_binds_the_primitive() {
    let mut graph = default_graph();
    graph.as_object_mut().unwrap().insert(
        "40".into(),
        json!({"class_type": "PrimitiveInt", "inputs": {"value": 7}}),
    );
    graph["3"]["inputs"]["seed"] = json!(["40", 0]);
    assert_eq!(bound(&compile(&graph), "seed"), vec!["40.value"]);
}

#[test]
fn node_titles_bind_and_override_discovery() {
    let mut graph = default_graph();
    graph["6"]["_meta"] = json!({"title": "subject"});
    graph["5"]["_meta"] = json!({"title": "batch_size"});
    let template = compile(&graph);
    assert_eq!(bound(&template, "subject"), vec!["6.text"]);
    // The title took the positive encoder's input: no second parameter lands there.
    assert_eq!(bound(&template, "prompt"), Vec::<String>::new());
    assert_eq!(bound(&template, "batch_size"), vec!["5.batch_size"]);
    assert_eq!(
        template
            .parameters
            .iter()
            .find(|parameter| parameter.name == "subject")
            .unwrap()
            .kind,
        ParameterType::Text
    );
}

#[test]
fn an_ambiguous_title_stops_the_template_naming_the_node() {
    let mut graph = default_graph();
    graph["5"]["_meta"] = json!({"title": "size"});
    let error = Template::compile("t", &graph, &Manifest::default(), None)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("parameter \"size\"")
            && error.contains("node 5")
            && error.contains("width, height, batch_size"),
        "{error}"
    );
}

#[test]
fn the_manifest_binds_renames_refines_and_hides() {
    let template = with_manifest(
        &default_graph(),
        r#"
        [parameters.style]
        bind = "7.text"
        [parameters.steps]
        max = 50
        default = 12
        description = "fewer is faster"
        [parameters.scheduler]
        hidden = true
        "#,
    )
    .unwrap();
    assert_eq!(bound(&template, "style"), vec!["7.text"]);
    assert_eq!(bound(&template, "negative_prompt"), Vec::<String>::new());
    let steps = template
        .parameters
        .iter()
        .find(|parameter| parameter.name == "steps")
        .unwrap();
    assert_eq!(
        (steps.max.clone(), steps.default.clone()),
        (Some(50.into()), Some(json!(12)))
    );
    assert!(!names(&template).contains(&"scheduler"));
    assert_eq!(template.hidden[0].name, "scheduler");
}

#[test]
fn bindings_that_cannot_land_are_refused_naming_the_binding() {
    let cases = [
        (
            "[parameters.x]\nbind = \"99.text\"\n",
            "binding \"99.text\" of parameter \"x\" names node \"99\"",
        ),
        (
            "[parameters.x]\nbind = \"6.txt\"\n",
            "binding \"6.txt\" of parameter \"x\" names input \"txt\"",
        ),
        (
            "[parameters.x]\nbind = \"6.clip\"\n",
            "fed by a link from node 4",
        ),
        (
            "[parameters.x]\nbind = \"6.text\"\ntype = \"integer\"\n",
            "binding \"6.text\" of parameter \"x\" lands on input \"text\"",
        ),
        (
            "[parameters.x]\nbind = \"Nope.text\"\n",
            "no node id or title matches",
        ),
        ("[parameters.x]\nbind = \"text\"\n", "must be NODE.INPUT"),
        (
            "[parameters.nothing]\nmax = 3\n",
            "parameter \"nothing\" is in the manifest without `bind`",
        ),
        (
            "[parameters.steps]\ndefault = \"many\"\n",
            "parameter \"steps\" has a default it cannot take",
        ),
    ];
    for (manifest, expected) in cases {
        let error = with_manifest(&default_graph(), manifest)
            .unwrap_err()
            .to_string();
        assert!(error.contains(expected), "{manifest}: {error}");
    }
}

#[test]
fn a_title_shared_by_two_nodes_must_be_bound_by_id() {
    let mut graph = default_graph();
    graph["6"]["_meta"] = json!({"title": "Encoder"});
    graph["7"]["_meta"] = json!({"title": "Encoder"});
    let error = with_manifest(&graph, "[parameters.x]\nbind = \"Encoder.text\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("which 2 nodes have (6, 7)"), "{error}");
}

#[test]
fn shipped_text_to_image_templates_bind_the_standard_graph() {
    for name in ["txt2img-sd15", "txt2img-sdxl"] {
        let template = shipped(name);
        assert_eq!(bound(&template, "prompt"), vec!["6.text"], "{name}");
        assert_eq!(
            bound(&template, "negative_prompt"),
            vec!["7.text"],
            "{name}"
        );
        assert_eq!(bound(&template, "seed"), vec!["3.seed"], "{name}");
        assert_eq!(
            bound(&template, "checkpoint"),
            vec!["4.ckpt_name"],
            "{name}"
        );
        assert_eq!(bound(&template, "width"), vec!["5.width"], "{name}");
        assert!(
            !names(&template).contains(&"denoise"),
            "{name}: denoise is hidden"
        );
    }
}

#[test]
fn shipped_image_templates_take_uploaded_images() {
    let img2img = shipped("img2img-sd15");
    assert_eq!(bound(&img2img, "image"), vec!["10.image"]);
    assert_eq!(bound(&img2img, "denoise"), vec!["3.denoise"]);
    assert_eq!(
        bound(&img2img, "width"),
        Vec::<String>::new(),
        "the size is the image's"
    );

    let blend = shipped("blend-images");
    assert_eq!(names(&blend), vec!["image", "mode", "opacity", "overlay"]);
    assert_eq!(bound(&blend, "overlay"), vec!["2.image"]);
    let kinds: Vec<ParameterType> = blend
        .parameters
        .iter()
        .map(|parameter| parameter.kind)
        .collect();
    assert_eq!(
        kinds,
        vec![
            ParameterType::Image,
            ParameterType::Choice,
            ParameterType::Number,
            ParameterType::Image
        ]
    );

    assert_eq!(bound(&shipped("invert-image"), "image"), vec!["1.image"]);
    assert_eq!(
        bound(&shipped("upscale-model"), "upscale_model"),
        vec!["2.model_name"]
    );
    assert_eq!(
        names(&shipped("solid-color")),
        vec!["color", "count", "height", "width"]
    );
}

#[test]
fn every_shipped_template_loads() {
    let mut count = 0;
    for entry in std::fs::read_dir(shipped_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "json")
        {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let template = shipped(&name);
            assert!(!template.parameters.is_empty(), "{name} has no parameters");
            count += 1;
        }
    }
    assert!(count >= 8, "only {count} shipped templates");
}

#[test]
fn template_show_prints_each_parameter_and_where_it_lands() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_darkroom"))
        .args(["template", "show"])
        .arg(shipped_dir().join("txt2img-sd15.json"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = String::from_utf8(output.stdout).unwrap();
    assert!(
        report.starts_with("txt2img-sd15: Text to image (Stable Diffusion 1.5)"),
        "{report}"
    );
    assert!(report.contains("prompt           text"), "{report}");
    assert!(
        report.contains("bound to  text of node 6 (CLIPTextEncode \"Positive prompt\")"),
        "{report}"
    );
    assert!(
        report.contains("discovery: text encoder 6 feeding sampler 3's positive input"),
        "{report}"
    );
    assert!(
        report.contains("steps            integer  default 20  at most 150"),
        "{report}"
    );
    assert!(
        report.contains("hidden (the graph keeps its value):\n  denoise"),
        "{report}"
    );
}
