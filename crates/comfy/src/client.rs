//! `ComfyUiClient`: typed calls to every HTTP route a gateway needs.
//!
//! The client probes the server once (version, features, whether `/api/jobs` exists) and
//! adapts the calls whose behaviour differs by version. It never buffers a file whole:
//! `/view` comes back as a byte stream and uploads go out as one.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use url::Url;

use crate::error::ComfyError;
use crate::history::{HistoryEntry, parse_history_body};
use crate::ids::PromptId;
use crate::outputs::{FileRef, FileType};
use crate::prompt::{PromptAccepted, PromptRejection, PromptRequest};
use crate::server_info::{Capabilities, Features, ObjectInfo, QueueSnapshot, SystemStats, Version};

/// A byte stream of one file served by `/view`.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, ComfyError>> + Send>>;

/// A file being downloaded from `/view`.
pub struct Download {
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
    pub body: ByteStream,
}

impl std::fmt::Debug for Download {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Download")
            .field("content_type", &self.content_type)
            .field("content_length", &self.content_length)
            .finish_non_exhaustive()
    }
}

/// A file to send to `/upload/image`.
#[derive(Debug)]
pub struct Upload {
    pub filename: String,
    pub body: reqwest::Body,
    pub file_type: FileType,
    pub subfolder: String,
    pub overwrite: bool,
}

/// Client of one ComfyUI server.
#[derive(Debug, Clone)]
pub struct ComfyUiClient {
    http: reqwest::Client,
    base: Url,
    capabilities: std::sync::Arc<OnceCell<Capabilities>>,
    timeouts: Timeouts,
}

/// How long the client waits on a server: no call waits forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Opening a connection.
    pub connect: Duration,
    /// One JSON call, start to end; `/object_info` on a big install is the slowest
    /// (~0.3 s). Uploads get four times as long.
    pub call: Duration,
    /// How long a response (a download above all) may stall between two chunks.
    pub read: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            call: Duration::from_secs(30),
            read: Duration::from_secs(60),
        }
    }
}

impl ComfyUiClient {
    /// A client for the server at `base` (such as `http://127.0.0.1:8188/`).
    ///
    /// # Errors
    ///
    /// [`ComfyError::InvalidUrl`] when `base` is not an http(s) URL.
    pub fn new(base: &str) -> Result<Self, ComfyError> {
        Self::with_timeouts(base, Timeouts::default())
    }

