//! Nodes that report progress: `KSampler`, `DarkroomSteps` and
//! `DarkroomUntilInterrupted`. Each step goes through the same hook as in
//! ComfyUI: interrupt check, then `progress_state`, previews and `progress`.

use std::time::{Duration, Instant};

use super::{Data, NodeResult, Widgets};
use crate::exec::run::{Run, Stop};
use crate::hub::Preview;
use crate::media;

pub(super) async fn sample(run: &mut Run<'_>, node_id: &str) -> Result<NodeResult, Stop> {
    let steps = Widgets::of(run, node_id).count("steps", 20).max(1);
    let latent = run.linked(node_id, "latent_image").unwrap_or(Data::Latent {
        width: 64,
        height: 64,
        batch: 1,
    });
    let (width, height) = match latent {
        Data::Latent { width, height, .. } => (width, height),
        _ => (64, 64),
    };
    let step_time = run.shared.knobs().sampler_step_time;
    for step in 1..=steps {
        run.work(step_time).await?;
        // latent2rgb-like previews: JPEG, one per step.
        let preview = run.previews.then(|| Preview {
            png: false,
            bytes: media::jpeg(
                preview_side(width),
                preview_side(height),
                shade(step, steps),
            ),
            metadata: run.emit.preview_metadata(node_id),
        });
        hook(run, node_id, step, steps, preview.as_ref())?;
    }
    Ok(NodeResult::data(latent))
}

pub(super) async fn steps(run: &mut Run<'_>, node_id: &str) -> Result<NodeResult, Stop> {
    let widgets = Widgets::of(run, node_id);
    let steps = widgets.count("steps", 5).max(1);
    let step_time = Duration::from_millis(widgets.count("step_ms", 100));
    let side = widgets.side("size", 64);
    let png = widgets.text("preview_format", "JPEG") == "PNG";

    for step in 1..=steps {
        run.work(step_time).await?;
        let frame = widgets.flag("preview", false).then(|| {
            let small = preview_side(side);
            let level = shade(step, steps);
            let bytes = if png {
                media::png(
                    u32::from(small),
                    u32::from(small),
                    [level, 96, 255 - level],
                    &[],
                )
            } else {
                media::jpeg(small, small, level)
            };
            Preview {
                png,
                bytes,
                metadata: run.emit.preview_metadata(node_id),
            }
        });
        hook(run, node_id, step, steps, frame.as_ref())?;
        if widgets.flag("progress_text", false) {
            run.emit.text(node_id, &format!("step {step}/{steps}"));
        }
    }
    let image = run
        .linked(node_id, "image")
        .unwrap_or(Data::solid(side, widgets.rgb("color", 0x33_66CC)));
    Ok(NodeResult::data(image))
}

/// Reports elapsed milliseconds against the cap every heartbeat until an
/// interrupt arrives. Real time, not scaled: this node is about waiting.
pub(super) async fn until_interrupted(
    run: &mut Run<'_>,
    node_id: &str,
) -> Result<NodeResult, Stop> {
    let widgets = Widgets::of(run, node_id);
    let cap_ms = widgets.count("max_seconds", 600) * 1000;
    let heartbeat = Duration::from_millis(widgets.count("heartbeat_ms", 250));
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
            hook(run, node_id, elapsed_ms, cap_ms, None)?;
            next_report = elapsed + heartbeat;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hook(run, node_id, cap_ms, cap_ms, None)?;
    Ok(NodeResult::data(
        run.linked(node_id, "image")
            .unwrap_or(Data::solid(8, [128; 3])),
    ))
}

/// ComfyUI's progress hook: the interrupt check comes first, so a step
/// interrupted while it slept reports nothing.
fn hook(
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

/// A level that moves with the step, so consecutive previews differ.
fn shade(step: u64, steps: u64) -> u8 {
    u8::try_from(255 * step / steps.max(1)).unwrap_or(255)
}
