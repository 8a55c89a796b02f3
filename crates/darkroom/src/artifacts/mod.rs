//! Artifacts: the bytes of outputs and uploads, content-addressed on local
//! disk.
//!
//! This module owns the blob directory: writing a blob atomically (temp file,
//! fsync, rename, fsync of the directory), finding it again by its blake3
//! hash, reading byte ranges and deleting. It must not know about jobs or
//! assets (the store decides when a blob is no longer referenced) and must
//! never build a path from anything but a validated [`BlobHash`], so no name a
//! client or ComfyUI sends can reach outside the root.

mod error;
mod hash;
mod local;
mod read;

pub use error::ArtifactError;
pub use hash::BlobHash;
pub use local::{BlobInfo, LocalBlobStore};
pub use read::{Blob, BlobSlice};
