//! Resolving `core/ASSET` references at dispatch: the bytes of each referenced asset are
//! uploaded to the chosen backend's input folder, and the reference in the graph becomes
//! the file name ComfyUI gave them (it may rename on a clash, so its answer is used).

use comfy::{ComfyUiClient, FileType, Upload};
use futures_util::TryStreamExt;
use serde_json::{Map, Value};

use super::Context;
use crate::jobs::model::{AssetId, JobError};

/// Replaces every asset reference among the graph's node inputs by an uploaded file name.
///
/// # Errors
///
/// A [`JobError`] with code `missing_asset` (the asset is gone) or `upload_failed`.
pub async fn resolve(
    context: &Context,
    client: &ComfyUiClient,
    graph: &mut Map<String, Value>,
) -> Result<(), JobError> {
    for (node_id, node) in graph.iter_mut() {
        let Some(inputs) = node.get_mut("inputs").and_then(Value::as_object_mut) else {
            continue;
        };
        for (input, value) in inputs.iter_mut() {
            let Some(asset_id) = asset_reference(value) else {
                continue;
            };
            let name = upload(context, client, &asset_id)
                .await
                .map_err(|(code, message)| {
                    let mut error = super::run::job_error(
                        code,
                        format!("input {input:?} of node {node_id}: {message}"),
                    );
                    error.node_id = Some(node_id.clone());
                    error
                })?;
            *value = Value::String(name);
        }
    }
    Ok(())
}

/// The asset id of a `{"__type": "core/ASSET", "info": {"id": ...}}` value.
fn asset_reference(value: &Value) -> Option<String> {
    if value.get("__type").and_then(Value::as_str) != Some("core/ASSET") {
        return None;
    }
    Some(
        value
            .pointer("/info/id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    )
}

async fn upload(
    context: &Context,
    client: &ComfyUiClient,
    asset_id: &str,
) -> Result<String, (&'static str, String)> {
    let missing = || {
        (
            "missing_asset",
            format!("asset {asset_id:?} does not exist"),
        )
    };
    let id: AssetId = asset_id.parse().map_err(|_| missing())?;
    let asset = context
        .store
        .asset(id)
        .await
        .map_err(|error| ("missing_asset", error.to_string()))?;
    let asset = asset.ok_or_else(missing)?;
    let blob = context
        .blobs
        .open(&asset.hash)
        .await
        .map_err(|_| missing())?;

    // ComfyUI names inputs by file name; the hash keeps equal bytes under one name.
    let extension = asset
        .file_path
        .as_deref()
        .and_then(|path| path.rsplit_once('.'))
        .map(|(_, extension)| extension.to_ascii_lowercase())
        .filter(|extension| {
            extension.chars().all(|c| c.is_ascii_alphanumeric()) && extension.len() <= 8
        })
        .unwrap_or_else(|| "png".to_owned());
    let filename = format!("darkroom-{}.{extension}", &asset.hash.hex()[..32]);
    let body = reqwest::Body::wrap_stream(blob.into_stream().map_err(std::io::Error::other));
    let upload = Upload {
        filename,
        body,
        file_type: FileType::Input,
        subfolder: String::new(),
        overwrite: false,
    };
    let stored = client
        .upload_image(upload)
        .await
        .map_err(|error| ("upload_failed", error.to_string()))?;
    Ok(if stored.subfolder.is_empty() {
        stored.filename
    } else {
        format!("{}/{}", stored.subfolder, stored.filename)
    })
}
