//! How far a committed write must have reached before the caller hears "committed".
//!
//! A job makes eight or more commits between its acceptance and its end (claimed,
//! dispatched, running, progress for each node, collecting, each output, the final state).
//! Waiting for the disk (`fsync`) at every one of them was most of the time Darkroom added
//! to a job (docs/benchmarks.md). Only two kinds of commit make a promise to someone outside
//! the process: an accepted job (the client was told 201) and a final state (the client is
//! told "done", blobs are deleted after a sweep). Those wait for the disk; the steps between
//! them are only as safe as a crash of Darkroom requires.
//!
//! Both engines keep commits in order, so a power-safe commit also makes every earlier
//! crash-safe one power-safe: SQLite's write-ahead log is one file appended in commit
//! order, and its `fsync` covers everything before it; PostgreSQL flushes its WAL up to the
//! synchronous commit's record. A power cut can therefore lose only the newest crash-safe
//! steps of unfinished jobs, never a job, and never a state a client was told is final;
//! start-up reconciles those jobs with their backends as after any restart.

/// How durable one write transaction is when its commit returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On the disk: survives a power cut or an operating-system crash (SQLite `synchronous
    /// = FULL`; PostgreSQL's default `synchronous_commit`).
    PowerSafe,
    /// Handed to the operating system (SQLite `synchronous = NORMAL` in WAL mode) or to the
    /// database server's WAL buffer (PostgreSQL `synchronous_commit = off`): survives a
    /// crash of Darkroom, and is flushed by the next power-safe commit or within moments.
    CrashSafe,
}
