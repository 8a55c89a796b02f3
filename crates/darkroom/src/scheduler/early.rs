//! Outputs fetched while their run goes on. ComfyUI announces each output node's files
//! in an `executed` message as soon as the node finishes, and the files are on the
//! backend's disk by then. Each small file so announced is downloaded at once, into
//! memory, so that when the run ends collection finds it already here and only has to
//! store it: the run's end waits for `/history` alone, not for `/history` and then every
//! `/view` in turn.
//!
//! The history stays the authority on what a run produced: collection asks it as before,
//! and takes a file fetched early only when the history names the same file. A file
//! announced twice (a node that wrote it again) is fetched again at the end, since the
//! early copy may be the older one. A fetch that fails, or a file too large to hold, is
//! left to collection, as every file was before. The fetches of a run that is dropped
//! (failed, canceled, lost) are aborted with it.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use comfy::events::Executed;
use comfy::outputs::parse_node_outputs;
use comfy::{ComfyUiClient, Output, OutputFile};
use futures_util::StreamExt;
use tokio_util::task::AbortOnDropHandle;

use super::collect::{origin_of, wanted};
use crate::jobs::model::{JobId, OutputOrigin};

/// Files larger than this are fetched by collection, streamed into the blob store: an
/// early copy is held in memory until the run ends.
const LARGEST: u64 = 4 * 1024 * 1024;
/// At most this many files of one run are held early (16 MiB at most per run, and a
/// backend runs one prompt at a time); the rest are fetched by collection.
const MOST: usize = 4;

/// The early fetches of one run, by the file ComfyUI named.
#[derive(Debug, Default)]
pub struct EarlyFetches {
    files: HashMap<OutputOrigin, Early>,
}

#[derive(Debug)]
enum Early {
    Fetching(AbortOnDropHandle<Option<Bytes>>),
    /// Announced more than once: collection fetches it.
    Again,
}

impl EarlyFetches {
    /// Starts fetching the files that `executed` announces and the job keeps.
    pub fn announce(
        &mut self,
        client: &ComfyUiClient,
        job_id: JobId,
        keep_previews: bool,
        executed: &Executed,
    ) {
        for output in parse_node_outputs(&executed.node, &executed.output) {
            let Output::File(file) = output else { continue };
            if !wanted(keep_previews, &file) {
                continue;
            }
            let origin = origin_of(&file);
            if let Some(early) = self.files.get_mut(&origin) {
                *early = Early::Again;
                continue;
            }
            let fetching = self
                .files
                .values()
                .filter(|early| matches!(early, Early::Fetching(_)))
                .count();
            if fetching >= MOST {
                continue;
            }
            let task = tokio::spawn(fetch(client.clone(), job_id, file));
            self.files
                .insert(origin, Early::Fetching(AbortOnDropHandle::new(task)));
        }
    }

    /// The early fetch of `origin`, if one was started and is the file's only one.
    pub fn take(&mut self, origin: &OutputOrigin) -> Option<EarlyFile> {
        match self.files.remove(origin)? {
            Early::Fetching(task) => Some(EarlyFile(task)),
            Early::Again => None,
        }
    }
}

/// One file's early fetch, taken for collection.
#[derive(Debug)]
pub struct EarlyFile(AbortOnDropHandle<Option<Bytes>>);

impl EarlyFile {
    /// The file's bytes once fetched; `None` when collection is to fetch it (too large,
    /// or the fetch failed).
    pub async fn bytes(self) -> Option<Bytes> {
        self.0.await.ok().flatten()
    }
}

/// Downloads `file` whole, unless it is larger than [`LARGEST`] or the download fails.
async fn fetch(client: ComfyUiClient, job_id: JobId, file: OutputFile) -> Option<Bytes> {
    let filename = &file.file.filename;
    let download = match client.view(&file.file).await {
        Ok(download) => download,
        Err(error) => {
            tracing::debug!(job.id = %job_id, file = %filename, %error, "early fetch failed; collection fetches the file");
            return None;
        }
    };
    if download
        .content_length
        .is_some_and(|length| length > LARGEST)
    {
        return None;
    }
    let mut bytes = BytesMut::new();
    let mut body = download.body;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(chunk) if (bytes.len() + chunk.len()) as u64 <= LARGEST => {
                bytes.extend_from_slice(&chunk);
            }
            Ok(_) => return None,
            Err(error) => {
                tracing::debug!(job.id = %job_id, file = %filename, %error, "early fetch broke off; collection fetches the file");
                return None;
            }
        }
    }
    tracing::debug!(job.id = %job_id, file = %filename, bytes = bytes.len(), "output fetched during its run");
    Some(bytes.freeze())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::Query;
    use axum::routing::get;
    use bytes::Bytes;
    use comfy::{FileRef, FileType, MediaKind, NodeId};
    use futures_util::stream;

    use super::*;

    /// A `/view` that answers `?filename=N` with N bytes, with a length when the subfolder
    /// is `sized` and streamed in 64 KiB chunks without one otherwise.
    async fn backend() -> ComfyUiClient {
        let view = get(|Query(query): Query<HashMap<String, String>>| async move {
            let size: usize = query["filename"].parse().unwrap_or_default();
            let chunks = (0..size.div_ceil(65_536)).map(move |index| {
                Ok::<_, std::io::Error>(Bytes::from(vec![7u8; (size - index * 65_536).min(65_536)]))
            });
            if query["subfolder"] == "sized" {
                Body::from(vec![7u8; size])
            } else {
                Body::from_stream(stream::iter(chunks.collect::<Vec<_>>()))
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(
            async move { axum::serve(listener, Router::new().route("/view", view)).await },
        );
        ComfyUiClient::new(&base).unwrap()
    }

    fn file(size: u64, subfolder: &str) -> OutputFile {
        OutputFile {
            node_id: NodeId::new("9"),
            key: "images".to_owned(),
            file: FileRef {
                filename: size.to_string(),
                subfolder: subfolder.to_owned(),
                file_type: FileType::Output,
            },
            media: MediaKind::Image,
            animated: false,
            extra: serde_json::Map::new(),
        }
    }

    #[tokio::test]
    async fn only_files_up_to_the_limit_are_held_with_or_without_a_length() {
        let client = backend().await;
        let job = JobId::new();
        for subfolder in ["sized", "streamed"] {
            let held = fetch(client.clone(), job, file(LARGEST, subfolder)).await;
            assert_eq!(
                held.map(|bytes| bytes.len() as u64),
                Some(LARGEST),
                "{subfolder}"
            );
            let over = fetch(client.clone(), job, file(LARGEST + 1, subfolder)).await;
            assert!(
                over.is_none(),
                "{subfolder}: one byte over the limit is left to collection"
            );
        }
        // A backend that stopped listening.
        let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone_base = format!("http://{}", gone.local_addr().unwrap());
        drop(gone);
        let missing = fetch(
            ComfyUiClient::new(&gone_base).unwrap(),
            job,
            file(1, "sized"),
        )
        .await;
        assert!(missing.is_none(), "a failed fetch is left to collection");
    }
}
