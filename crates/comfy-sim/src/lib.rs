//! A ComfyUI 0.3.75 stand-in for tests: same routes, same websocket
//! messages in the same order, same history and error shapes, with knobs for
//! what a real server cannot be made to do on demand (lag history, go
//! silent, drop sockets, fail a node, restart).
//!
//! It is deliberately independent of Darkroom's ComfyUI client: it shares no
//! parsing code with it, so a misreading of the protocol in one cannot hide
//! the same misreading in the other.
//!
//! ```no_run
//! # async fn demo() -> Result<(), comfy_sim::SimError> {
//! let sim = comfy_sim::Simulator::builder().start().await?;
//! sim.set_knobs(|knobs| knobs.history_lag = std::time::Duration::from_millis(300));
//! let base_url = sim.base_url(); // point the code under test here
//! sim.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod catalogue;
mod error;
mod exec;
mod files;
mod http;
mod hub;
mod knobs;
mod media;
mod pyfmt;
mod server;
mod shared;
mod state;
mod validate;

pub use error::SimError;
pub use knobs::{InjectedFailure, Knobs};
pub use server::{SimHandle, Simulator, SimulatorBuilder};
pub use shared::ProgressSent;
pub use state::{Execution, ServedFile};
