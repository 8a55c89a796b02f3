//! The executor: takes prompts from the queue one at a time and runs them,
//! then writes history in ComfyUI's order.
//!
//! The order at the end of a prompt is the point of a gateway test double:
//! the lifecycle message first, then (after the `history_lag` knob, and for
//! as long as a test holds it back) the history entry, then a `status`
//! broadcast, and only then `executing {node: null}`. A restart aborts this
//! task wherever it is.

pub(crate) mod cache;
mod events;
mod nodes;
mod order;
mod run;

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::shared::Shared;
use crate::state::{Execution, Pending, QueueItem};

pub(crate) use events::now_ms;

pub(crate) async fn worker(shared: Arc<Shared>) {
    loop {
        let item = next_item(&shared).await;
        tracing::debug!(prompt.id = %item.prompt_id, "prompt started");
        let finished = run::run(&shared, &item).await;

        let lag = shared.knobs().history_lag;
        if !lag.is_zero() {
            tokio::time::sleep(lag).await;
        }
        let mut held = shared.history_held.subscribe();
        // The sender lives in `shared`, so the wait ends only when the hold is lifted.
        let _ = held.wait_for(|held| !held).await;
        let entry = json!({
            "prompt": item.to_json(),
            "outputs": finished.outputs,
            "status": {
                "status_str": if finished.success { "success" } else { "error" },
                "completed": finished.success,
                "messages": finished.messages,
            },
            "meta": finished.meta,
        });
        {
            let mut state = shared.state();
            state.store_history(&item.prompt_id, entry);
            let finished_at = Instant::now();
            if let Some(execution) = state
                .executions
                .iter_mut()
                .rev()
                .find(|execution| execution.prompt_id == item.prompt_id)
            {
                execution.finished = Some(finished_at);
            }
            state.running = None;
            state.current_client = None;
            state.last_node = None;
            shared.broadcast_status(&state);
        }
        shared.history_written.send_modify(|count| *count += 1);
        if let Some(client) = item.client_id() {
            shared.hub.send_json(
                Some(&client),
                "executing",
                json!({"node": null, "prompt_id": item.prompt_id}),
            );
        }
        tracing::debug!(prompt.id = %item.prompt_id, success = finished.success, "prompt finished");
    }
}

/// Pops the lowest-numbered prompt, waiting for one if the queue is empty.
async fn next_item(shared: &Shared) -> Arc<QueueItem> {
    loop {
        {
            let mut state = shared.state();
            if let Some(Pending(item)) = state.pending.pop() {
                state.running = Some(Arc::clone(&item));
                state.current_client = item.client_id();
                state.executed.push(item.prompt_id.clone());
                state.executions.push(Execution {
                    prompt_id: item.prompt_id.clone(),
                    started: Instant::now(),
                    finished: None,
                });
                shared.broadcast_status(&state);
                return item;
            }
        }
        shared.work.notified().await;
    }
}
