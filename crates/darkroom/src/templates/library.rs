//! The loaded templates: every `NAME.json` workflow of the template folder with its
//! optional `NAME.toml` manifest, loaded at start, reloaded on request, and added to
//! through the API.
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

use super::error::TemplateError;
use super::folder::{Source, check_name, read_folder, write_atomically};
use super::manifest::Manifest;
use super::{Template, compile};

#[derive(Debug, Clone)]
struct Entry {
    /// `None` when the files themselves could not be read.
    source: Option<Arc<Source>>,
    compiled: Result<Arc<Template>, String>,
    /// It failed only for want of `/object_info`: a client may retry once a backend answers.
    needs_object_info: bool,
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
        let name = name.to_owned();
        entry.compiled.map_err(|detail| {
            if entry.needs_object_info {
                TemplateError::NeedsObjectInfo { name }
            } else {
                TemplateError::Unusable { name, detail }
            }
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
            needs_object_info: false,
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
    let mut needs_object_info = false;
    let compiled = source.as_ref().map_err(Clone::clone).and_then(|source| {
        compile::compile(name, &source.workflow, &source.manifest, info)
            .map(Arc::new)
            .map_err(|error| {
                needs_object_info = matches!(error, TemplateError::NeedsObjectInfo { .. });
                error.to_string()
            })
    });
    Entry {
        source: source.ok(),
        compiled,
        needs_object_info,
        with_object_info: info.is_some(),
    }
}
