//! Starting, controlling and stopping a simulator: [`Simulator::builder`]
//! and the [`SimHandle`] it returns.
//!
//! Building is separate from binding: a test passes nothing and gets port 0
//! on 127.0.0.1, or hands over a listener it bound itself. Dropping the
//! handle stops the server and the executor; `shutdown` does it and waits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::catalogue::Catalogue;
use crate::error::SimError;
use crate::files::Dirs;
use crate::http;
use crate::knobs::Knobs;
use crate::shared::{ProgressSent, Shared};
use crate::state::{Execution, ServedFile, SimState};

/// A ComfyUI 0.3.75 stand-in. Start one with [`Simulator::builder`].
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Options with their defaults: port 0 on 127.0.0.1, a temporary base
    /// folder, [`Knobs::default`].
    pub fn builder() -> SimulatorBuilder {
        SimulatorBuilder::default()
    }
}

/// Options for a simulator; every one has a default.
#[derive(Debug, Default)]
pub struct SimulatorBuilder {
    knobs: Knobs,
    listener: Option<TcpListener>,
    base_dir: Option<PathBuf>,
    checkpoints: Option<Vec<String>>,
    without_classes: Vec<String>,
}

impl SimulatorBuilder {
    /// The knobs to start with.
    pub fn knobs(mut self, knobs: Knobs) -> Self {
        self.knobs = knobs;
        self
    }

    /// Serve on this listener instead of a fresh `127.0.0.1:0`.
    pub fn listener(mut self, listener: TcpListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Keep input/, output/ and temp/ under `dir` instead of a temporary
    /// folder removed with the handle.
    pub fn base_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.base_dir = Some(dir.into());
        self
    }

    /// `CheckpointLoaderSimple`'s choices; default `["tiny-sd15.safetensors"]`.
    pub fn checkpoints(mut self, names: Vec<String>) -> Self {
        self.checkpoints = Some(names);
        self
    }

    /// Leaves these node classes out: `/object_info` does not list them and a prompt
    /// using one is refused, as on a ComfyUI without that custom node. Lets one test run
    /// backends with different node sets.
    pub fn without_classes(mut self, names: Vec<String>) -> Self {
        self.without_classes = names;
        self
    }

    /// Binds (if needed), prepares the folders and starts serving.
    ///
    /// # Errors
    ///
    /// Fails when the port cannot be bound or the folders cannot be created.
    pub async fn start(self) -> Result<SimHandle, SimError> {
        let listener = match self.listener {
            Some(listener) => listener,
            None => TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| SimError::Listen {
                    addr: "127.0.0.1:0".to_owned(),
                    source,
                })?,
        };
        let addr = listener.local_addr().map_err(|source| SimError::Listen {
            addr: "listener".to_owned(),
            source,
        })?;

        let (temp, root) = match self.base_dir {
            Some(dir) => (None, dir),
            None => {
                let temp = tempfile::tempdir().map_err(|source| SimError::Folder {
                    path: "temporary folder".to_owned(),
                    source,
                })?;
                let root = temp.path().to_path_buf();
                (Some(temp), root)
            }
        };
        let root = std::fs::create_dir_all(&root)
            .and_then(|()| root.canonicalize())
            .map_err(|source| SimError::Folder {
                path: root.display().to_string(),
                source,
            })?;
        let dirs = Dirs::create(&root)?;
        dirs.wipe_temp();

        let checkpoints = self
            .checkpoints
            .unwrap_or_else(|| vec!["tiny-sd15.safetensors".to_owned()]);
        let shared = Shared::new(
            Arc::new(Mutex::new(self.knobs)),
            dirs,
            Catalogue::new(&checkpoints).without(&self.without_classes),
        );
        shared.start_worker();

        let (stop, stopped) = oneshot::channel::<()>();
        let app = http::router(Arc::clone(&shared));
        // No Nagle delay: like aiohttp, which ComfyUI runs on, every small websocket
        // message leaves at once instead of waiting for the peer's delayed ACK.
        let listener = listener.tap_io(|stream| {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let server = tokio::spawn(async move {
            let serving = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            if let Err(error) = serving.await {
                tracing::error!(error = %error, "simulator server failed");
            }
        });
        tracing::info!(addr = %addr, "comfy-sim listening");
        Ok(SimHandle {
            addr,
            shared,
            stop: Some(stop),
            server: Some(server),
            _temp: temp,
        })
    }
}

/// A running simulator. Dropping it stops everything.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    _temp: Option<tempfile::TempDir>,
}

impl SimHandle {
    /// The bound address (127.0.0.1 and the port the system picked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://127.0.0.1:PORT/ws?clientId=CLIENT_ID`.
    pub fn ws_url(&self, client_id: &str) -> String {
        format!("ws://{}/ws?clientId={client_id}", self.addr)
    }

    /// The live knobs; a change applies from the next moment it is read.
    pub fn knobs(&self) -> Arc<Mutex<Knobs>> {
        Arc::clone(&self.shared.knobs)
    }

