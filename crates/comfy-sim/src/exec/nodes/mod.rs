//! What each node class does when it runs, simulated: how long it takes,
//! which progress and previews it reports, which files it writes and which
//! UI result it returns. Images are described, not computed: a size, a batch
//! and one colour are enough to write real files of the right shape.

mod progress;
mod save;

use serde_json::{Map, Value, json};

use super::run::{Run, Stop};
use crate::catalogue::Behaviour;
use crate::media;

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

impl Data {
    fn solid(side: u32, rgb: [u8; 3]) -> Self {
        Self::Image {
            width: side,
            height: side,
            batch: 1,
            rgb,
        }
    }
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

/// A node's widget values, with the fallbacks its class declares.
struct Widgets(Map<String, Value>);

impl Widgets {
    fn of(run: &Run<'_>, node_id: &str) -> Self {
        let inputs = run.item.prompt[node_id]["inputs"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        Self(inputs)
    }

    fn int(&self, name: &str, default: i64) -> i64 {
        self.0.get(name).and_then(Value::as_i64).unwrap_or(default)
    }

    fn count(&self, name: &str, default: u64) -> u64 {
        self.0.get(name).and_then(Value::as_u64).unwrap_or(default)
    }

    /// A size in pixels or a batch size: at least 1.
    fn side(&self, name: &str, default: u32) -> u32 {
        self.0
            .get(name)
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(default)
            .max(1)
    }

    fn flag(&self, name: &str, default: bool) -> bool {
        self.0.get(name).and_then(Value::as_bool).unwrap_or(default)
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    }

    fn rgb(&self, name: &str, default: i64) -> [u8; 3] {
        let color = u32::try_from(self.int(name, default) & 0xFF_FFFF).unwrap_or(0);
        let [_, r, g, b] = color.to_be_bytes();
        [r, g, b]
    }
}

pub(crate) async fn run_node(
    run: &mut Run<'_>,
    node_id: &str,
    behaviour: Behaviour,
) -> Result<NodeResult, Stop> {
    match behaviour {
        Behaviour::KSampler => return progress::sample(run, node_id).await,
        Behaviour::Steps => return progress::steps(run, node_id).await,
        Behaviour::UntilInterrupted => return progress::until_interrupted(run, node_id).await,
        Behaviour::MultiOutput => return save::multi_output(run, node_id).await,
        _ => {}
    }

    // Everything else takes one plain node's time and then answers at once.
    run.work(run.shared.knobs().node_time).await?;
    let widgets = Widgets::of(run, node_id);
    match behaviour {
        Behaviour::EmptyImage => Ok(NodeResult::data(Data::Image {
            width: widgets.side("width", 512),
            height: widgets.side("height", 512),
            batch: widgets.side("batch_size", 1),
            rgb: widgets.rgb("color", 0),
        })),
        Behaviour::LoadImage => Ok(load_image(run, &widgets)),
        Behaviour::ImageInvert => Ok(NodeResult::data(invert(image_input(run, node_id, "image")))),
        Behaviour::EmptyLatent => Ok(NodeResult::data(Data::Latent {
            width: widgets.side("width", 512),
            height: widgets.side("height", 512),
            batch: widgets.side("batch_size", 1),
        })),
        Behaviour::VaeDecode => Ok(NodeResult::data(decode(run.linked(node_id, "samples")))),
        Behaviour::SaveImage => {
            save::save_image(run, node_id, &widgets.text("filename_prefix", "ComfyUI"))
        }
        Behaviour::PreviewImage => save::preview_image(run, node_id),
        Behaviour::Fail if widgets.flag("fail", true) => Err(Stop::Failed {
            kind: "RuntimeError",
            message: widgets.text("message", ""),
        }),
        Behaviour::Fail => Ok(NodeResult::data(
            run.linked(node_id, "image")
                .unwrap_or(Data::solid(8, [0; 3])),
        )),
        Behaviour::Text => Ok(NodeResult::ui(
            json!({"text": [widgets.0.get("text").cloned().unwrap_or_default()]}),
        )),
        _ => {
            let class = run.shared.catalogue.get(&run.class_name(node_id));
            let outputs = class.map_or(1, |class| class.return_types().len());
            Ok(NodeResult {
                outputs: vec![Data::Handle; outputs],
                ui: None,
            })
        }
    }
}

/// The uploaded file's size when it is a PNG; grey either way.
fn load_image(run: &Run<'_>, widgets: &Widgets) -> NodeResult {
    let name = widgets.text("image", "");
    let bytes = run
        .shared
        .dirs
        .annotated(&name)
        .and_then(|path| std::fs::read(path).ok())
        .unwrap_or_default();
    let (width, height) = media::png_size(&bytes).unwrap_or((64, 64));
    let image = Data::Image {
        width,
        height,
        batch: 1,
        rgb: [128; 3],
    };
    NodeResult {
        outputs: vec![image, Data::Handle],
        ui: None,
    }
}

fn invert(image: Data) -> Data {
    match image {
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
    }
}

fn decode(latent: Option<Data>) -> Data {
    match latent {
        Some(Data::Latent {
            width,
            height,
            batch,
        }) => Data::Image {
            width,
            height,
            batch,
            rgb: [96, 120, 160],
        },
        _ => Data::solid(64, [96, 120, 160]),
    }
}

fn image_input(run: &Run<'_>, node_id: &str, name: &str) -> Data {
    run.linked(node_id, name).unwrap_or(Data::solid(64, [0; 3]))
}
