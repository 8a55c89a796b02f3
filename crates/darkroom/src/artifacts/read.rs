//! Reading a stored blob whole or by byte range, as a stream, never whole in
//! memory.

use std::io::SeekFrom;

use bytes::Bytes;
use futures_util::Stream;
use tokio::fs::File;
use tokio::io::{AsyncReadExt, AsyncSeekExt, Take};
use tokio_util::io::ReaderStream;

use super::{ArtifactError, BlobHash};

/// An open blob. Blobs are immutable, so the size read at open stays true.
#[derive(Debug)]
pub struct Blob {
    hash: BlobHash,
    file: File,
    size: u64,
}

/// A byte range of a blob, ready to stream.
#[derive(Debug)]
pub struct BlobSlice {
    /// First byte served.
    pub offset: u64,
    /// Bytes served; never past the end of the blob.
    pub length: u64,
    /// The whole blob's size, for `Content-Range`.
    pub total_size: u64,
    reader: Take<File>,
}

impl Blob {
    pub(super) async fn new(hash: BlobHash, file: File) -> Result<Self, ArtifactError> {
        let metadata = file.metadata().await;
        let size = metadata.map_err(|source| ArtifactError::Io {
            action: "inspect",
            path: hash.relative_path(),
            source,
        })?;
        Ok(Self {
            hash,
            file,
            size: size.len(),
        })
    }

    #[must_use]
    pub fn hash(&self) -> &BlobHash {
        &self.hash
    }

    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The open file, positioned at the start.
    #[must_use]
    pub fn into_file(self) -> File {
        self.file
    }

    /// The whole blob as a stream of chunks.
    pub fn into_stream(self) -> impl Stream<Item = std::io::Result<Bytes>> {
        ReaderStream::new(self.file)
    }

    /// `length` bytes from `offset`, or to the end when `length` is `None`;
    /// a length past the end is cut short, as HTTP ranges are.
    ///
    /// # Errors
    ///
    /// [`ArtifactError::RangeNotSatisfiable`] when `offset` is at or past the
    /// end of a non-empty blob; `Io` when seeking fails.
    pub async fn range(
        mut self,
        offset: u64,
        length: Option<u64>,
    ) -> Result<BlobSlice, ArtifactError> {
        let past_end = offset > self.size || (offset == self.size && self.size > 0);
        if past_end {
            return Err(ArtifactError::RangeNotSatisfiable {
                hash: self.hash,
                offset,
                size: self.size,
            });
        }

        let available = self.size - offset;
        let length = length.map_or(available, |length| length.min(available));
        let seek = self.file.seek(SeekFrom::Start(offset)).await;
        seek.map_err(|source| ArtifactError::Io {
            action: "seek",
            path: self.hash.relative_path(),
            source,
        })?;
        Ok(BlobSlice {
            offset,
            length,
            total_size: self.size,
            reader: self.file.take(length),
        })
    }
}

impl BlobSlice {
    /// The reader limited to this range.
    pub fn into_reader(self) -> Take<File> {
        self.reader
    }

    /// This range as a stream of chunks.
    pub fn into_stream(self) -> impl Stream<Item = std::io::Result<Bytes>> {
        ReaderStream::new(self.reader)
    }
}
