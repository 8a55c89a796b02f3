//! Thumbnails of stored images: made on first request from the blob, then kept in a cache
//! folder beside the blobs, so a history page of fifty jobs costs fifty small files rather
//! than fifty full images.
//!
//! A blob never changes (its name is its digest), so a cached thumbnail is never stale and
//! is keyed by the blob hash and the size alone. The cache holds derived data only: it may
//! be deleted at any time, and a thumbnail whose blob is gone is never served, because the
//! caller first finds a live asset record. This module must not decide who may see an
//! asset; it only turns bytes into smaller bytes.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::TryStreamExt;
use image::{ImageFormat, ImageReader, Limits};

use crate::artifacts::{ArtifactError, BlobHash, BlobStore};

/// The edge lengths a thumbnail may have; a closed set keeps the cache bounded.
pub const SIZES: &[u32] = &[64, 128, 256, 512];
/// What a thumbnail is encoded as.
pub const CONTENT_TYPE: &str = "image/jpeg";
/// Images larger than this are not decoded: a thumbnail is not worth the memory.
const MAX_SOURCE_BYTES: u64 = 64 * 1024 * 1024;
/// Decoding stops past this many pixels on a side (a small file can claim a huge canvas).
const MAX_SOURCE_SIDE: u32 = 16_384;
const JPEG_QUALITY: u8 = 85;

/// Why a thumbnail cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error("size must be one of {SIZES:?}, got {0}")]
    UnsupportedSize(u32),
    #[error("the asset is {size} bytes; thumbnails are made of images up to {MAX_SOURCE_BYTES}")]
    TooLarge { size: u64 },
    #[error("the asset is not an image this server can read: {0}")]
    NotAnImage(String),
    #[error("cannot read the image: {0}")]
    Blob(#[from] ArtifactError),
    #[error("thumbnail cache {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the thumbnail task stopped: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The cache folder and the blobs thumbnails are made from.
#[derive(Debug, Clone)]
pub struct Thumbnails {
    cache_dir: PathBuf,
    blobs: Arc<dyn BlobStore>,
}

impl Thumbnails {
    pub fn new(cache_dir: impl Into<PathBuf>, blobs: Arc<dyn BlobStore>) -> Self {
        Self {
            cache_dir: cache_dir.into(),
            blobs,
        }
    }

    /// The JPEG thumbnail of the blob `hash`, fitting in `size` by `size` pixels, from the
    /// cache or made now (decoding runs on a blocking thread).
    ///
    /// # Errors
    ///
    /// [`ThumbnailError`]: a size outside [`SIZES`], a blob too large or not an image, or
    /// the cache folder failing.
    pub async fn get(&self, hash: &BlobHash, size: u32) -> Result<Vec<u8>, ThumbnailError> {
        if !SIZES.contains(&size) {
            return Err(ThumbnailError::UnsupportedSize(size));
        }
        let cached = self.cache_dir.join(format!("{}-{size}.jpg", hash.hex()));
        if let Ok(bytes) = tokio::fs::read(&cached).await {
            return Ok(bytes);
        }

        // Read through the store, so a blob in object storage works as one on disk.
        let blob = self.blobs.open(hash).await?;
        if blob.size() > MAX_SOURCE_BYTES {
            return Err(ThumbnailError::TooLarge { size: blob.size() });
        }
        let bytes = blob
            .into_stream()
            .try_fold(Vec::new(), |mut bytes, chunk| {
                bytes.extend_from_slice(&chunk);
                std::future::ready(Ok(bytes))
            })
            .await
            .map_err(|error| ThumbnailError::Blob(ArtifactError::Source(error)))?;
        let thumbnail = tokio::task::spawn_blocking(move || render(&bytes, size)).await??;

        store(&self.cache_dir, &cached, &thumbnail).await?;
        tracing::debug!(blob.hash = %hash, size, "thumbnail made");
        Ok(thumbnail)
    }
}

/// Decodes `bytes` under limits and encodes the image scaled to fit `size` (never
/// enlarged), flattened to RGB for JPEG.
fn render(bytes: &[u8], size: u32) -> Result<Vec<u8>, ThumbnailError> {
    let not_an_image =
        |error: &dyn std::fmt::Display| ThumbnailError::NotAnImage(error.to_string());
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|error| not_an_image(&error))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SOURCE_SIDE);
    limits.max_image_height = Some(MAX_SOURCE_SIDE);
    reader.limits(limits);
    let image = reader.decode().map_err(|error| not_an_image(&error))?;

    let scaled = if image.width() > size || image.height() > size {
        image.thumbnail(size, size)
    } else {
        image
    };
    let mut encoded = Cursor::new(Vec::new());
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, JPEG_QUALITY);
    scaled
        .to_rgb8()
        .write_with_encoder(encoder)
        .map_err(|error| not_an_image(&error))?;
    Ok(encoded.into_inner())
}

/// Writes through a temporary file and a rename, so a concurrent reader finds the whole
/// thumbnail or none; two requests racing both write, and the last rename wins.
async fn store(cache_dir: &Path, target: &Path, bytes: &[u8]) -> Result<(), ThumbnailError> {
    tokio::fs::create_dir_all(cache_dir)
        .await
        .map_err(|error| io_error(cache_dir, error))?;
    let temporary = cache_dir.join(format!(".{}.tmp", uuid::Uuid::new_v4()));
    tokio::fs::write(&temporary, bytes)
        .await
        .map_err(|error| io_error(&temporary, error))?;
    tokio::fs::rename(&temporary, target)
        .await
        .map_err(|error| io_error(target, error))
}

fn io_error(path: &Path, source: std::io::Error) -> ThumbnailError {
    ThumbnailError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Whether thumbnails can be made of this content type at all.
pub fn is_image(content_type: &str) -> bool {
    let known = [
        ImageFormat::Png,
        ImageFormat::Jpeg,
        ImageFormat::WebP,
        ImageFormat::Gif,
    ];
    known
        .iter()
        .any(|format| format.to_mime_type() == content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbaImage::from_pixel(width, height, image::Rgba([200, 30, 30, 255]));
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, ImageFormat::Png).unwrap();
        bytes.into_inner()
    }

    fn decoded(bytes: &[u8]) -> image::DynamicImage {
        image::load_from_memory_with_format(bytes, ImageFormat::Jpeg).unwrap()
    }

    #[test]
    fn a_large_image_is_scaled_to_fit_keeping_its_shape() {
        let thumbnail = decoded(&render(&png(512, 256), 128).unwrap());
        assert_eq!((thumbnail.width(), thumbnail.height()), (128, 64));
    }

    #[test]
    fn a_small_image_is_never_enlarged() {
        let thumbnail = decoded(&render(&png(40, 30), 256).unwrap());
        assert_eq!((thumbnail.width(), thumbnail.height()), (40, 30));
    }

    #[test]
    fn text_is_not_an_image() {
        let error = render(b"hello, not a picture", 64).unwrap_err();
        assert!(matches!(error, ThumbnailError::NotAnImage(_)), "{error}");
    }

    #[test]
    fn only_picture_types_are_offered() {
        assert!(is_image("image/png") && is_image("image/webp"));
        assert!(!is_image("audio/wav") && !is_image("text/plain"));
    }
}
