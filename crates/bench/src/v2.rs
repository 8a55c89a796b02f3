//! A client of the Comfy API v2 contract, as an SDK would use it: submit a workflow, follow
//! the job's server-sent events to its end, download its outputs. Darkroom and
//! `comfy-api-proxy` both serve the contract, so one client drives both.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// How long one job may take before the benchmark gives up on it.
pub const JOB_PATIENCE: Duration = Duration::from_secs(120);

/// A v2 gateway at `base`.
#[derive(Debug, Clone)]
pub struct V2Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl V2Client {
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
        }
    }

    /// Submits `workflow`; returns the job id.
    ///
    /// # Errors
    ///
    /// When the gateway does not answer `201`.
    pub async fn submit(&self, workflow: &Value) -> anyhow::Result<String> {
        let response = self
            .http
            .post(format!("{}/api/v2/jobs", self.base))
            .json(&json!({ "workflow": workflow }))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or_default();
        if status != reqwest::StatusCode::CREATED {
            bail!("job refused with {status}: {body}");
        }
        body["id"]
            .as_str()
            .map(str::to_owned)
            .context("the created job has no id")
    }

    /// `GET /api/v2/jobs/{id}`.
    ///
    /// # Errors
    ///
    /// When the gateway does not answer `200` with JSON.
    pub async fn job(&self, id: &str) -> anyhow::Result<Value> {
        let response = self
            .http
            .get(format!("{}/api/v2/jobs/{id}", self.base))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("job {id}: {}", response.status());
        }
        Ok(response.json().await?)
    }

    /// Opens the job's event stream.
    ///
    /// # Errors
    ///
    /// When the gateway does not answer `200`.
    pub async fn events(&self, id: &str) -> anyhow::Result<EventStream> {
        let response = self
            .http
            .get(format!("{}/api/v2/jobs/{id}/events", self.base))
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("events of job {id}: {}", response.status());
        }
        Ok(EventStream {
            response,
            buffer: Vec::new(),
        })
    }

    /// Follows the job's events until its terminal `status`; returns the job (as
    /// `GET /api/v2/jobs/{id}` shows it when the stream's last status did not list its
    /// outputs) and how many times the stream announced an end the job did not have.
    ///
    /// A gateway that reads a run's state from ComfyUI in two steps (`/history`, then
    /// `/queue`) can miss a run that ends between them and call it over (comfy-api-proxy
    /// says `expired`). Such an end is checked against the job itself; when the job is in
    /// fact going on or succeeded, the stream is opened again and the misreport counted.
    ///
    /// # Errors
    ///
    /// When the job does not succeed, or it takes too long.
    pub async fn wait_succeeded(&self, id: &str) -> anyhow::Result<(Value, u32)> {
        let follow = async {
            let mut misreports = 0;
            loop {
                match self.follow_to_end(id).await? {
                    End::Succeeded(job) => return Ok((job, misreports)),
                    End::Other(status, event) => {
                        let job = self.job(id).await?;
                        match job["status"].as_str() {
                            Some("succeeded") => return Ok((job, misreports + 1)),
                            Some(now) if now == status => {
                                bail!("job {id} ended {status}: {event}")
                            }
                            _ => misreports += 1,
                        }
                    }
                }
            }
        };
        tokio::time::timeout(JOB_PATIENCE, follow)
            .await
            .with_context(|| format!("job {id} did not end within {JOB_PATIENCE:?}"))?
    }

    async fn follow_to_end(&self, id: &str) -> anyhow::Result<End> {
        let mut events = self.events(id).await?;
        while let Some(event) = events.next_event().await? {
            if event.name != "status" {
                continue;
            }
            match event.data["status"].as_str() {
                Some("succeeded") if event.data["outputs"].is_array() => {
                    return Ok(End::Succeeded(event.data));
                }
                Some("succeeded") => return Ok(End::Succeeded(self.job(id).await?)),
                Some(status @ ("failed" | "canceled" | "expired")) => {
                    return Ok(End::Other(status.to_owned(), event.data));
                }
                _ => {}
            }
        }
        // A stream may end without a terminal status; the job itself decides.
        let job = self.job(id).await?;
        match job["status"].as_str() {
            Some("succeeded") => Ok(End::Succeeded(job)),
            Some(status) => Ok(End::Other(status.to_owned(), job)),
            None => bail!("job {id} has no status: {job}"),
        }
    }

    /// Downloads every output of a finished job (streamed, counted, not kept); returns
    /// the bytes read.
    ///
    /// # Errors
    ///
    /// When a download fails.
    pub async fn download_outputs(&self, job: &Value) -> anyhow::Result<u64> {
        let mut total = 0;
        for output in job["outputs"].as_array().into_iter().flatten() {
            let url = output["url"].as_str().context("an output without url")?;
            total += download(&self.http, &self.on_this_server(url)?).await?;
        }
        Ok(total)
    }

    /// An output's URL on this gateway. Outputs are served by the gateway that lists
    /// them, whatever host name it writes into its links (`localhost` may resolve to
    /// another loopback address than the one it listens on), so only the path is kept.
    fn on_this_server(&self, url: &str) -> anyhow::Result<String> {
        if url.starts_with('/') {
            return Ok(format!("{}{url}", self.base));
        }
        let parsed = reqwest::Url::parse(url).with_context(|| format!("bad output url {url:?}"))?;
        let query = parsed
            .query()
            .map(|query| format!("?{query}"))
            .unwrap_or_default();
        Ok(format!("{}{}{query}", self.base, parsed.path()))
    }

    /// Submits, waits for success and downloads the outputs: one job as a client sees it.
    /// Returns the bytes downloaded and the stream's misreported ends.
    ///
    /// # Errors
    ///
    /// When any step fails.
    pub async fn run(&self, workflow: &Value) -> anyhow::Result<(u64, u32)> {
        let id = self.submit(workflow).await?;
        let (job, misreports) = self.wait_succeeded(&id).await?;
        Ok((self.download_outputs(&job).await?, misreports))
    }
}

