//! `GET /view` and `POST /upload/image`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Multipart, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio_util::io::ReaderStream;

use crate::files::Upload;
use crate::shared::Shared;
use crate::state::ServedFile;

pub(super) async fn view(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let delay = shared.knobs().view_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let field = |name: &str| query.get(name).map(String::as_str);
    let path = match shared
        .dirs
        .view(field("filename"), field("type"), field("subfolder"))
    {
        Ok(path) => path,
        Err(status) => return status.into_response(),
    };
    // Streamed from disk with its length, as aiohttp's FileResponse does, so a
    // file of hundreds of megabytes is never held in memory.
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Ok(metadata) = file.metadata().await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let headers = [
        (header::CONTENT_TYPE, content_type(&path).to_owned()),
        (header::CONTENT_DISPOSITION, format!("filename=\"{name}\"")),
        (header::CONTENT_LENGTH, metadata.len().to_string()),
    ];
    let served = ServedFile {
        filename: field("filename").unwrap_or_default().to_owned(),
        subfolder: field("subfolder").unwrap_or_default().to_owned(),
        file_type: field("type").unwrap_or("output").to_owned(),
    };
    // Counted once the file is open: what it holds is served even if it is deleted now.
    shared.state().served.push(served);
    shared.files_served.send_modify(|count| *count += 1);
    let body = Body::from_stream(ReaderStream::new(file));
    (headers, body).into_response()
}

/// By extension, with ComfyUI's rule that nothing is served as a type a
/// browser would execute.
fn content_type(path: &Path) -> &'static str {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    match extension.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "wav" => "audio/x-wav",
        "mp3" => "audio/mpeg",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "txt" => "text/plain",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

pub(super) async fn upload(
    State(shared): State<Arc<Shared>>,
    mut multipart: Multipart,
) -> Response {
    let mut image: Option<(String, Vec<u8>)> = None;
    let mut fields: HashMap<String, String> = HashMap::new();
    while let Ok(Some(field)) = multipart.next_field().await {
        let name = field.name().unwrap_or_default().to_owned();
        if name == "image" {
            let filename = field.file_name().unwrap_or_default().to_owned();
            let Ok(bytes) = field.bytes().await else {
                return StatusCode::BAD_REQUEST.into_response();
            };
            image = Some((filename, bytes.to_vec()));
        } else if let Ok(text) = field.text().await {
            fields.insert(name, text);
        }
    }
    let Some((filename, bytes)) = image else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let overwrite = matches!(
        fields.get("overwrite").map(String::as_str),
        Some("true" | "1")
    );
    let upload = Upload {
        filename: &filename,
        bytes: &bytes,
        kind: fields.get("type").map(String::as_str),
        subfolder: fields.get("subfolder").map_or("", String::as_str),
        overwrite,
    };
    match shared.dirs.upload(upload) {
        Ok((name, subfolder, kind)) => {
            Json(json!({"name": name, "subfolder": subfolder, "type": kind})).into_response()
        }
        Err(status) => status.into_response(),
    }
}
