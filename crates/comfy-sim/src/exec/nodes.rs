//! What each node class does when it runs, simulated: how long it takes,
//! which progress and previews it reports, which files it writes and which
//! UI result it returns. Images are described, not computed: a size, a batch
//! and one colour are enough to write real files of the right shape.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::run::{Run, Stop};
use crate::catalogue::Behaviour;
use crate::files::Dirs;
use crate::hub::Preview;
use crate::media;

/// Written files are capped at this many pixels a side; the size a graph
/// asks for is still what flows through it.
const MAX_FILE_SIDE: u32 = 1024;

/// What flows along a link.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Data {
    Image {
        width: u32,
        height: u32,
        batch: u32,
        rgb: [u8; 3],
    },
    Latent {
        width: u32,
        height: u32,
        batch: u32,
    },
    /// Models, CLIP, VAE, conditioning, masks: only passed along.
    Handle,
}

#[derive(Debug)]
pub(crate) struct NodeResult {
    pub outputs: Vec<Data>,
    pub ui: Option<Value>,
}

impl NodeResult {
    fn data(data: Data) -> Self {
        Self {
            outputs: vec![data],
            ui: None,
        }
    }

    fn ui(ui: Value) -> Self {
        Self {
            outputs: vec![],
            ui: Some(ui),
        }
    }
}

pub(crate) async fn run_node(
    run: &mut Run<'_>,
    node_id: &str,
    behaviour: Behaviour,
) -> Result<NodeResult, Stop> {
    let node_time = run.shared.knobs().node_time;
    let int = |name: &str, default: i64| {
        run.input(node_id, name)
            .and_then(Value::as_i64)
            .unwrap_or(default)
    };
    let side = |name: &str, default: i64| u32::try_from(int(name, default)).unwrap_or(1).max(1);

    let result = match behaviour {
        Behaviour::EmptyImage => {
            run.work(node_time).await?;
            NodeResult::data(Data::Image {
                width: side("width", 512),
                height: side("height", 512),
                batch: side("batch_size", 1),
                rgb: rgb(int("color", 0)),
            })
        }
        Behaviour::LoadImage => {
            run.work(node_time).await?;
            let name = run
                .input(node_id, "image")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let bytes = run
                .shared
                .dirs
                .annotated(name)
                .and_then(|path| fs::read(path).ok())
                .unwrap_or_default();
            let (width, height) = media::png_size(&bytes).unwrap_or((64, 64));
            let image = Data::Image {
                width,
                height,
                batch: 1,
                rgb: [128, 128, 128],
            };
            NodeResult {
                outputs: vec![image, Data::Handle],
                ui: None,
            }
        }
        Behaviour::ImageInvert => {
            run.work(node_time).await?;
            let image = match image_input(run, node_id, "image") {
                Data::Image {
                    width,
                    height,
                    batch,
                    rgb: [r, g, b],
                } => Data::Image {
                    width,
                    height,
                    batch,
                    rgb: [255 - r, 255 - g, 255 - b],
                },
                other => other,
            };
            NodeResult::data(image)
        }
        Behaviour::Opaque => {
            run.work(node_time).await?;
            let outputs = run
                .shared
                .catalogue
                .get(&run.class_name(node_id))
                .map_or(1, |c| c.return_types().len());
            NodeResult {
                outputs: vec![Data::Handle; outputs],
                ui: None,
            }
        }
        Behaviour::EmptyLatent => {
            run.work(node_time).await?;
            NodeResult::data(Data::Latent {
                width: side("width", 512),
                height: side("height", 512),
                batch: side("batch_size", 1),
            })
        }
        Behaviour::KSampler => sample(run, node_id).await?,
        Behaviour::VaeDecode => {
            run.work(node_time).await?;
            let (width, height, batch) = match run.linked(node_id, "samples") {
                Some(Data::Latent {
                    width,
                    height,
                    batch,
                }) => (width, height, batch),
                _ => (64, 64, 1),
            };
            NodeResult::data(Data::Image {
                width,
                height,
                batch,
                rgb: [96, 120, 160],
            })
        }
        Behaviour::SaveImage | Behaviour::PreviewImage => {
            run.work(node_time).await?;
            let image = image_input(run, node_id, "images");
            let (root, prefix, kind) = if behaviour == Behaviour::SaveImage {
                let prefix = run
                    .input(node_id, "filename_prefix")
                    .and_then(Value::as_str)
                    .unwrap_or("ComfyUI");
                (run.shared.dirs.output.clone(), prefix.to_owned(), "output")
            } else {
                (
                    run.shared.dirs.temp.clone(),
                    format!("ComfyUI{}", temp_suffix(run, node_id)),
                    "temp",
                )
            };
            let images = save_images(run, &image, &root, &prefix, kind)?;
            NodeResult::ui(json!({"images": images}))
        }
        Behaviour::Steps => steps(run, node_id).await?,
        Behaviour::Fail => {
            run.work(node_time).await?;
            if run
                .input(node_id, "fail")
                .and_then(Value::as_bool)
                .unwrap_or(true)
            {
                let message = run
                    .input(node_id, "message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Err(Stop::Failed {
                    kind: "RuntimeError",
                    message: message.to_owned(),
                });
            }
            let image = run.linked(node_id, "image").unwrap_or(Data::Image {
                width: 8,
                height: 8,
                batch: 1,
                rgb: [0; 3],
            });
            NodeResult::data(image)
        }
        Behaviour::UntilInterrupted => until_interrupted(run, node_id).await?,
        Behaviour::MultiOutput => multi_output(run, node_id).await?,
        Behaviour::Text => {
            run.work(node_time).await?;
            let text = run
                .input(node_id, "text")
                .cloned()
                .unwrap_or_else(|| json!(""));
            NodeResult::ui(json!({"text": [text]}))
        }
    };
    Ok(result)
}

