//! ComfyUI's own node classes that gateway tests use: the image nodes of the
//! model-free workflows and the standard text-to-image graph.

use serde_json::json;

use super::{Behaviour, ClassSpec, NodeClass};

const SAMPLERS: &[&str] = &[
    "euler",
    "euler_cfg_pp",
    "euler_ancestral",
    "euler_ancestral_cfg_pp",
    "heun",
    "heunpp2",
    "dpm_2",
    "dpm_2_ancestral",
    "lms",
    "dpm_fast",
    "dpm_adaptive",
    "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp",
    "dpmpp_sde",
    "dpmpp_sde_gpu",
    "dpmpp_2m",
    "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde",
    "dpmpp_2m_sde_gpu",
    "dpmpp_3m_sde",
    "dpmpp_3m_sde_gpu",
    "ddpm",
    "lcm",
    "ipndm",
    "ipndm_v",
    "deis",
    "res_multistep",
    "gradient_estimation",
    "er_sde",
    "ddim",
    "uni_pc",
    "uni_pc_bh2",
];

const SCHEDULERS: &[&str] = &[
    "simple",
    "sgm_uniform",
    "karras",
    "exponential",
    "ddim_uniform",
    "beta",
    "normal",
    "linear_quadratic",
    "kl_optimal",
];

fn spec(input: serde_json::Value, output: Vec<&'static str>, category: &'static str) -> ClassSpec {
    ClassSpec {
        input,
        output,
        output_name: None,
        display_name: "",
        description: "",
        python_module: "nodes",
        category,
        output_node: false,
    }
}

pub(super) fn classes(checkpoints: &[String]) -> Vec<NodeClass> {
    let size = json!(["INT", {"default": 512, "min": 1, "max": 16384, "step": 1}]);
    let latent_size = json!(["INT", {"default": 512, "min": 16, "max": 16384, "step": 8}]);
    let batch = json!(["INT", {"default": 1, "min": 1, "max": 4096}]);
    let save_hidden = json!({"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"});

    vec![
        NodeClass::new(
            "EmptyImage",
            Behaviour::EmptyImage,
            ClassSpec {
                display_name: "EmptyImage",
                ..spec(
                    json!({"required": {
                        "width": size, "height": size, "batch_size": batch,
                        "color": ["INT", {"default": 0, "min": 0, "max": 16_777_215, "step": 1,
                                          "display": "color"}],
                    }}),
                    vec!["IMAGE"],
                    "image",
                )
            },
        ),
        NodeClass::new(
            "SaveImage",
            Behaviour::SaveImage,
            ClassSpec {
                display_name: "Save Image",
                description: "Saves the input images to your ComfyUI output directory.",
                output_node: true,
                ..spec(
                    json!({
                        "required": {
                            "images": ["IMAGE", {"tooltip": "The images to save."}],
                            "filename_prefix": ["STRING", {"default": "ComfyUI",
                                "tooltip": "The prefix for the file to save."}],
                        },
                        "hidden": save_hidden,
                    }),
                    vec![],
                    "image",
                )
            },
        ),
        NodeClass::new(
            "PreviewImage",
            Behaviour::PreviewImage,
            ClassSpec {
                display_name: "Preview Image",
                description: "Saves the input images to your ComfyUI output directory.",
                output_node: true,
                ..spec(
                    json!({"required": {"images": ["IMAGE"]}, "hidden": save_hidden}),
                    vec![],
                    "image",
                )
            },
        ),
        NodeClass::new(
            "LoadImage",
            Behaviour::LoadImage,
            ClassSpec {
                display_name: "Load Image",
                ..spec(
                    json!({"required": {"image": [[], {"image_upload": true}]}}),
                    vec!["IMAGE", "MASK"],
                    "image",
                )
            },
        ),
        NodeClass::new(
            "ImageInvert",
            Behaviour::ImageInvert,
            ClassSpec {
                display_name: "Invert Image",
                ..spec(
                    json!({"required": {"image": ["IMAGE"]}}),
                    vec!["IMAGE"],
                    "image",
                )
            },
        ),
        NodeClass::new(
            "CheckpointLoaderSimple",
            Behaviour::Opaque,
            ClassSpec {
                display_name: "Load Checkpoint",
                description: "Loads a diffusion model checkpoint.",
                ..spec(
                    json!({"required": {"ckpt_name": [checkpoints,
                    {"tooltip": "The name of the checkpoint (model) to load."}]}}),
                    vec!["MODEL", "CLIP", "VAE"],
                    "loaders",
                )
            },
        ),
        NodeClass::new(
            "CLIPTextEncode",
            Behaviour::Opaque,
            ClassSpec {
                display_name: "CLIP Text Encode (Prompt)",
                ..spec(
                    json!({"required": {
                        "text": ["STRING", {"multiline": true, "dynamicPrompts": true}],
                        "clip": ["CLIP"],
                    }}),
                    vec!["CONDITIONING"],
                    "conditioning",
                )
            },
        ),
        NodeClass::new(
            "EmptyLatentImage",
            Behaviour::EmptyLatent,
            ClassSpec {
                display_name: "Empty Latent Image",
                ..spec(
                    json!({"required": {"width": latent_size, "height": latent_size, "batch_size": batch}}),
                    vec!["LATENT"],
                    "latent",
                )
            },
        ),
        NodeClass::new(
            "KSampler",
            Behaviour::KSampler,
            ClassSpec {
                display_name: "KSampler",
                description: "Uses the provided model, positive and negative conditioning to denoise \
                          the latent image.",
                ..spec(
                    json!({"required": {
                        "model": ["MODEL"],
                        "seed": ["INT", {"default": 0, "min": 0, "max": u64::MAX,
                                         "control_after_generate": true}],
                        "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
                        "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1,
                                          "round": 0.01}],
                        "sampler_name": [SAMPLERS, {}],
                        "scheduler": [SCHEDULERS, {}],
                        "positive": ["CONDITIONING"],
                        "negative": ["CONDITIONING"],
                        "latent_image": ["LATENT"],
                        "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}],
                    }}),
                    vec!["LATENT"],
                    "sampling",
                )
            },
        ),
        NodeClass::new(
            "VAEDecode",
            Behaviour::VaeDecode,
            ClassSpec {
                display_name: "VAE Decode",
                ..spec(
                    json!({"required": {"samples": ["LATENT"], "vae": ["VAE"]}}),
                    vec!["IMAGE"],
                    "latent",
                )
            },
        ),
    ]
}