    /// A client with its own timeouts.
    ///
    /// # Errors
    ///
    /// [`ComfyError::InvalidUrl`] when `base` is not an http(s) URL.
    pub fn with_timeouts(base: &str, timeouts: Timeouts) -> Result<Self, ComfyError> {
        let invalid = |message: String| ComfyError::InvalidUrl {
            url: base.to_owned(),
            message,
        };
        let mut base = Url::parse(base).map_err(|error| invalid(error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https".to_owned()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .read_timeout(timeouts.read)
            .build()
            .map_err(|error| invalid(error.to_string()))?;
        Ok(Self {
            http,
            base,
            capabilities: std::sync::Arc::default(),
            timeouts,
        })
    }

    /// The timeouts this client applies.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The server's base URL.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// The websocket URL for `client_id`.
    pub fn websocket_url(&self, client_id: &crate::ClientId) -> Url {
        let mut url = self.route("ws");
        let scheme = if self.base.scheme() == "https" {
            "wss"
        } else {
            "ws"
        };
        // Both schemes are special in `url`, so switching between them cannot fail.
        let _ = url.set_scheme(scheme);
        url.query_pairs_mut()
            .append_pair("clientId", client_id.as_str());
        url
    }

    /// What the server can do: probed on the first call, then remembered.
    ///
    /// # Errors
    ///
    /// [`ComfyError`] when the server cannot be reached or answers nonsense.
    pub async fn capabilities(&self) -> Result<&Capabilities, ComfyError> {
        self.capabilities.get_or_try_init(|| self.probe()).await
    }

    /// Forgets the probed capabilities, so the next call probes again (after a restart,
    /// the server may be another version).
    pub fn forget_capabilities(&mut self) {
        self.capabilities = std::sync::Arc::default();
    }

    async fn probe(&self) -> Result<Capabilities, ComfyError> {
        let stats = self.system_stats().await?;
        let version = stats
            .system
            .comfyui_version
            .as_deref()
            .and_then(Version::parse);
        let jobs = self.send(Method::GET, "api/jobs?limit=1", None).await?;
        let capabilities = Capabilities::for_version(version, jobs.status() == StatusCode::OK);
        tracing::debug!(comfyui.version = %capabilities.version_text(), ?capabilities, "probed comfyui");
        Ok(capabilities)
    }

    /// `POST /prompt`. Drops a caller-chosen prompt id when the server cannot honour it;
    /// the returned [`PromptAccepted`] always carries the id the server used.
    ///
    /// # Errors
    ///
    /// [`ComfyError::Rejected`] with every node error on a 400; other [`ComfyError`]s when
    /// the server is unreachable or answers otherwise.
    pub async fn queue_prompt(
        &self,
        request: &PromptRequest,
    ) -> Result<PromptAccepted, ComfyError> {
        let mut body = serde_json::to_value(request).map_err(|error| ComfyError::Decode {
            route: "/prompt",
            message: error.to_string(),
        })?;
        if !self.capabilities().await?.client_prompt_id
            && let Some(fields) = body.as_object_mut()
        {
            fields.remove("prompt_id");
        }

        let response = self.send(Method::POST, "prompt", Some(body)).await?;
        match response.status() {
            StatusCode::OK => read_json(response, "/prompt").await,
            StatusCode::BAD_REQUEST => {
                let rejection: PromptRejection = read_json(response, "/prompt").await?;
                Err(ComfyError::Rejected(Box::new(rejection)))
            }
            _ => Err(unexpected(response, "/prompt").await),
        }
    }

    /// `GET /history/{prompt_id}`: `None` while the prompt is unknown, pending or running.
    ///
    /// # Errors
    ///
    /// [`ComfyError`] when unreachable or the entry is malformed.
    pub async fn history(&self, prompt_id: &PromptId) -> Result<Option<HistoryEntry>, ComfyError> {
        let path = format!("history/{}", urlencode(prompt_id.as_str()));
        let body: Value = self.get_json(&path, "/history/{prompt_id}").await?;
        parse_history_body(prompt_id, &body).map_err(|error| ComfyError::Decode {
            route: "/history/{prompt_id}",
            message: error.to_string(),
        })
    }

    /// `GET /queue`.
    ///
    /// # Errors
    ///
    /// [`ComfyError`] when unreachable or the body is malformed.
    pub async fn queue(&self) -> Result<QueueSnapshot, ComfyError> {
        let body: Value = self.get_json("queue", "/queue").await?;
        QueueSnapshot::parse(&body).map_err(|message| ComfyError::Decode {
            route: "/queue",
            message,
        })
    }

    /// `POST /queue {"delete": [...]}`: removes pending prompts. ComfyUI ignores ids that
    /// are unknown or running, and says nothing either way; check `/queue` to know.
    ///
    /// # Errors
    ///
    /// [`ComfyError`] when unreachable or refused.
    pub async fn delete_from_queue(&self, prompt_ids: &[PromptId]) -> Result<(), ComfyError> {
        self.post_expecting_ok("queue", "/queue", json!({ "delete": prompt_ids }))
            .await
    }

    /// `POST /interrupt {"prompt_id"}`: stops that prompt if it is the one running.
    ///
    /// # Errors
    ///
    /// [`ComfyError::Unsupported`] on servers before 0.3.57, where every interrupt is
    /// global; use [`Self::interrupt_whatever_runs`] there, knowingly.
    pub async fn interrupt(&self, prompt_id: &PromptId) -> Result<(), ComfyError> {
        let capabilities = self.capabilities().await?;
        if !capabilities.interrupt_by_id {
            return Err(ComfyError::Unsupported {
                version: capabilities.version_text(),
                feature: "interrupting one prompt by id",
            });
        }
        self.post_expecting_ok("interrupt", "/interrupt", json!({ "prompt_id": prompt_id }))
            .await
    }

    /// `POST /interrupt` with no body: stops whatever runs, whoever posted it.
    ///
    /// # Errors
    ///
    /// [`ComfyError`] when unreachable or refused.
    pub async fn interrupt_whatever_runs(&self) -> Result<(), ComfyError> {
        self.post_expecting_ok("interrupt", "/interrupt", json!({}))
            .await
    }

    /// `GET /view`: the file as a stream.
    ///
    /// # Errors
    ///
    /// [`ComfyError::FileNotFound`] on a 404; other [`ComfyError`]s otherwise.
    pub async fn view(&self, file: &FileRef) -> Result<Download, ComfyError> {
        let mut url = self.route("view");
        url.query_pairs_mut()
            .append_pair("filename", &file.filename)
            .append_pair("subfolder", &file.subfolder)
            .append_pair("type", file.file_type.as_str());
        let response =
            self.http
                .get(url.clone())
                .send()
                .await
                .map_err(|source| ComfyError::Unreachable {
                    url: url.to_string(),
                    source,
                })?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(ComfyError::FileNotFound {
                    filename: file.filename.clone(),
                    subfolder: file.subfolder.clone(),
                    kind: file.file_type.to_string(),
                });
            }
            _ => return Err(unexpected(response, "/view").await),
        }

        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let content_length = response.content_length();
        let url_text = url.to_string();
        let body = response
            .bytes_stream()
            .map_err(move |source| ComfyError::Unreachable {
                url: url_text.clone(),
                source,
            });
        Ok(Download {
            content_type,
            content_length,
            body: Box::pin(body),
        })
    }

