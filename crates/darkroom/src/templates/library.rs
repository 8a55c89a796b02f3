//! The template folder: every `NAME.json` workflow with its optional `NAME.toml` manifest,
//! loaded at start, reloaded on request, and added to through the API.
//!
//! Templates created through the API are written into the same folder, as the same two
//! files a person would write: the folder stays the one source of truth, a reload keeps
//! them, and they can be read, edited and versioned like the shipped ones.
//!
//! A template that does not load stays listed with its error, so a person sees why. One
//! compiled without a backend's `/object_info` (none answered yet) is compiled again the
//! first time it is asked for with one: only then can UI-format workflows be converted
//! and bindings be checked against the inputs' exact types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use comfy::server_info::ObjectInfo;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::error::TemplateError;
use super::manifest::Manifest;
use super::{Template, compile};

/// A workflow and manifest as read from the folder.
#[derive(Debug)]
struct Source {
    workflow: Value,
    manifest: Manifest,
}

#[derive(Debug, Clone)]
struct Entry {
    /// `None` when the files themselves could not be read.
    source: Option<Arc<Source>>,
    compiled: Result<Arc<Template>, String>,
    with_object_info: bool,
}

/// The loaded templates of one folder.
#[derive(Debug)]
pub struct Library {
    dir: PathBuf,
    entries: RwLock<BTreeMap<String, Entry>>,
    /// Serialises reloads and creations, so a creation is never lost to a reload that
    /// read the folder before the new files landed.
    writing: tokio::sync::Mutex<()>,
}

/// How one template fared in a (re)load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    pub name: String,
    /// Why it did not load.
    pub error: Option<String>,
}

impl Library {
    /// Loads every template in `dir`, creating the folder when it does not exist.
    ///
    /// # Errors
    ///
    /// [`TemplateError::Io`] when the folder cannot be created or listed; a template that
    /// does not load is not an error here.
    pub async fn open(dir: PathBuf, info: Option<&ObjectInfo>) -> Result<Self, TemplateError> {
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| TemplateError::Io {
                path: dir.clone(),
                source,
            })?;
        let library = Self {
            dir,
            entries: RwLock::new(BTreeMap::new()),
            writing: tokio::sync::Mutex::new(()),
        };
        library.reload(info).await?;
        Ok(library)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Reads the folder again and replaces every template at once.
    ///
    /// # Errors
    ///
    /// [`TemplateError::Io`] when the folder cannot be listed.
    pub async fn reload(&self, info: Option<&ObjectInfo>) -> Result<Vec<Loaded>, TemplateError> {
        let _writing = self.writing.lock().await;
        let mut entries = BTreeMap::new();
        for (name, source) in read_folder(&self.dir).await? {
            let entry = build(&name, source, info);
            if let Err(error) = &entry.compiled {
                tracing::warn!(template.name = %name, %error, "template did not load");
            }
            entries.insert(name, entry);
        }
        let loaded = entries
            .iter()
            .map(|(name, entry)| Loaded {
                name: name.clone(),
                error: entry.compiled.as_ref().err().cloned(),
            })
            .collect::<Vec<_>>();
        tracing::info!(dir = %self.dir.display(), templates = loaded.len(), "templates loaded");
        *self
            .entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = entries;
        Ok(loaded)
    }

    /// Every template by name, loaded or not.
    pub fn list(
        &self,
        info: Option<&ObjectInfo>,
    ) -> Vec<(String, Result<Arc<Template>, TemplateError>)> {
        let names: Vec<String> = self.read().keys().cloned().collect();
        names
            .into_iter()
            .map(|name| {
                let template = self.template(&name, info);
                (name, template)
            })
            .collect()
    }

    /// The template `name`, compiled again first if `info` can tell it more.
    ///
    /// # Errors
    ///
    /// [`TemplateError::NotFound`], or [`TemplateError::Unusable`] saying why it did not
    /// load.
    pub fn template(
        &self,
        name: &str,
        info: Option<&ObjectInfo>,
    ) -> Result<Arc<Template>, TemplateError> {
        let entry = self
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| TemplateError::NotFound {
                name: name.to_owned(),
            })?;
        let entry = match (&entry.source, info) {
            (Some(source), Some(_)) if !entry.with_object_info => {
                let fresh = build(name, Ok(Arc::clone(source)), info);
                let mut entries = self
                    .entries
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                // Only replace what was read: a reload in between wins.
                if entries
                    .get(name)
                    .and_then(|current| current.source.as_ref())
                    .is_some_and(|current| Arc::ptr_eq(current, source))
                {
                    entries.insert(name.to_owned(), fresh.clone());
                }
                fresh
            }
            _ => entry,
        };
        entry.compiled.map_err(|detail| TemplateError::Unusable {
            name: name.to_owned(),
            detail,
        })
    }

    /// Compiles a new template and writes it into the folder.
    ///
    /// # Errors
    ///
    /// [`TemplateError::InvalidName`], [`TemplateError::AlreadyExists`], the compile error
    /// of a template that would not load, or [`TemplateError::Io`].
    pub async fn create(
        &self,
        name: &str,
        workflow: Value,
        manifest: Manifest,
        info: Option<&ObjectInfo>,
    ) -> Result<Arc<Template>, TemplateError> {
        check_name(name)?;
        let _writing = self.writing.lock().await;
        let json_path = self.dir.join(format!("{name}.json"));
        let exists = tokio::fs::try_exists(&json_path).await.unwrap_or(true);
        if exists || self.read().contains_key(name) {
            return Err(TemplateError::AlreadyExists {
                name: name.to_owned(),
            });
        }
        let template = Arc::new(compile::compile(name, &workflow, &manifest, info)?);

        let toml = manifest
            .to_toml()
            .map_err(|detail| TemplateError::Manifest {
                name: name.to_owned(),
                detail,
            })?;
        let json = serde_json::to_string_pretty(&workflow).unwrap_or_default();
        // The manifest lands first: the folder never holds the workflow without it.
        write_atomically(&self.dir.join(format!("{name}.toml")), &toml).await?;
        write_atomically(&json_path, &json).await?;

        let entry = Entry {
            source: Some(Arc::new(Source { workflow, manifest })),
            compiled: Ok(Arc::clone(&template)),
            with_object_info: info.is_some(),
        };
        self.entries
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(name.to_owned(), entry);
        tracing::info!(template.name = %name, "template created");
        Ok(template)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Entry>> {
        // A panic while holding the lock cannot leave the map half-written: every write
        // is one insert or one swap.
        self.entries
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn build(name: &str, source: Result<Arc<Source>, String>, info: Option<&ObjectInfo>) -> Entry {
    let compiled = source.as_ref().map_err(Clone::clone).and_then(|source| {
        compile::compile(name, &source.workflow, &source.manifest, info)
            .map(Arc::new)
            .map_err(|error| error.to_string())
    });
    Entry {
        source: source.ok(),
        compiled,
        with_object_info: info.is_some(),
    }
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
async fn read_folder(
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
async fn write_atomically(path: &Path, text: &str) -> Result<(), TemplateError> {
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
