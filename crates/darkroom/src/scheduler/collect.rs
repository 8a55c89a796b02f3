//! Collecting a finished run: every output the history lists is fetched with `/view`,
//! streamed into the blob store (hashed, synced, renamed) and recorded, one by one.
//!
//! Collection is idempotent: outputs already recorded for the job (by their ComfyUI
//! origin) are skipped, so a collection cut short by a crash resumes where it stopped.
//!
//! The last output is stored but not recorded: the caller records it together with the
//! job's end, in one commit, which also writes its blob when the blob store staged it
//! (SQLite's small blobs). The job moves to `collecting` before the first output is
//! recorded, or once storing the last one has taken [`SHOWN_RUNNING`]; a run whose one
//! output is stored sooner goes from `running` to its end in that one commit (its events
//! still say `collecting`, then the output, then the end). A job still `running` while its
//! output is fetched is reconciled after a crash like any run: its history is read and its
//! outputs collected.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use comfy::{ComfyUiClient, FileType, HistoryEntry, MediaKind, Output, OutputFile};
use futures_util::{StreamExt, stream};
use time::OffsetDateTime;

use super::Context;
use super::early::{EarlyFetches, EarlyFile};
use crate::artifacts::{BlobHold, ByteStream, Staged};
use crate::jobs::model::{
    AssetId, JobId, JobState, OriginFolder, OutputOrigin, OutputRecord, OutputType,
};
use crate::store::{NewEvent, StoreError};

/// How long storing a run's last output may take while its job still shows `running`:
/// after that the job moves to `collecting`, so that a long download (a large file, a slow
/// backend) shows as what it is. A small image from a nearby backend takes a few
/// milliseconds.
const SHOWN_RUNNING: Duration = Duration::from_millis(20);

