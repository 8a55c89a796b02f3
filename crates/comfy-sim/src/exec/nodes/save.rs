//! Output nodes that write files: `SaveImage`, `PreviewImage` and
//! `DarkroomMultiOutput`. Names follow ComfyUI: `{prefix}_{counter:05}_.png`
//! with the counter taken from the folder, the subfolder from the prefix.

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use super::{Data, NodeResult, Widgets, image_input};
use crate::exec::run::{Run, Stop};
use crate::files::Dirs;
use crate::media;

/// Written files are capped at this many pixels a side; the size a graph
/// asks for is still what flows through it.
const MAX_FILE_SIDE: u32 = 1024;

pub(super) fn save_image(run: &Run<'_>, node_id: &str, prefix: &str) -> Result<NodeResult, Stop> {
    let image = image_input(run, node_id, "images");
    let pad_to = run.shared.knobs().output_bytes;
    let images = save_images(
        run,
        &image,
        &run.shared.dirs.output,
        prefix,
        "output",
        pad_to,
    )?;
    Ok(NodeResult::ui(json!({"images": images})))
}

pub(super) fn preview_image(run: &Run<'_>, node_id: &str) -> Result<NodeResult, Stop> {
    let image = image_input(run, node_id, "images");
    let prefix = format!("ComfyUI{}", temp_suffix(run, node_id));
    let images = save_images(run, &image, &run.shared.dirs.temp, &prefix, "temp", 0)?;
    Ok(NodeResult::ui(json!({"images": images})))
}

pub(super) async fn multi_output(run: &mut Run<'_>, node_id: &str) -> Result<NodeResult, Stop> {
    run.work(run.shared.knobs().node_time).await?;
    let widgets = Widgets::of(run, node_id);
    let side = widgets.side("size", 16);
    let image = run
        .linked(node_id, "image")
        .unwrap_or(Data::solid(side, widgets.rgb("color", 0x22_AA44)));
    let prefix = widgets.text("filename_prefix", "darkroom/multi");
    let images = save_images(run, &image, &run.shared.dirs.output, &prefix, "output", 0)?;

    // The WAV takes the first image's counter, as the real node names it.
    let first = images
        .first()
        .and_then(|item| item["filename"].as_str())
        .unwrap_or_default();
    let wav_name = first
        .strip_suffix(".png")
        .map(|stem| format!("{stem}.wav"))
        .unwrap_or_default();
    let subfolder = images
        .first()
        .map_or_else(|| json!(""), |item| item["subfolder"].clone());
    let folder = run
        .shared
        .dirs
        .output
        .join(subfolder.as_str().unwrap_or_default());
    let audio_ms = u32::try_from(widgets.count("audio_ms", 100)).unwrap_or(100);
    fs::write(folder.join(&wav_name), media::wav(audio_ms)).map_err(io_failure)?;

    Ok(NodeResult::ui(json!({
        "images": images,
        "text": [widgets.0.get("text").cloned().unwrap_or_default()],
        "audio": [{"filename": wav_name, "subfolder": subfolder, "type": "output"}],
        "animated": [false],
    })))
}

/// `PreviewImage`'s `_temp_` plus five random letters, kept per node id.
fn temp_suffix(run: &Run<'_>, node_id: &str) -> String {
    let mut state = run.shared.state();
    let suffix = state
        .temp_suffixes
        .entry(node_id.to_owned())
        .or_insert_with(|| {
            let letters: String = uuid::Uuid::new_v4().as_bytes()[..5]
                .iter()
                .map(|byte| char::from(b'a' + byte % 26))
                .collect();
            format!("_temp_{letters}")
        });
    suffix.clone()
}

/// Writes one PNG per batch item, each padded to `pad_to` bytes when that is
/// more than its size; returns the UI `images` list.
fn save_images(
    run: &Run<'_>,
    image: &Data,
    root: &Path,
    prefix: &str,
    kind: &str,
    pad_to: u64,
) -> Result<Vec<Value>, Stop> {
    let (width, height, batch, rgb) = match image {
        Data::Image {
            width,
            height,
            batch,
            rgb,
        } => (*width, *height, *batch, *rgb),
        _ => (64, 64, 1, [0; 3]),
    };
    let target = Dirs::save_path(root, prefix, width, height).map_err(|message| Stop::Failed {
        kind: "Exception",
        message,
    })?;
    fs::create_dir_all(&target.folder).map_err(io_failure)?;

    // ComfyUI embeds the prompt as PNG text; so does the simulator.
    let metadata = [("prompt", Value::Object(run.item.prompt.clone()).to_string())];
    let png = media::png(
        width.min(MAX_FILE_SIDE),
        height.min(MAX_FILE_SIDE),
        rgb,
        &metadata,
    );
    let mut images = Vec::new();
    for counter in target.counter..target.counter + batch {
        let filename = format!("{}_{counter:05}_.png", target.base);
        let path = target.folder.join(&filename);
        if pad_to > png.len() as u64 {
            media::write_padded_png(&path, &png, pad_to).map_err(io_failure)?;
        } else {
            fs::write(&path, &png).map_err(io_failure)?;
        }
        images.push(json!({"filename": filename, "subfolder": target.subfolder, "type": kind}));
    }
    Ok(images)
}

fn io_failure(error: std::io::Error) -> Stop {
    Stop::Failed {
        kind: "OSError",
        message: error.to_string(),
    }
}
