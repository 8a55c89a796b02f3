//! Reading a stored blob whole or by byte range, as a stream, never whole in
//! memory. The engine behind a blob is hidden behind [`RangeReader`]: a local
//! file seeks, an object store asks for a ranged GET.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::io::AsyncRead;
use tokio_util::io::StreamReader;

use super::{ArtifactError, BlobHash, ByteStream};

/// How an engine serves bytes of one blob it has opened.
#[async_trait]
pub trait RangeReader: Send + fmt::Debug {
    /// `length` bytes from `offset`; both already checked against the size.
    ///
    /// # Errors
    ///
    /// Whatever the engine meets starting the read; later failures arrive in the stream.
    async fn read(
        self: Box<Self>,
        offset: u64,
        length: u64,
    ) -> Result<ByteStream<'static>, ArtifactError>;
}

/// An open blob. Blobs are immutable, so the size read at open stays true.
#[derive(Debug)]
pub struct Blob {
    hash: BlobHash,
    size: u64,
    reader: Box<dyn RangeReader>,
}

/// A byte range of a blob, ready to stream.
pub struct BlobSlice {
    /// First byte served.
    pub offset: u64,
    /// Bytes served; never past the end of the blob.
    pub length: u64,
    /// The whole blob's size, for `Content-Range`.
    pub total_size: u64,
    stream: ByteStream<'static>,
}

impl fmt::Debug for BlobSlice {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("BlobSlice")
            .field("offset", &self.offset)
            .field("length", &self.length)
            .field("total_size", &self.total_size)
            .finish_non_exhaustive()
    }
}

impl Blob {
    /// A blob of `size` bytes whose bytes `reader` serves.
    #[must_use]
    pub fn new(hash: BlobHash, size: u64, reader: Box<dyn RangeReader>) -> Self {
        Self { hash, size, reader }
    }

    #[must_use]
    pub fn hash(&self) -> &BlobHash {
        &self.hash
    }

    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The whole blob as a stream of chunks. The read starts on first poll, so a
    /// failure to start arrives as the stream's first item.
    pub fn into_stream(self) -> ByteStream<'static> {
        let Self { size, reader, .. } = self;
        if size == 0 {
            return stream::empty().boxed();
        }
        stream::once(async move { reader.read(0, size).await.map_err(std::io::Error::other) })
            .try_flatten()
            .boxed()
    }

    /// `length` bytes from `offset`, or to the end when `length` is `None`;
    /// a length past the end is cut short, as HTTP ranges are.
    ///
    /// # Errors
    ///
    /// [`ArtifactError::RangeNotSatisfiable`] when `offset` is at or past the
    /// end of a non-empty blob; an engine error when the read cannot start.
    pub async fn range(self, offset: u64, length: Option<u64>) -> Result<BlobSlice, ArtifactError> {
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
        // An empty range needs no request (and S3 has no way to ask for one).
        let stream = if length == 0 {
            stream::empty().boxed()
        } else {
            self.reader.read(offset, length).await?
        };
        Ok(BlobSlice {
            offset,
            length,
            total_size: self.size,
            stream,
        })
    }
}

impl BlobSlice {
    /// This range as a reader.
    pub fn into_reader(self) -> impl AsyncRead + Send + Unpin {
        StreamReader::new(self.stream)
    }

    /// This range as a stream of chunks.
    pub fn into_stream(self) -> ByteStream<'static> {
        self.stream
    }
}

/// Chunks of `Bytes` from any engine's error type.
pub(super) fn bytes_stream<E>(
    chunks: impl futures_util::Stream<Item = Result<Bytes, E>> + Send + 'static,
) -> ByteStream<'static>
where
    E: std::error::Error + Send + Sync + 'static,
{
    chunks.map_err(std::io::Error::other).boxed()
}