fn rgb(color: i64) -> [u8; 3] {
    let color = u32::try_from(color & 0xFF_FFFF).unwrap_or(0);
    let [_, r, g, b] = color.to_be_bytes();
    [r, g, b]
}

fn image_input(run: &Run<'_>, node_id: &str, name: &str) -> Data {
    run.linked(node_id, name).unwrap_or(Data::Image {
        width: 64,
        height: 64,
        batch: 1,
        rgb: [0; 3],
    })
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

/// Writes one PNG per batch item; returns the UI `images` list.
fn save_images(
    run: &Run<'_>,
    image: &Data,
    root: &Path,
    prefix: &str,
    kind: &str,
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
        fs::write(target.folder.join(&filename), &png).map_err(io_failure)?;
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

async fn sample(run: &mut Run<'_>, node_id: &str) -> Result<NodeResult, Stop> {
    let steps = run
        .input(node_id, "steps")
        .and_then(Value::as_u64)
        .unwrap_or(20)
        .max(1);
    let latent = run.linked(node_id, "latent_image").unwrap_or(Data::Latent {
        width: 64,
        height: 64,
        batch: 1,
    });
    let step_time = run.shared.knobs().sampler_step_time;
    let (width, height) = match latent {
        Data::Latent { width, height, .. } => (width, height),
        _ => (64, 64),
    };
    for step in 1..=steps {
        run.work(step_time).await?;
        let preview = run.previews.then(|| Preview {
            png: false,
            bytes: media::jpeg(
                preview_side(width),
                preview_side(height),
                shade(step, steps),
            ),
            metadata: run.emit.preview_metadata(node_id),
        });
        progress(run, node_id, step, steps, preview.as_ref())?;
    }
    Ok(NodeResult::data(latent))
}

async fn steps(run: &mut Run<'_>, node_id: &str) -> Result<NodeResult, Stop> {
    let int = |name: &str, default: u64| {
        run.input(node_id, name)
            .and_then(Value::as_u64)
            .unwrap_or(default)
    };
    let flag = |name: &str| {
        run.input(node_id, name)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let (steps, step_ms, size, color) = (
        int("steps", 5).max(1),
        int("step_ms", 100),
        int("size", 64),
        int("color", 0x33_66CC),
    );
    let (preview, progress_text) = (flag("preview"), flag("progress_text"));
    let png = run.input(node_id, "preview_format").and_then(Value::as_str) == Some("PNG");
    let side = u32::try_from(size).unwrap_or(64);

    for step in 1..=steps {
        run.check_interrupt()?;
        run.work(Duration::from_millis(step_ms)).await?;
        let frame = preview.then(|| {
            let small = preview_side(side);
            let bytes = if png {
                media::png(
                    u32::from(small),
                    u32::from(small),
                    [shade(step, steps), 96, 255 - shade(step, steps)],
                    &[],
                )
            } else {
                media::jpeg(small, small, shade(step, steps))
            };
            Preview {
                png,
                bytes,
                metadata: run.emit.preview_metadata(node_id),
            }
        });
        progress(run, node_id, step, steps, frame.as_ref())?;
        if progress_text {
            run.emit.text(node_id, &format!("step {step}/{steps}"));
        }
    }
    let image = run.linked(node_id, "image").unwrap_or(Data::Image {
        width: side,
        height: side,
        batch: 1,
        rgb: rgb(i64::try_from(color).unwrap_or(0)),
    });
    Ok(NodeResult::data(image))
}

async fn until_interrupted(run: &mut Run<'_>, node_id: &str) -> Result<NodeResult, Stop> {
    let int = |name: &str, default: u64| {
        run.input(node_id, name)
            .and_then(Value::as_u64)
            .unwrap_or(default)
    };
    let cap_ms = int("max_seconds", 600) * 1000;
    let heartbeat = Duration::from_millis(int("heartbeat_ms", 250));
    let started = Instant::now();
    let mut next_report = Duration::ZERO;
    loop {
        run.check_interrupt()?;
        let elapsed = started.elapsed();
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if elapsed_ms >= cap_ms {
            break;
        }
        if elapsed >= next_report {
            progress(run, node_id, elapsed_ms, cap_ms, None)?;
            next_report = elapsed + heartbeat;
        }
        // Real time, not scaled: this node is about waiting for an interrupt.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    progress(run, node_id, cap_ms, cap_ms, None)?;
    let image = run.linked(node_id, "image").unwrap_or(Data::Image {
        width: 8,
        height: 8,
        batch: 1,
        rgb: [128; 3],
    });
    Ok(NodeResult::data(image))
}

async fn multi_output(run: &mut Run<'_>, node_id: &str) -> Result<NodeResult, Stop> {
    run.work(run.shared.knobs().node_time).await?;
    let int = |name: &str, default: i64| {
        run.input(node_id, name)
            .and_then(Value::as_i64)
            .unwrap_or(default)
    };
    let size = u32::try_from(int("size", 16)).unwrap_or(16);
    let image = run.linked(node_id, "image").unwrap_or(Data::Image {
        width: size,
        height: size,
        batch: 1,
        rgb: rgb(int("color", 0x22_AA44)),
    });
    let prefix = run
        .input(node_id, "filename_prefix")
        .and_then(Value::as_str)
        .unwrap_or("darkroom/multi")
        .to_owned();
    let root = run.shared.dirs.output.clone();

    let images = save_images(run, &image, &root, &prefix, "output")?;
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
        .map(|item| item["subfolder"].clone())
        .unwrap_or_else(|| json!(""));
    let folder = root.join(subfolder.as_str().unwrap_or_default());
    let audio_ms = u32::try_from(int("audio_ms", 100)).unwrap_or(100);
    fs::write(folder.join(&wav_name), media::wav(audio_ms)).map_err(io_failure)?;

    let text = run
        .input(node_id, "text")
        .cloned()
        .unwrap_or_else(|| json!(""));
    Ok(NodeResult::ui(json!({
        "images": images,
        "text": [text],
        "audio": [{"filename": wav_name, "subfolder": subfolder, "type": "output"}],
        "animated": [false],
    })))
}

/// The progress hook: interrupt check, then the messages.
fn progress(
    run: &mut Run<'_>,
    node_id: &str,
    value: u64,
    max: u64,
    preview: Option<&Preview>,
) -> Result<(), Stop> {
    run.check_interrupt()?;
    run.emit.progress(node_id, value, max, preview);
    Ok(())
}

fn preview_side(side: u32) -> u16 {
    u16::try_from(side.clamp(8, 512)).unwrap_or(64)
}

fn shade(step: u64, steps: u64) -> u8 {
    u8::try_from(255 * step / steps.max(1)).unwrap_or(255)
}