/// Why outputs could not be collected.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("output {filename:?} of node {node_id} could not be fetched: {source}")]
    Fetch {
        node_id: String,
        filename: String,
        #[source]
        source: comfy::ComfyError,
    },
    #[error("output could not be stored: {0}")]
    Blob(#[from] crate::artifacts::ArtifactError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What collecting needs of a job: which files it keeps, and what is stored already.
#[derive(Debug)]
pub struct Collecting {
    pub job_id: JobId,
    /// Whether `temp` previews are kept too.
    pub keep_previews: bool,
    /// The outputs recorded for the job so far, added to as collection goes on.
    pub stored: Vec<OutputRecord>,
    /// The job's state in the store: the run's (`running`, or `dispatched` when the run
    /// ended before it was heard starting) until the job moves to `collecting`.
    pub state: JobState,
    /// Files fetched while the run went on, taken when the history names them.
    pub early: EarlyFetches,
}

/// A collection that went to its end.
#[derive(Debug)]
pub enum Collected {
    /// Every output stored: `added` recorded, and the last one, when there was one to
    /// store, stored but left for the caller to record with the job's end.
    Stored {
        added: usize,
        last: Option<Box<LastOutput>>,
    },
    /// The job moved on meanwhile (canceled, or taken over): nothing more is its run's.
    MovedOn,
}

/// The last output: its blob stored (or its bytes staged) and held, its record not
/// written yet.
#[derive(Debug)]
pub struct LastOutput {
    pub record: OutputRecord,
    /// The blob's bytes, when they were staged for the record's commit.
    pub blob: Option<Bytes>,
    /// Keeps the blob from a sweep until the record is committed.
    pub hold: BlobHold,
}

/// What one history output asks of a collection.
enum Step<'a> {
    Store(Storing<'a>),
    /// Not a file and not text: kept in the job's log.
    Log(NewEvent),
}

/// An output to fetch (or take from the history) and store.
enum Storing<'a> {
    File(&'a OutputFile, OutputOrigin),
    Text {
        node_id: &'a str,
        name: String,
        text: &'a str,
        origin: OutputOrigin,
    },
}

/// Stores every output of `entry` not stored yet, recording all but the last.
///
/// # Errors
///
/// [`CollectError`] when a file cannot be fetched or stored; what was stored stays.
pub async fn collect(
    context: &Context,
    client: &ComfyUiClient,
    job: &mut Collecting,
    entry: &HistoryEntry,
) -> Result<Collected, CollectError> {
    let steps = steps(job, entry);
    let last = steps.iter().rposition(|step| !matches!(step, Step::Log(_)));
    let mut added = 0;
    let mut pending = None;

    for (index, step) in steps.into_iter().enumerate() {
        let is_last = Some(index) == last;
        if !is_last && !moved_to_collecting(context, job).await? {
            return Ok(Collected::MovedOn);
        }
        let storing = match step {
            Step::Store(storing) => storing,
            Step::Log(event) => {
                let event = context.store.append_event(job.job_id, event).await?;
                context.bus.publish(event);
                continue;
            }
        };
        let early = match &storing {
            Storing::File(_, origin) => job.early.take(origin),
            Storing::Text { .. } => None,
        };
        let deletions_before = context.blobs.locks().deletions();
        // The last output's blob may be staged: written by the commit that records it.
        let storing = store(context, client, job.job_id, storing, early, is_last);
        let (record, staged) = if is_last {
            tokio::pin!(storing);
            tokio::select! {
                stored = &mut storing => stored?,
                () = tokio::time::sleep(SHOWN_RUNNING) => {
                    if !moved_to_collecting(context, job).await? {
                        return Ok(Collected::MovedOn);
                    }
                    storing.await?
                }
            }
        } else {
            storing.await?
        };
        // Until the output is recorded, its blob must not go with the last record before
        // it; if it went already, this collection fails and the next stores it again. A
        // staged blob is written with its record, so it cannot have gone: the hold only
        // keeps a delete of the same bytes from running in between.
        let hold = match &staged {
            Some(_) => context.blobs.locks().using(&record.hash).await,
            None => context.blobs.hold(&record.hash, deletions_before).await?,
        };
        if is_last {
            pending = Some(Box::new(LastOutput {
                record,
                blob: staged,
                hold,
            }));
            continue;
        }
        let event = context
            .store
            .add_output(
                &record,
                &context.settings.replica,
                OffsetDateTime::now_utc(),
            )
            .await?;
        drop(hold);
        context.bus.publish(event);
        context.metrics.bytes_stored(record.size_bytes);
        job.stored.push(record);
        added += 1;
    }
    Ok(Collected::Stored {
        added,
        last: pending,
    })
}

/// Fetches (unless its bytes were fetched `early`) and stores one file or text output;
/// with `stage`, its blob may be staged instead, its bytes returned for the commit that
/// records it.
async fn store(
    context: &Context,
    client: &ComfyUiClient,
    job_id: JobId,
    storing: Storing<'_>,
    early: Option<EarlyFile>,
    stage: bool,
) -> Result<(OutputRecord, Option<Bytes>), CollectError> {
    match storing {
        Storing::File(file, origin) => {
            let early = match early {
                Some(early) => early.bytes().await,
                None => None,
            };
            let body =
                match early {
                    Some(bytes) => stream::iter([Ok::<_, io::Error>(bytes)]).boxed(),
                    None => {
                        let download = client.view(&file.file).await.map_err(|source| {
                            CollectError::Fetch {
                                node_id: file.node_id.as_str().to_owned(),
                                filename: file.file.filename.clone(),
                                source,
                            }
                        })?;
                        download
                            .body
                            .map(|chunk| chunk.map_err(io::Error::other))
                            .boxed()
                    }
                };
            let Staged { info, bytes } = put(context, body, stage).await?;
            let record = OutputRecord {
                job_id,
                asset_id: AssetId::new(),
                node_id: file.node_id.as_str().to_owned(),
                name: display_name(&file.file.filename, file.node_id.as_str()),
                output_type: output_type(file.media),
                content_type: file.mime_type().to_owned(),
                size_bytes: info.size,
                hash: info.hash,
                origin,
            };
            Ok((record, bytes))
        }
        Storing::Text {
            node_id,
            name,
            text,
            origin,
        } => {
            let bytes = Bytes::copy_from_slice(text.as_bytes());
            let body = stream::iter([Ok::<_, io::Error>(bytes)]);
            let Staged { info, bytes } = put(context, body.boxed(), stage).await?;
            let record = OutputRecord {
                job_id,
                asset_id: AssetId::new(),
                node_id: node_id.to_owned(),
                name,
                output_type: OutputType::Text,
                content_type: "text/plain; charset=utf-8".to_owned(),
                size_bytes: info.size,
                hash: info.hash,
                origin,
            };
            Ok((record, bytes))
        }
    }
}

/// Stores `body`, or stages it when `stage` (and the blob store can).
async fn put(context: &Context, body: ByteStream<'_>, stage: bool) -> Result<Staged, CollectError> {
    if stage {
        return Ok(context.blobs.stage_stream(body).await?);
    }
    let info = context.blobs.put_stream(body).await?;
    Ok(Staged { info, bytes: None })
}

/// Moves the job to `collecting` unless it is there already. False when it moved on.
///
/// # Errors
///
/// Store faults.
pub async fn moved_to_collecting(
    context: &Context,
    job: &mut Collecting,
) -> Result<bool, CollectError> {
    if job.state == JobState::Collecting {
        return Ok(true);
    }
    let moved = context
        .transition(job.job_id, job.state, JobState::Collecting, None)
        .await?;
    if moved.is_some() {
        job.state = JobState::Collecting;
    }
    Ok(moved.is_some())
}

/// What each output of `entry` asks, in the history's order: the files and texts not
/// stored yet, and the outputs of unknown shape.
fn steps<'a>(job: &Collecting, entry: &'a HistoryEntry) -> Vec<Step<'a>> {
    let mut steps = Vec::new();
    for (index, output) in entry.outputs.iter().enumerate() {
        match output {
            Output::File(file) if wanted(job.keep_previews, file) => {
                let origin = origin_of(file);
                if !job.has(&origin) {
                    steps.push(Step::Store(Storing::File(file, origin)));
                }
            }
            Output::File(file) => {
                tracing::debug!(job.id = %job.job_id, file = %file.file.filename, file.type = %file.file.file_type, "output not kept");
            }
            Output::Text { node_id, key, text } => {
                let name = format!("{node_id}-{key}-{index}.txt");
                let origin = OutputOrigin {
                    filename: name.clone(),
                    subfolder: String::new(),
                    folder: OriginFolder::Output,
                };
                if !job.has(&origin) {
                    steps.push(Step::Store(Storing::Text {
                        node_id: node_id.as_str(),
                        name,
                        text,
                        origin,
                    }));
                }
            }
            Output::Unrecognized {
                node_id,
                key,
                value,
            } => {
                tracing::info!(job.id = %job.job_id, node.id = %node_id, output.key = %key, "output of unknown shape kept as a log event");
                let payload = serde_json::json!({"level": "info", "message": format!("node {node_id} output {key:?} has an unknown shape"), "value": value});
                steps.push(Step::Log(NewEvent {
                    kind: crate::jobs::model::EventKind::Log,
                    payload,
                    at: OffsetDateTime::now_utc(),
                }));
            }
        }
    }
    steps
}

