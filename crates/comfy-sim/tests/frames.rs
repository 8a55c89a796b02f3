//! Progress, binary preview and text frames, uploads, and output kinds.

mod common;

use common::{Frame, Http, Socket, start, steps_preview};
use serde_json::{Value, json};

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn binaries(frames: &[Frame]) -> Vec<&Vec<u8>> {
    frames
        .iter()
        .filter_map(|frame| {
            if let Frame::Binary(bytes) = frame {
                Some(bytes)
            } else {
                None
            }
        })
        .collect()
}

#[tokio::test]
async fn legacy_previews_follow_progress_and_text_frames_follow_them() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-p").await;
    let prompt_id = http
        .queue(&steps_preview(3, 1, true, "JPEG", true), Some("client-p"))
        .await;
    let frames = socket.until_done(&prompt_id).await;

    let step: Vec<String> = frames
        .iter()
        .map(Frame::kind)
        .skip_while(|kind| kind != "progress")
        .take(4)
        .collect();
    assert_eq!(step, ["progress", "binary1", "binary3", "progress_state"]);

    let binary = binaries(&frames);
    assert_eq!(binary.len(), 6);
    let preview = binary[0];
    assert_eq!(u32_at(preview, 4), 1, "JPEG");
    assert_eq!(&preview[8..12], &[0xFF, 0xD8, 0xFF, 0xE0]);
    let text = binary[1];
    assert_eq!(u32_at(text, 4), 1);
    assert_eq!(&text[8..9], b"1");
    assert_eq!(&text[9..], b"step 1/3");
    assert_eq!(text.len(), 17);

    let progress: Vec<&Value> = frames
        .iter()
        .filter(|f| f.kind() == "progress")
        .map(Frame::data)
        .collect();
    assert_eq!(
        progress[2],
        &json!({"value": 3, "max": 3, "prompt_id": prompt_id, "node": "1"})
    );
    let entry = &http.history(&prompt_id).await[&prompt_id];
    let image = &entry["outputs"]["2"]["images"][0];
    assert_eq!(image["type"], "temp");
    assert!(
        image["filename"]
            .as_str()
            .unwrap()
            .starts_with("ComfyUI_temp_")
    );
    let path = format!(
        "/view?filename={}&type=temp&subfolder=",
        image["filename"].as_str().unwrap()
    );
    assert_eq!(http.get_bytes(&path).await.0, 200);
}

#[tokio::test]
async fn negotiated_clients_get_metadata_previews_before_progress() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-m").await;
    socket.negotiate_previews().await;
    let prompt_id = http
        .queue(&steps_preview(2, 1, true, "PNG", false), Some("client-m"))
        .await;
    let frames = socket.until_done(&prompt_id).await;

    let step: Vec<String> = frames
        .iter()
        .map(Frame::kind)
        .skip_while(|kind| kind != "binary4")
        .take(2)
        .collect();
    assert_eq!(step, ["binary4", "progress"]);
    let frame = binaries(&frames)[0];
    let length = u32_at(frame, 4) as usize;
    let metadata: Value = serde_json::from_slice(&frame[8..8 + length]).unwrap();
    assert_eq!(
        metadata,
        json!({"node_id": "1", "prompt_id": prompt_id, "display_node_id": "1",
                                "parent_node_id": null, "real_node_id": "1", "image_type": "image/png"})
    );
    assert_eq!(&frame[8 + length..8 + length + 4], b"\x89PNG");
}