    /// `POST /upload/image`. Returns where the server put the file: on a name clash it may
    /// rename it (`x (1).png`), so always use the returned name.
    ///
    /// # Errors
    ///
    /// [`ComfyError`] when unreachable or refused.
    pub async fn upload_image(&self, upload: Upload) -> Result<FileRef, ComfyError> {
        let part = reqwest::multipart::Part::stream(upload.body).file_name(upload.filename);
        let form = reqwest::multipart::Form::new()
            .part("image", part)
            .text("type", upload.file_type.as_str())
            .text("subfolder", upload.subfolder)
            .text("overwrite", if upload.overwrite { "true" } else { "false" });
        let url = self.route("upload/image");
        let response = self
            .http
            .post(url.clone())
            .multipart(form)
            .timeout(self.timeouts.call * 4)
            .send()
            .await
            .map_err(|source| ComfyError::Unreachable {
                url: url.to_string(),
                source,
            })?;
        if response.status() != StatusCode::OK {
            return Err(unexpected(response, "/upload/image").await);
        }
        let body: Value = read_json(response, "/upload/image").await?;
        let decode = |message: &str| ComfyError::Decode {
            route: "/upload/image",
            message: message.to_owned(),
        };
        let name = body
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| decode("no name"))?;
        let file_type = match body.get("type").and_then(Value::as_str) {
            Some("temp") => FileType::Temp,
            Some("output") => FileType::Output,
            _ => FileType::Input,
        };
        Ok(FileRef {
            filename: name.to_owned(),
            subfolder: body
                .get("subfolder")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            file_type,
        })
    }

    /// `GET /object_info`: every node class the server knows.
    ///
    /// # Errors
    ///
    /// [`ComfyError`] when unreachable or malformed.
    pub async fn object_info(&self) -> Result<ObjectInfo, ComfyError> {
        self.get_json("object_info", "/object_info").await
    }

    /// `GET /system_stats`.
    ///
    /// # Errors
    ///
    /// [`ComfyError`] when unreachable or malformed.
    pub async fn system_stats(&self) -> Result<SystemStats, ComfyError> {
        self.get_json("system_stats", "/system_stats").await
    }

    /// `GET /features`.
    ///
    /// # Errors
    ///
    /// [`ComfyError`] when unreachable or malformed.
    pub async fn features(&self) -> Result<Features, ComfyError> {
        self.get_json("features", "/features").await
    }

    /// `GET /api/jobs/{id}` on servers that have it (see [`Capabilities::jobs_api`]):
    /// `None` for an unknown id.
    ///
    /// # Errors
    ///
    /// [`ComfyError::Unsupported`] on servers without the route.
    pub async fn job(&self, prompt_id: &PromptId) -> Result<Option<Value>, ComfyError> {
        let capabilities = self.capabilities().await?;
        if !capabilities.jobs_api {
            return Err(ComfyError::Unsupported {
                version: capabilities.version_text(),
                feature: "/api/jobs",
            });
        }
        let path = format!("api/jobs/{}", urlencode(prompt_id.as_str()));
        let response = self.send(Method::GET, &path, None).await?;
        match response.status() {
            StatusCode::OK => read_json(response, "/api/jobs/{id}").await.map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(unexpected(response, "/api/jobs/{id}").await),
        }
    }

    fn route(&self, path: &str) -> Url {
        // `base` ends with '/', and every path here is relative, so join cannot fail.
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response, ComfyError> {
        let url = self.route(path);
        let mut request = self
            .http
            .request(method, url.clone())
            .timeout(self.timeouts.call);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request
            .send()
            .await
            .map_err(|source| ComfyError::Unreachable {
                url: url.to_string(),
                source,
            })
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        route: &'static str,
    ) -> Result<T, ComfyError> {
        let response = self.send(Method::GET, path, None).await?;
        if response.status() != StatusCode::OK {
            return Err(unexpected(response, route).await);
        }
        read_json(response, route).await
    }

    async fn post_expecting_ok(
        &self,
        path: &str,
        route: &'static str,
        body: Value,
    ) -> Result<(), ComfyError> {
        let response = self.send(Method::POST, path, Some(body)).await?;
        if response.status() != StatusCode::OK {
            return Err(unexpected(response, route).await);
        }
        Ok(())
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    route: &'static str,
) -> Result<T, ComfyError> {
    let url = response.url().to_string();
    let bytes = response
        .bytes()
        .await
        .map_err(|source| ComfyError::Unreachable { url, source })?;
    serde_json::from_slice(&bytes).map_err(|error| ComfyError::Decode {
        route,
        message: error.to_string(),
    })
}

async fn unexpected(response: reqwest::Response, route: &'static str) -> ComfyError {
    let status = response.status();
    let mut body = response.text().await.unwrap_or_default();
    body.truncate(body.floor_char_boundary(2000));
    ComfyError::Status {
        route,
        status,
        body,
    }
}

fn urlencode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
