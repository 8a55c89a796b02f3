//! The simulator's input/, output/ and temp/ folders and ComfyUI's rules for
//! naming, serving and uploading files in them.
//!
//! Every path a client sends is normalised lexically and must stay inside
//! its folder; the rules (and status codes) are ComfyUI's: 400 for a bad
//! filename, 403 for a subfolder that escapes, 404 for a missing file.

use std::fs;
use std::path::{Component, Path, PathBuf};

use axum::http::StatusCode;

use crate::error::SimError;

/// The three folders ComfyUI serves files from.
#[derive(Debug, Clone)]
pub(crate) struct Dirs {
    pub input: PathBuf,
    pub output: PathBuf,
    pub temp: PathBuf,
}

/// Where a save node writes: ComfyUI's `get_save_image_path` result.
#[derive(Debug)]
pub(crate) struct SavePath {
    pub folder: PathBuf,
    pub base: String,
    pub counter: u32,
    pub subfolder: String,
}

impl Dirs {
    /// Creates `input/`, `output/` and `temp/` under `root`.
    ///
    /// # Errors
    ///
    /// Fails when a folder cannot be created.
    pub fn create(root: &Path) -> Result<Self, SimError> {
        let dirs = Self {
            input: root.join("input"),
            output: root.join("output"),
            temp: root.join("temp"),
        };
        for path in [&dirs.input, &dirs.output, &dirs.temp] {
            fs::create_dir_all(path).map_err(|source| SimError::Folder {
                path: path.display().to_string(),
                source,
            })?;
        }
        Ok(dirs)
    }

    pub fn by_type(&self, kind: &str) -> Option<&Path> {
        match kind {
            "input" => Some(&self.input),
            "output" => Some(&self.output),
            "temp" => Some(&self.temp),
            _ => None,
        }
    }

    /// Empties temp/, as ComfyUI does at every start.
    pub fn wipe_temp(&self) {
        if let Err(error) =
            fs::remove_dir_all(&self.temp).and_then(|()| fs::create_dir_all(&self.temp))
        {
            tracing::warn!(error = %error, "cannot wipe temp folder");
        }
    }

    /// Files directly in input/, sorted: `LoadImage`'s choice list.
    pub fn input_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.input)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.path().is_file())
                    .filter_map(|entry| entry.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Resolves `name` or `name [output]`-style annotated names to a path,
    /// defaulting to input/, or `None` when it would leave its folder.
    pub fn annotated(&self, name: &str) -> Option<PathBuf> {
        let (name, dir) = self.split_annotation(name);
        let dir = dir.unwrap_or(&self.input);
        contained(dir, &dir.join(name))
    }

    fn split_annotation<'n>(&self, name: &'n str) -> (&'n str, Option<&Path>) {
        for kind in ["output", "input", "temp"] {
            if let Some(stripped) = name.strip_suffix(&format!(" [{kind}]")) {
                return (stripped, self.by_type(kind));
            }
        }
        (name, None)
    }

    /// The file `/view` serves, with ComfyUI's status codes for refusals.
    pub fn view(
        &self,
        filename: Option<&str>,
        kind: Option<&str>,
        subfolder: Option<&str>,
    ) -> Result<PathBuf, StatusCode> {
        let filename = filename.ok_or(StatusCode::NOT_FOUND)?;
        let (filename, annotated_dir) = self.split_annotation(filename);
        if filename.is_empty() || filename.starts_with('/') || filename.contains("..") {
            return Err(StatusCode::BAD_REQUEST);
        }
        let mut dir = match annotated_dir {
            Some(dir) => dir.to_path_buf(),
            None => self
                .by_type(kind.unwrap_or("output"))
                .ok_or(StatusCode::BAD_REQUEST)?
                .to_path_buf(),
        };
        if let Some(subfolder) = subfolder {
            dir = contained(&dir, &dir.join(subfolder)).ok_or(StatusCode::FORBIDDEN)?;
        }
        let base = Path::new(filename)
            .file_name()
            .ok_or(StatusCode::NOT_FOUND)?;
        let file = dir.join(base);
        if file.is_file() {
            Ok(file)
        } else {
            Err(StatusCode::NOT_FOUND)
        }
    }

    /// ComfyUI's `get_save_image_path`: subfolder from the prefix, counter
    /// one past the highest `{base}_NNNNN_` already in the folder.
    ///
    /// # Errors
    ///
    /// The exception message ComfyUI raises when the prefix escapes `root`.
    pub fn save_path(
        root: &Path,
        prefix: &str,
        width: u32,
        height: u32,
    ) -> Result<SavePath, String> {
        let prefix = prefix
            .replace("%width%", &width.to_string())
            .replace("%height%", &height.to_string());
        let normal = normalize(Path::new(&prefix));
        let base = normal
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let subfolder = normal
            .parent()
            .map(|parent| parent.to_string_lossy().into_owned())
            .unwrap_or_default();
        let folder = normalize(&root.join(&subfolder));
        if !folder.starts_with(root) {
            return Err(format!(
                "**** ERROR: Saving image outside the output folder is not allowed.\n full_output_folder: {}\n         output_dir: {}\n         commonpath: {}",
                folder.display(),
                root.display(),
                common_prefix(&folder, root).display()
            ));
        }
        let counter = highest_counter(&folder, &base) + 1;
        Ok(SavePath {
            folder,
            base,
            counter,
            subfolder,
        })
    }

    /// Stores an upload the way `/upload/image` does and returns
    /// `(name, subfolder, type)`.
    ///
    /// # Errors
    ///
    /// `BAD_REQUEST` for an unknown type, an empty name or an escaping path.
    pub fn upload(&self, upload: Upload<'_>) -> Result<(String, String, String), StatusCode> {
        let kind = upload.kind.unwrap_or("input");
        let root = self.by_type(kind).ok_or(StatusCode::BAD_REQUEST)?;
        if upload.filename.is_empty() {
            return Err(StatusCode::BAD_REQUEST);
        }
        let folder = normalize(&root.join(upload.subfolder));
        let mut name = upload.filename.to_owned();
        let mut path = contained(root, &folder.join(&name)).ok_or(StatusCode::BAD_REQUEST)?;
        fs::create_dir_all(&folder).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;

        let mut duplicate = false;
        if !upload.overwrite {
            let stem = Path::new(upload.filename)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned());
            let extension = Path::new(upload.filename)
                .extension()
                .map(|e| format!(".{}", e.to_string_lossy()));
            let mut attempt = 1;
            while path.exists() {
                // Same bytes under the same name: reuse it (ComfyUI compares hashes).
                if fs::read(&path).is_ok_and(|existing| existing == upload.bytes) {
                    duplicate = true;
                    break;
                }
                name = format!(
                    "{} ({attempt}){}",
                    stem.as_deref().unwrap_or_default(),
                    extension.as_deref().unwrap_or_default()
                );
                path = folder.join(&name);
                attempt += 1;
            }
        }
        if !duplicate {
            fs::write(&path, upload.bytes).map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        }
        Ok((name, upload.subfolder.to_owned(), kind.to_owned()))
    }
}