    /// Changes knobs in place: `sim.set_knobs(|k| k.zombie = true)`.
    pub fn set_knobs(&self, change: impl FnOnce(&mut Knobs)) {
        change(
            &mut self
                .shared
                .knobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
    }

    /// Closes every websocket now. Clients may reconnect at once.
    pub fn drop_sockets_now(&self) {
        self.shared.hub.drop_all();
    }

    /// Forgets queue, history, cache and temp files and drops every socket,
    /// like a ComfyUI process restart. The HTTP port stays open.
    pub fn restart(&self) {
        self.shared.restart();
    }

    /// Every prompt id accepted by `POST /prompt`, in order, across restarts.
    pub fn posted_prompts(&self) -> Vec<String> {
        self.shared.state().posted.clone()
    }

    /// Every prompt id that started executing, in order, across restarts.
    pub fn executed_prompts(&self) -> Vec<String> {
        self.shared.state().executed.clone()
    }

    /// When each run started and ended, in order, across restarts: how long
    /// the server was busy, for benchmarks of what keeps it fed.
    pub fn executions(&self) -> Vec<Execution> {
        self.shared.state().executions.clone()
    }

    /// Sends a `progress` message (`value` of `max`) for the running prompt
    /// now, as its node would, and says when; `None` when nothing runs. For
    /// measuring how long a message takes to reach a gateway's clients.
    pub fn send_progress(&self, value: u64, max: u64) -> Option<ProgressSent> {
        self.shared.send_progress(value, max)
    }

    /// Waits until `prompt_id` has a history entry; for tests that must
    /// not rely on the websocket (zombie mode, no client id).
    ///
    /// # Errors
    ///
    /// [`SimError::Timeout`] when no entry appears within `patience`.
    pub async fn wait_for_history(
        &self,
        prompt_id: &str,
        patience: Duration,
    ) -> Result<(), SimError> {
        self.wait_until(
            &self.shared.history_written,
            |state| state.history.contains_key(prompt_id),
            patience,
            || format!("history of prompt {prompt_id}"),
        )
        .await
    }

    /// Holds back the history entries of prompts that finish from now on (and
    /// of one finishing now) while `held`; `false` writes them. The run's
    /// messages are sent as usual: a gateway sees a run that ended and is not
    /// recorded yet for as long as a test needs, not for a guessed time.
    pub fn hold_history(&self, held: bool) {
        self.shared.history_held.send_replace(held);
    }

    /// Every file `/view` has served (opened, its answer begun), in order,
    /// across restarts.
    pub fn files_served(&self) -> Vec<ServedFile> {
        self.shared.state().served.clone()
    }

    /// Waits until `/view` has served at least `count` files; returns them.
    ///
    /// # Errors
    ///
    /// [`SimError::Timeout`] when fewer were served within `patience`.
    pub async fn wait_for_files_served(
        &self,
        count: usize,
        patience: Duration,
    ) -> Result<Vec<ServedFile>, SimError> {
        self.wait_until(
            &self.shared.files_served,
            |state| state.served.len() >= count,
            patience,
            || format!("{count} files served by /view"),
        )
        .await?;
        Ok(self.files_served())
    }

    /// Waits, at most `patience`, until `done` holds of the state, looking again each
    /// time `bumps` moves; `what` names the wait in its timeout.
    async fn wait_until(
        &self,
        bumps: &watch::Sender<u64>,
        done: impl Fn(&SimState) -> bool,
        patience: Duration,
        what: impl FnOnce() -> String,
    ) -> Result<(), SimError> {
        let mut bumped = bumps.subscribe();
        let wait = async {
            while !done(&self.shared.state()) {
                if bumped.changed().await.is_err() {
                    break;
                }
            }
        };
        tokio::time::timeout(patience, wait)
            .await
            .map_err(|_| SimError::Timeout { what: what() })
    }

    /// Where uploads go and `LoadImage` reads from.
    pub fn input_dir(&self) -> &Path {
        &self.shared.dirs.input
    }

    /// Where `SaveImage` and `DarkroomMultiOutput` write.
    pub fn output_dir(&self) -> &Path {
        &self.shared.dirs.output
    }

    /// Where `PreviewImage` writes; emptied by [`SimHandle::restart`].
    pub fn temp_dir(&self) -> &Path {
        &self.shared.dirs.temp
    }

    /// Stops serving and waits for the server task to end.
    pub async fn shutdown(mut self) {
        self.stop_everything();
        if let Some(server) = self.server.take() {
            // Upgraded websocket connections are not tracked by graceful
            // shutdown; they were closed above, so this ends promptly.
            let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
        }
        tracing::info!(addr = %self.addr, "comfy-sim stopped");
    }

    fn stop_everything(&mut self) {
        self.shared.stop_worker();
        self.shared.hub.drop_all();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.stop_everything();
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}
