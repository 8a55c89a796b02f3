//! The HTTP side of the client: JSON calls, uploads and downloads against one Darkroom
//! server, with every failure sorted into a [`ClientError`] by whose fault it is.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use url::Url;

use super::ClientError;

/// How long connecting may take before the server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of one Darkroom server.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

impl Client {
    /// A client of the server at `base`, sending `api_key` with every request when given.
    ///
    /// # Errors
    ///
    /// [`ClientError::Server`] when the HTTP client cannot be built;
    /// [`ClientError::InvalidInput`] for a key that cannot be a header.
    pub fn new(base: &Url, api_key: Option<&str>) -> Result<Self, ClientError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(key) = api_key {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {key}"))
                .map_err(|_| ClientError::invalid("the API key holds characters no key has"))?;
            // Kept out of any debug output of the request.
            value.set_sensitive(true);
            headers.insert(reqwest::header::AUTHORIZATION, value);
        }
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("darkroom-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| ClientError::Server(error.to_string()))?;
        Ok(Self {
            http,
            base: base.clone(),
        })
    }

    /// `path` (or a full URL the server handed out) against the server's address.
    pub fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path)
            .map_err(|error| ClientError::invalid(format!("bad address {path:?}: {error}")))
    }

    /// # Errors
    ///
    /// See [`Client::send`].
    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        let request = self.http.get(self.url(path)?);
        read_json(self.send(request).await?).await
    }

    /// # Errors
    ///
    /// See [`Client::send`].
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let request = self.http.request(Method::POST, self.url(path)?).json(body);
        read_json(self.send(request).await?).await
    }

    /// Uploads a local file as an asset and returns the asset.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] when the file cannot be read; see [`Client::send`].
    pub async fn upload(&self, file: &Path) -> Result<Value, ClientError> {
        let bytes = tokio::fs::read(file)
            .await
            .map_err(|source| ClientError::Io {
                action: "cannot read",
                path: file.to_owned(),
                source,
            })?;
        let name = file
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("upload")
            .to_owned();
        let content_type = content_type_of(&name);
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name.clone())
            .mime_str(content_type)
            .map_err(|error| ClientError::Server(error.to_string()))?;
        let form = reqwest::multipart::Form::new()
            .text("content_type", content_type)
            .text("file_path", name)
            .part("file", part);
        let request = self.http.post(self.url("/api/v2/assets")?).multipart(form);
        read_json(self.send(request).await?).await
    }

    /// Streams the content at `url` into `target`, through a temporary file and a rename so
    /// a half-written output never stands under its final name. Returns the byte count.
    ///
    /// # Errors
    ///
    /// [`ClientError::Io`] when the file cannot be written; see [`Client::send`].
    pub async fn download(&self, url: &str, target: &Path) -> Result<u64, ClientError> {
        let response = self.send(self.http.get(self.url(url)?)).await?;
        let io = |action, source| ClientError::Io {
            action,
            path: target.to_owned(),
            source,
        };
        let partial = target.with_extension("part");
        let mut file = tokio::fs::File::create(&partial)
            .await
            .map_err(|source| io("cannot create", source))?;
        let mut written = 0;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|error| self.unreachable(&error))?;
            file.write_all(&chunk)
                .await
                .map_err(|source| io("cannot write", source))?;
            written += chunk.len() as u64;
        }
        file.sync_all()
            .await
            .map_err(|source| io("cannot write", source))?;
        tokio::fs::rename(&partial, target)
            .await
            .map_err(|source| io("cannot rename into", source))?;
        Ok(written)
    }

    /// The job's event stream, resuming after `last_seq` when it is not 0.
    ///
    /// # Errors
    ///
    /// See [`Client::send`].
    pub async fn events(&self, id: &str, last_seq: u64) -> Result<reqwest::Response, ClientError> {
        let mut request = self
            .http
            .get(self.url(&format!("/api/v2/jobs/{id}/events"))?)
            .header("accept", "text/event-stream");
        if last_seq > 0 {
            request = request.header("last-event-id", last_seq.to_string());
        }
        self.send(request).await
    }

    /// Sends a request; a refused connection is `Unreachable`, a 4xx answer
    /// `InvalidInput` with the server's message, a 5xx answer `Server`.
    ///
    /// # Errors
    ///
    /// As above.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, ClientError> {
        let response = request
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map_or_else(|| format!("the server answered {status}"), str::to_owned);
        let details = body
            .pointer("/error/details")
            .filter(|details| !details.is_null())
            .cloned();
        let message = if status == StatusCode::UNAUTHORIZED {
            format!("{message} (give a key with --api-key or DARKROOM_API_KEY)")
        } else {
            message
        };
        if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
            return Err(ClientError::InvalidInput { message, details });
        }
        Err(ClientError::Server(message))
    }

    pub fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        let mut reason = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(cause) = source {
            reason = format!("{reason}: {cause}");
            source = cause.source();
        }
        ClientError::Unreachable {
            server: self.base.to_string(),
            reason,
        }
    }
}

async fn read_json(response: reqwest::Response) -> Result<Value, ClientError> {
    response
        .json()
        .await
        .map_err(|error| ClientError::Server(format!("the server's answer is not JSON: {error}")))
}

/// The content type an upload is declared with, from its file name.
fn content_type_of(name: &str) -> &'static str {
    let extension = name
        .rsplit_once('.')
        .map(|(_, extension)| extension.to_ascii_lowercase());
    match extension.as_deref() {
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("webp") => "image/webp",
        Some("gif") => "image/gif",
        _ => "application/octet-stream",
    }
}
