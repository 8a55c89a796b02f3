//! Live-adjustable behaviour of the simulator: timing, faults and version.
//!
//! Every knob is read at the moment it matters (a node starting, a history
//! write, a websocket send), so a test can change one while a prompt runs.
//! This module only holds values; it must not act on them.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The simulator's adjustable behaviour. Durations travel as milliseconds in
/// JSON (`POST /_sim/knobs`), under the field names shown in `rename`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Knobs {
    /// Simulated time of one node without steps (a loader, a decoder, a save).
    #[serde(rename = "node_time_ms", with = "millis")]
    pub node_time: Duration,
    /// Simulated time of one `KSampler` step.
    #[serde(rename = "sampler_step_ms", with = "millis")]
    pub sampler_step_time: Duration,
    /// Multiplies every simulated duration, including `DarkroomSteps.step_ms`;
    /// `0.0` makes execution instant, `10.0` ten times slower.
    pub time_scale: f64,
    /// Delay between `execution_success` (or the error message) and the
    /// history entry appearing. Real ComfyUI has a short gap here; a large
    /// lag makes a gateway that races it fail reliably.
    #[serde(rename = "history_lag_ms", with = "millis")]
    pub history_lag: Duration,
    /// Sockets stay open but receive nothing; prompts still run to the end.
    pub zombie: bool,
    /// Delay before `/view` answers.
    #[serde(rename = "view_delay_ms", with = "millis")]
    pub view_delay: Duration,
    /// A `POST /prompt` waits this long, then fails with a 503 and queues nothing: a post
    /// that never reaches the queue, with the gateway's side waiting meanwhile (for a
    /// gateway killed between choosing a prompt id and posting it). Zero: off.
    #[serde(rename = "prompt_stall_ms", with = "millis")]
    pub prompt_stall: Duration,
    /// The next `POST /prompt` is rejected with a 400 and node errors.
    pub fail_next_validation: bool,
    /// The next prompt to start fails with an `execution_error`.
    pub fail_next_execution: Option<InjectedFailure>,
    /// Reported by `/system_stats`.
    pub comfyui_version: String,
    /// Sampler previews, like `--preview-method latent2rgb`. A prompt's
    /// `extra_data.preview_method` overrides it, as in newer ComfyUI.
    pub previews: bool,
    /// When an old socket whose clientId was taken over closes, remove the
    /// new socket too, as ComfyUI does (issue #16010). Off by default.
    pub stale_close_evicts: bool,
    /// Every file `SaveImage` writes is padded to this many bytes (0: off)
    /// with a private ancillary PNG chunk, so it stays a valid PNG of the
    /// same picture: a job with an output of hundreds of megabytes.
    pub output_bytes: u64,
}

/// Which node of the next prompt fails, and with what message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InjectedFailure {
    /// Node id to fail at; `None` fails the first node that really executes.
    pub node: Option<String>,
    /// The `RuntimeError` message.
    pub message: String,
}

impl Default for InjectedFailure {
    fn default() -> Self {
        Self {
            node: None,
            message: "simulated failure".to_owned(),
        }
    }
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            node_time: Duration::from_millis(2),
            sampler_step_time: Duration::from_millis(20),
            time_scale: 1.0,
            history_lag: Duration::ZERO,
            zombie: false,
            view_delay: Duration::ZERO,
            prompt_stall: Duration::ZERO,
            fail_next_validation: false,
            fail_next_execution: None,
            comfyui_version: "0.3.75".to_owned(),
            previews: false,
            stale_close_evicts: false,
            output_bytes: 0,
        }
    }
}

impl Knobs {
    /// Applies a partial JSON object: fields present replace the current
    /// values, fields absent keep them.
    ///
    /// # Errors
    ///
    /// Fails when the patch is not an object, names an unknown knob or holds
    /// a value of the wrong type; the knobs are then left unchanged.
    pub fn apply_patch(&mut self, patch: &Value) -> Result<(), serde_json::Error> {
        let mut merged = serde_json::to_value(&*self)?;
        if let (Value::Object(current), Value::Object(changes)) = (&mut merged, patch) {
            for (key, value) in changes {
                current.insert(key.clone(), value.clone());
            }
        } else {
            return Err(serde::de::Error::custom(
                "knobs patch must be a JSON object",
            ));
        }
        *self = serde_json::from_value(merged)?;
        Ok(())
    }

    /// Scales a simulated duration by `time_scale`.
    pub(crate) fn scaled(&self, duration: Duration) -> Duration {
        duration.mul_f64(self.time_scale.max(0.0))
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(u64::try_from(duration.as_millis()).unwrap_or(u64::MAX))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_changes_only_named_knobs() {
        let mut knobs = Knobs::default();
        knobs
            .apply_patch(&serde_json::json!({"history_lag_ms": 250, "zombie": true}))
            .unwrap();
        assert_eq!(knobs.history_lag, Duration::from_millis(250));
        assert!(knobs.zombie);
        assert_eq!(knobs.comfyui_version, "0.3.75");
    }

    #[test]
    fn unknown_knob_is_rejected_and_nothing_changes() {
        let mut knobs = Knobs::default();
        let result = knobs.apply_patch(&serde_json::json!({"zombie": true, "nope": 1}));
        assert!(result.is_err());
        assert!(!knobs.zombie);
    }
}