#[tokio::test]
async fn sampler_previews_follow_the_knob_and_the_per_prompt_override() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-s").await;
    let graph = json!({
        "3": {"class_type": "KSampler", "inputs": {"seed": 42, "steps": 2, "cfg": 7.0, "sampler_name": "euler",
              "scheduler": "normal", "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0],
              "negative": ["7", 0], "latent_image": ["5", 0]}},
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny-sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "e2e/txt2img", "images": ["8", 0]}},
    });
    let quiet = http.queue(&graph, Some("client-s")).await;
    let frames = socket.until_done(&quiet).await;
    assert!(binaries(&frames).is_empty());
    let order: Vec<&str> = frames
        .iter()
        .filter(|frame| frame.kind() == "executing" && !frame.data()["node"].is_null())
        .map(|frame| frame.data()["node"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["4", "5", "7", "6", "3", "8", "9"]);

    sim.set_knobs(|knobs| knobs.previews = true);
    let mut reseeded = graph.clone();
    reseeded["3"]["inputs"]["seed"] = json!(43);
    let loud = http.queue(&reseeded, Some("client-s")).await;
    assert_eq!(binaries(&socket.until_done(&loud).await).len(), 2);

    reseeded["3"]["inputs"]["seed"] = json!(44);
    let body = json!({"prompt": reseeded, "client_id": "client-s", "extra_data": {"preview_method": "none"}});
    let (_, answer) = http.post("/prompt", &body).await;
    let overridden = socket
        .until_done(answer["prompt_id"].as_str().unwrap())
        .await;
    assert!(binaries(&overridden).is_empty());
}

#[tokio::test]
async fn uploads_rename_on_a_clash_and_reuse_identical_content() {
    let sim = start().await;
    let client = reqwest::Client::new();
    let upload = |bytes: &'static [u8]| {
        let part = reqwest::multipart::Part::bytes(bytes).file_name("in.png");
        let form = reqwest::multipart::Form::new()
            .part("image", part)
            .text("type", "input");
        client
            .post(format!("{}/upload/image", sim.base_url()))
            .multipart(form)
            .send()
    };
    let first: Value = upload(b"one").await.unwrap().json().await.unwrap();
    assert_eq!(
        first,
        json!({"name": "in.png", "subfolder": "", "type": "input"})
    );
    let same: Value = upload(b"one").await.unwrap().json().await.unwrap();
    assert_eq!(same["name"], "in.png");
    let other: Value = upload(b"two").await.unwrap().json().await.unwrap();
    assert_eq!(other["name"], "in (1).png");

    let http = Http::new(&sim);
    let (_, info) = http.get("/object_info/LoadImage").await;
    assert_eq!(
        info["LoadImage"]["input"]["required"]["image"][0],
        json!(["in (1).png", "in.png"])
    );
}

#[tokio::test]
async fn multi_output_and_text_nodes_report_every_output_kind() {
    let sim = start().await;
    let http = Http::new(&sim);
    let mut socket = Socket::connect(&sim, "client-o").await;
    let prompt = json!({
        "1": {"class_type": "DarkroomMultiOutput", "inputs": {"filename_prefix": "darkroom/multi",
              "text": "hello", "size": 16, "color": 2271812, "audio_ms": 100}},
        "2": {"class_type": "DarkroomText", "inputs": {"text": "just text"}},
    });
    let prompt_id = http.queue(&prompt, Some("client-o")).await;
    socket.until_done(&prompt_id).await;

    let outputs = &http.history(&prompt_id).await[&prompt_id]["outputs"];
    assert_eq!(outputs["2"], json!({"text": ["just text"]}));
    let multi = &outputs["1"];
    assert_eq!(
        multi["images"],
        json!([{"filename": "multi_00001_.png", "subfolder": "darkroom", "type": "output"}])
    );
    assert_eq!(
        multi["audio"],
        json!([{"filename": "multi_00001_.wav", "subfolder": "darkroom", "type": "output"}])
    );
    assert_eq!(multi["text"], json!(["hello"]));
    assert_eq!(multi["animated"], json!([false]));
    let (status, wav) = http
        .get_bytes("/view?filename=multi_00001_.wav&subfolder=darkroom")
        .await;
    assert_eq!(status, 200);
    assert_eq!(&wav[..4], b"RIFF");
}