/// One `/upload/image` request's fields.
#[derive(Debug)]
pub(crate) struct Upload<'a> {
    pub filename: &'a str,
    pub bytes: &'a [u8],
    pub kind: Option<&'a str>,
    pub subfolder: &'a str,
    pub overwrite: bool,
}

fn highest_counter(folder: &Path, base: &str) -> u32 {
    let prefix = format!("{base}_");
    fs::read_dir(folder)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| entry.file_name().into_string().ok())
                .filter_map(|name| {
                    let rest = name.strip_prefix(&prefix)?;
                    let digits = rest.split('_').next()?;
                    digits
                        .parse::<u32>()
                        .ok()
                        .filter(|_| rest.len() > digits.len())
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// `path` normalised, if it stays inside `root`.
fn contained(root: &Path, path: &Path) -> Option<PathBuf> {
    let normal = normalize(path);
    normal.starts_with(root).then_some(normal)
}

/// Lexical normalisation, like Python's `os.path.normpath`.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                // `..` above the root is the root, as in Python.
                Some(Component::RootDir | Component::Prefix(_)) => {}
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                _ => out.push(".."),
            },
            other => out.push(other),
        }
    }
    out
}

fn common_prefix(left: &Path, right: &Path) -> PathBuf {
    left.components()
        .zip(right.components())
        .take_while(|(a, b)| a == b)
        .map(|(a, _)| a)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_follows_existing_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("e2e")).unwrap();
        fs::write(root.join("e2e/empty_00004_.png"), b"x").unwrap();
        let path = Dirs::save_path(root, "e2e/empty", 8, 8).unwrap();
        assert_eq!(path.subfolder, "e2e");
        assert_eq!(path.base, "empty");
        assert_eq!(path.counter, 5);
    }

    #[test]
    fn escaping_prefix_is_an_exception() {
        let dir = tempfile::tempdir().unwrap();
        let error = Dirs::save_path(dir.path(), "../../escape", 8, 8).unwrap_err();
        assert!(error.starts_with("**** ERROR: Saving image outside the output folder"));
    }

    #[test]
    fn view_refuses_like_comfyui() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = Dirs::create(dir.path()).unwrap();
        assert_eq!(dirs.view(None, None, None), Err(StatusCode::NOT_FOUND));
        assert_eq!(
            dirs.view(Some(""), None, None),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            dirs.view(Some("../x.png"), None, None),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            dirs.view(Some("x.png"), None, Some("../..")),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            dirs.view(Some("x.png"), Some("nope"), None),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            dirs.view(Some("x.png"), None, None),
            Err(StatusCode::NOT_FOUND)
        );
    }
}
