//! The progress line of a followed job: queue position while it waits, then the node
//! running (by its title when the graph names it) with its step, over a bar of the whole
//! run. Drawn on stderr only when that is a terminal and JSON was not asked for.

use std::cell::Cell;
use std::collections::HashMap;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::events::{Event, Update};

/// Bar length: the overall fraction in thousandths.
const SCALE: u64 = 1000;

#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
    /// Node id to title, from the job's graph.
    titles: HashMap<String, String>,
    /// While the event stream replays what the job, read just before, showed already: the
    /// stage the job was at. The stream starts at the job's first status, and a job
    /// followed late must not seem to go back; once the replay reaches that stage, every
    /// status shows (a job given back to the queue does go back).
    replaying: Cell<Option<u8>>,
}

/// Darkroom's state of a job or status event, or the contract's status.
fn state_of(job: &Value) -> &str {
    job["state"]
        .as_str()
        .or(job["status"].as_str())
        .unwrap_or("unknown")
}

/// A state's place in a job's life, in the order the states come.
fn stage(state: &str) -> u8 {
    match state {
        "queued" => 0,
        "dispatched" => 1,
        "running" => 2,
        "collecting" => 3,
        "canceling" => 4,
        _ => 5,
    }
}

impl Progress {
    /// A bar drawn on stderr, or a hidden one.
    pub fn new(visible: bool, titles: HashMap<String, String>) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(SCALE), target);
        let style = ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar.set_message("connecting");
        Self {
            bar,
            titles,
            replaying: Cell::new(None),
        }
    }

    pub fn update(&self, update: Update<'_>) {
        match update {
            Update::Job(job) => {
                self.replaying.set(Some(stage(state_of(job))));
                self.status(job);
                if let Some(progress) = job.get("progress").filter(|value| value.is_object()) {
                    self.progress(progress);
                }
            }
            Update::Event(Event { name, data, .. }) => match name.as_str() {
                "status" => {
                    let now = stage(state_of(data));
                    match self.replaying.get() {
                        Some(reached) if now < reached => return,
                        Some(_) => self.replaying.set(None),
                        None => {}
                    }
                    self.status(data);
                }
                "progress" => self.progress(data),
                _ => {}
            },
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }

    fn status(&self, job: &Value) {
        let state = state_of(job);
        if state == "succeeded" {
            // The last progress snapshot comes before the last nodes are done.
            self.bar.set_position(SCALE);
        }
        let message = match (state, job["queue_position"].as_u64()) {
            ("queued", Some(0)) => "queued, next in line".to_owned(),
            ("queued", Some(ahead)) => format!("queued, {ahead} ahead"),
            ("dispatched", _) => "sent to ComfyUI, waiting to start".to_owned(),
            ("collecting", _) => "saving the outputs".to_owned(),
            ("running", _) => return,
            (other, _) => other.to_owned(),
        };
        self.bar.set_message(message);
    }

    fn progress(&self, progress: &Value) {
        let fraction = progress["value"].as_f64().unwrap_or(0.0).clamp(0.0, 1.0);
        // Rounded thousandths of a fraction in [0, 1]: always fits.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.bar
            .set_position((fraction * SCALE as f64).round() as u64);
        let node = progress["current_node"].as_str();
        let class = progress["current_node_class"].as_str();
        let mut message = match (node, node.and_then(|node| self.titles.get(node))) {
            (Some(node), Some(title)) => format!("{title} (node {node})"),
            (Some(node), None) => format!("{} (node {node})", class.unwrap_or("node")),
            (None, _) => "running".to_owned(),
        };
        if let (Some(step), Some(steps)) = (progress["step"].as_u64(), progress["steps"].as_u64()) {
            message.push_str(&format!(", step {step}/{steps}"));
        }
        self.bar.set_message(message);
    }
}

/// Node id to title from `GET /api/v2/jobs/{id}/workflow`, for API-format graphs.
pub fn node_titles(answer: &Value) -> HashMap<String, String> {
    if answer["format"] != "api" {
        return HashMap::new();
    }
    let Some(nodes) = answer["workflow"].as_object() else {
        return HashMap::new();
    };
    nodes
        .iter()
        .filter_map(|(id, node)| {
            let title = node.pointer("/_meta/title")?.as_str()?;
            Some((id.clone(), title.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(bar: &Progress, state: &str) {
        let event = Event {
            name: "status".to_owned(),
            id: None,
            data: json!({ "state": state, "queue_position": 0 }),
        };
        bar.update(Update::Event(&event));
    }

    #[test]
    fn a_replayed_past_does_not_show_and_a_success_fills_the_bar() {
        let bar = Progress::new(false, HashMap::new());
        bar.update(Update::Job(&json!({ "state": "dispatched" })));
        event(&bar, "queued");
        assert_eq!(bar.bar.message(), "sent to ComfyUI, waiting to start");
        event(&bar, "dispatched");
        // Caught up: a job given back to the queue shows it.
        event(&bar, "queued");
        assert_eq!(bar.bar.message(), "queued, next in line");
        bar.update(Update::Job(&json!({
            "state": "running",
            "progress": { "value": 0.86, "current_node": "9" }
        })));
        assert_eq!(bar.bar.position(), 860);
        event(&bar, "succeeded");
        assert_eq!(bar.bar.position(), SCALE);
        assert_eq!(bar.bar.message(), "succeeded");
    }
}
