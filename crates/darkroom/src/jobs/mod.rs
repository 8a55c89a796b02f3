//! Jobs: the state machine every job follows and the records that describe it.
//!
//! This module owns the domain vocabulary (`model`). It must not touch the
//! database, the disk or ComfyUI: the store persists these types, the
//! scheduler drives them, the API renders them.

pub mod bus;
pub mod model;
pub mod requirements;