/// Reads `url` to its end without keeping it; returns its length.
///
/// # Errors
///
/// When the answer is not `200` or breaks off.
pub async fn download(http: &reqwest::Client, url: &str) -> anyhow::Result<u64> {
    let mut response = http.get(url).send().await?;
    if !response.status().is_success() {
        bail!("GET {url}: {}", response.status());
    }
    let mut length = 0;
    while let Some(chunk) = response.chunk().await? {
        length += chunk.len() as u64;
    }
    Ok(length)
}

/// How one event stream ended.
#[derive(Debug)]
enum End {
    Succeeded(Value),
    /// Another status, and the event (or job) that said so.
    Other(String, Value),
}

/// One server-sent event.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub data: Value,
}

/// A minimal reader of `text/event-stream`.
#[derive(Debug)]
pub struct EventStream {
    response: reqwest::Response,
    buffer: Vec<u8>,
}

impl EventStream {
    /// The next event; `None` when the stream ends. Comments (keep-alives) are skipped.
    ///
    /// # Errors
    ///
    /// When the connection breaks.
    pub async fn next_event(&mut self) -> anyhow::Result<Option<Event>> {
        loop {
            if let Some(end) = find_frame_end(&self.buffer) {
                let frame: Vec<u8> = self.buffer.drain(..end).collect();
                if let Some(event) = parse_frame(&String::from_utf8_lossy(&frame)) {
                    return Ok(Some(event));
                }
                continue;
            }
            match self.response.chunk().await? {
                Some(chunk) => self.buffer.extend_from_slice(&chunk),
                None => return Ok(None),
            }
        }
    }
}

/// Where the first frame ends (after its blank line), if the buffer holds one whole.
fn find_frame_end(buffer: &[u8]) -> Option<usize> {
    let lf = buffer
        .windows(2)
        .position(|pair| pair == b"\n\n")
        .map(|at| at + 2);
    let crlf = buffer
        .windows(4)
        .position(|quad| quad == b"\r\n\r\n")
        .map(|at| at + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn parse_frame(frame: &str) -> Option<Event> {
    let mut name = String::from("message");
    let mut data = String::new();
    for line in frame.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            value.trim().clone_into(&mut name);
        } else if let Some(value) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if data.is_empty() {
        return None;
    }
    let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
    Some(Event { name, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_and_parsed() {
        let buffer = b"event: progress\ndata: {\"step\": 3}\n\n: keep-alive\n\nevent: status\r\ndata: {}\r\n\r\n";
        let end = find_frame_end(buffer).unwrap();
        let event = parse_frame(std::str::from_utf8(&buffer[..end]).unwrap()).unwrap();
        assert_eq!(event.name, "progress");
        assert_eq!(event.data["step"], 3);
        let rest = &buffer[end..];
        let end = find_frame_end(rest).unwrap();
        assert!(parse_frame(std::str::from_utf8(&rest[..end]).unwrap()).is_none());
        assert!(find_frame_end(b"event: x\ndata: 1\n").is_none());
    }
}
