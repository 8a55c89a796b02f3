//! The template folder on disk: reading every `NAME.json` with the `NAME.toml` beside
//! it, and writing a new pair so that no reader ever sees half a file. Names are checked
//! here because they are file names.

use std::path::Path;
use std::sync::Arc;

use comfy::server_info::ObjectInfo;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::error::TemplateError;
use super::manifest::Manifest;
use super::{Template, compile};

/// A workflow and manifest as read from the folder.
#[derive(Debug)]
pub struct Source {
    pub workflow: Value,
    pub manifest: Manifest,
}

/// Template names are file names too: no separators, no leading dot. `reload` is taken by
/// the API's `POST /api/templates/reload`.
///
/// # Errors
///
/// [`TemplateError::InvalidName`].
pub fn check_name(name: &str) -> Result<(), TemplateError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'));
    if first_ok && rest_ok && name.len() <= 64 && name != "reload" {
        Ok(())
    } else {
        Err(TemplateError::InvalidName {
            name: name.to_owned(),
        })
    }
}

/// Every `NAME.json` in `dir` with its manifest, or why it could not be read.
pub async fn read_folder(
    dir: &Path,
) -> Result<Vec<(String, Result<Arc<Source>, String>)>, TemplateError> {
    let io = |source| TemplateError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut listing = tokio::fs::read_dir(dir).await.map_err(io)?;
    let mut found = Vec::new();
    while let Some(item) = listing.next_entry().await.map_err(io)? {
        let path = item.path();
        let Some(name) = path
            .file_name()
            .and_then(|name| name.to_str())
            .and_then(|name| name.strip_suffix(".json"))
        else {
            continue;
        };
        if check_name(name).is_err() {
            tracing::warn!(path = %path.display(), "file skipped: its name is not a template name");
            continue;
        }
        found.push((
            name.to_owned(),
            read_source(name, &path).await.map(Arc::new),
        ));
    }
    found.sort_by(|left, right| left.0.cmp(&right.0));
    Ok(found)
}

async fn read_source(name: &str, json_path: &Path) -> Result<Source, String> {
    let text = tokio::fs::read_to_string(json_path)
        .await
        .map_err(|error| {
            format!(
                "template {name:?}: cannot read {}: {error}",
                json_path.display()
            )
        })?;
    let workflow = serde_json::from_str(&text).map_err(|error| {
        format!(
            "template {name:?}: {} is not valid JSON: {error}",
            json_path.display()
        )
    })?;
    let manifest_path = json_path.with_extension("toml");
    let manifest = match tokio::fs::read_to_string(&manifest_path).await {
        Ok(text) => Manifest::from_toml(&text).map_err(|error| {
            format!(
                "template {name:?}: manifest {}: {error}",
                manifest_path.display()
            )
        })?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Manifest::default(),
        Err(error) => {
            return Err(format!(
                "template {name:?}: cannot read {}: {error}",
                manifest_path.display()
            ));
        }
    };
    Ok(Source { workflow, manifest })
}

/// Reads one workflow file and the manifest beside it, and compiles them; the template is
/// named after the file. For `darkroom template show`.
///
/// # Errors
///
/// The file cannot be read or the template does not load.
pub async fn compile_file(
    path: &Path,
    info: Option<&ObjectInfo>,
) -> Result<Template, TemplateError> {
    let name = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("template");
    let source = read_source(name, path)
        .await
        .map_err(|detail| TemplateError::Unusable {
            name: name.to_owned(),
            detail,
        })?;
    compile::compile(name, &source.workflow, &source.manifest, info)
}

/// Writes through a temporary file and a rename, so a reader sees the old file or the new
/// one, never half of one.
pub async fn write_atomically(path: &Path, text: &str) -> Result<(), TemplateError> {
    let io = |source| TemplateError::Io {
        path: path.to_owned(),
        source,
    };
    let file_name = path
        .file_name()
        .and_then(|name| name.to_str())
        .unwrap_or("template");
    let temporary = path.with_file_name(format!(".{file_name}.tmp"));
    let mut file = tokio::fs::File::create(&temporary).await.map_err(io)?;
    file.write_all(text.as_bytes()).await.map_err(io)?;
    file.sync_all().await.map_err(io)?;
    tokio::fs::rename(&temporary, path).await.map_err(io)
}
