//! Jobs: the state machine every job follows and the records that describe it.
//!
//! This module owns the domain vocabulary (`model`), the bus that carries
//! committed events to the API's streams (`bus`), and the relay that feeds it
//! what other replicas commit (`relay`). It must not touch the disk or
//! ComfyUI: the store persists these types, the scheduler drives them, the
//! API renders them.

pub mod bus;
pub mod model;
pub mod relay;
pub mod requirements;