impl Collecting {
    /// Whether the file ComfyUI named `origin` is stored already.
    fn has(&self, origin: &OutputOrigin) -> bool {
        self.stored.iter().any(|output| &output.origin == origin)
    }
}

/// Results are `output` files; `temp` previews only when the job asked for them; `input`
/// files are the job's own inputs echoed back.
pub(super) fn wanted(keep_previews: bool, file: &OutputFile) -> bool {
    match file.file.file_type {
        FileType::Output => true,
        FileType::Temp => keep_previews,
        FileType::Input => false,
    }
}

pub(super) fn origin_of(file: &OutputFile) -> OutputOrigin {
    let folder = match file.file.file_type {
        FileType::Output => OriginFolder::Output,
        FileType::Temp => OriginFolder::Temp,
        FileType::Input => OriginFolder::Input,
    };
    OutputOrigin {
        filename: file.file.filename.clone(),
        subfolder: file.file.subfolder.clone(),
        folder,
    }
}

/// The name clients see for a file ComfyUI named: its last path part, without control or
/// bidirectional-override characters, never empty. ComfyUI (or a custom node) may name a
/// file anything; the name is echoed in JSON and download headers, never used as a path.
pub fn display_name(filename: &str, node_id: &str) -> String {
    let last = filename.rsplit(['/', '\\']).next().unwrap_or(filename);
    let cleaned: String = last
        .chars()
        .filter(|character| !character.is_control() && !is_bidi_control(*character))
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() || cleaned == "." || cleaned == ".." {
        format!("node-{node_id}-output")
    } else {
        cleaned.to_owned()
    }
}

fn is_bidi_control(character: char) -> bool {
    matches!(character, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn output_type(media: MediaKind) -> OutputType {
    match media {
        MediaKind::Image => OutputType::Image,
        MediaKind::Video => OutputType::Video,
        MediaKind::Audio => OutputType::Audio,
        MediaKind::Latent => OutputType::Latent,
        MediaKind::Model3d | MediaKind::Other => OutputType::File,
    }
}

#[cfg(test)]
mod tests {
    use super::display_name;

    #[test]
    fn names_from_comfyui_cannot_carry_paths_or_controls() {
        assert_eq!(
            display_name("ComfyUI_00001_.png", "9"),
            "ComfyUI_00001_.png"
        );
        assert_eq!(display_name("../../../../tmp/esc/pwn.png", "9"), "pwn.png");
        assert_eq!(display_name("/etc/passwd", "9"), "passwd");
        assert_eq!(
            display_name("a\r\nX-Evil: 1\r\n.png", "9"),
            "aX-Evil: 1.png"
        );
        assert_eq!(display_name("\u{202e}gnp.exe", "9"), "gnp.exe");
        assert_eq!(display_name("nul\u{0}.png", "9"), "nul.png");
        assert_eq!(display_name("", "9"), "node-9-output");
        assert_eq!(display_name("dir\\..", "3"), "node-3-output");
    }
}
