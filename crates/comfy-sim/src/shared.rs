//! The state every handler and the executor share, and the two operations
//! that touch all of it at once: broadcasting `status` and restarting.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use serde_json::json;

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::catalogue::Catalogue;
use crate::files::Dirs;
use crate::hub::{self, Hub};
use crate::knobs::Knobs;
use crate::state::SimState;

/// What [`crate::SimHandle::send_progress`] sent, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressSent {
    /// The running prompt the message named.
    pub prompt_id: String,
    /// The node it named: the one running, or empty before the first.
    pub node: String,
    /// Taken just before the message was handed to the sockets.
    pub at: Instant,
}

#[derive(Debug)]
pub(crate) struct Shared {
    state: Mutex<SimState>,
    pub knobs: Arc<Mutex<Knobs>>,
    pub hub: Hub,
    pub dirs: Dirs,
    pub catalogue: Catalogue,
    /// Wakes the executor when a prompt is queued. `notify_one` keeps a
    /// permit, so a wake-up sent while the executor is busy is not lost.
    pub work: Notify,
    /// ComfyUI's global "interrupt processing" flag.
    pub interrupt: AtomicBool,
    /// Bumped after every history write, for tests that wait on one.
    pub history_written: watch::Sender<u64>,
    /// While true, a finished prompt's history entry is held back (see
    /// [`crate::SimHandle::hold_history`]).
    pub history_held: watch::Sender<bool>,
    /// Bumped after every file `/view` served, for tests that wait on one.
    pub files_served: watch::Sender<u64>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    pub fn new(knobs: Arc<Mutex<Knobs>>, dirs: Dirs, catalogue: Catalogue) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(SimState::default()),
            hub: Hub::new(Arc::clone(&knobs)),
            knobs,
            dirs,
            catalogue,
            work: Notify::new(),
            interrupt: AtomicBool::new(false),
            history_written: watch::Sender::new(0),
            history_held: watch::Sender::new(false),
            files_served: watch::Sender::new(0),
            worker: Mutex::new(None),
        })
    }

    /// Locks the state. Never hold the guard across an `.await`.
    pub fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the knobs as they are now.
    pub fn knobs(&self) -> Knobs {
        self.knobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Mutates the knobs in place; used for one-shot knobs that are consumed.
    pub fn with_knobs<T>(&self, change: impl FnOnce(&mut Knobs) -> T) -> T {
        change(&mut self.knobs.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Broadcasts `status`. Call it with the state guard held, so that
    /// concurrent queue changes are announced in the order they happened.
    pub fn broadcast_status(&self, state: &SimState) {
        self.hub.send_json(
            None,
            "status",
            hub::status_data(state.queue_remaining(), None),
        );
    }

    /// Sends one `progress` message for the running prompt's current node
    /// now, to the prompt's client (or to everyone without one), as a node's
    /// progress hook would; `None` when nothing runs. The time is taken just
    /// before the message is queued for the sockets.
    pub fn send_progress(&self, value: u64, max: u64) -> Option<ProgressSent> {
        let state = self.state();
        let running = state.running.as_ref()?;
        let node = state.last_node.clone().unwrap_or_default();
        let data = json!({"value": value, "max": max, "prompt_id": running.prompt_id,
                          "node": node});
        let sent = ProgressSent {
            prompt_id: running.prompt_id.clone(),
            node,
            at: Instant::now(),
        };
        self.hub
            .send_json(state.current_client.as_deref(), "progress", data);
        Some(sent)
    }

    pub fn start_worker(self: &Arc<Self>) {
        let task = tokio::spawn(crate::exec::worker(Arc::clone(self)));
        if let Some(previous) = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task)
        {
            previous.abort();
        }
    }

    pub fn stop_worker(&self) {
        if let Some(task) = self
            .worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            task.abort();
        }
    }

    /// What a ComfyUI process restart does to its clients: the running
    /// prompt vanishes without a message, queue and history are forgotten,
    /// temp/ is wiped and every socket is closed.
    pub fn restart(self: &Arc<Self>) {
        self.stop_worker();
        self.state().forget();
        self.interrupt
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.dirs.wipe_temp();
        self.hub.drop_all();
        self.start_worker();
        tracing::info!("simulated restart");
    }
}
