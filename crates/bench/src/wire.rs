//! The load loops' client: one kept-alive HTTP/1.1 connection (hyper's own client
//! connection, no pool), driven inside the task that sends on it.
//!
//! With one client, a throughput figure is one over the time of a whole exchange, the
//! client's share included. reqwest's pool, its hand-over to a connection task and a
//! `serde_json::Value` of every answer took about as long as Darkroom's side of a status
//! read (6,900 reads/s against 12,000/s from a bare client on the same server), so the
//! figure was half the client's. A load generator should cost as little as it can, as
//! `wrk` does: this one keeps hyper's parsing and framing and drops the rest.

use std::pin::Pin;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

type Driver = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// One connection to a server.
pub struct Wire {
    host: String,
    sender: http1::SendRequest<Full<Bytes>>,
    /// Polled beside each exchange: it moves the bytes, and it ends when the server
    /// closes the connection.
    driver: Pin<Box<Driver>>,
}

impl Wire {
    /// Connects to `base` (`http://127.0.0.1:PORT`).
    ///
    /// # Errors
    ///
    /// When the address is not `http://HOST:PORT` or the connection fails.
    pub async fn open(base: &str) -> anyhow::Result<Self> {
        let host = base
            .strip_prefix("http://")
            .with_context(|| format!("{base} is not an http:// address"))?
            .trim_end_matches('/')
            .to_owned();
        let stream = TcpStream::connect(&host)
            .await
            .with_context(|| format!("cannot connect to {host}"))?;
        stream.set_nodelay(true)?;
        let (sender, driver) = http1::handshake(TokioIo::new(stream)).await?;
        Ok(Self {
            host,
            sender,
            driver: Box::pin(driver),
        })
    }

    /// `GET path`: the status and the whole body.
    ///
    /// # Errors
    ///
    /// When the connection fails or closes.
    pub async fn get(&mut self, path: &str) -> anyhow::Result<(StatusCode, Bytes)> {
        self.exchange(Method::GET, path, None).await
    }

    /// `POST path` with a JSON body: the status and the whole answer.
    ///
    /// # Errors
    ///
    /// When the connection fails or closes.
    pub async fn post_json(
        &mut self,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        self.exchange(Method::POST, path, Some(body)).await
    }

    async fn exchange(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.host);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(Full::new(body.unwrap_or_default()))?;
        let sender = &mut self.sender;
        let exchange = async move {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        tokio::select! {
            biased;
            answer = exchange => answer,
            ended = &mut self.driver => match ended {
                Ok(()) => bail!("{} closed the connection", self.host),
                Err(error) => Err(error).context(format!("connection to {} failed", self.host)),
            },
        }
    }
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Wire")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// The smallest server the same client can measure: axum answering every request with
/// the same bytes, in a process of its own on tokio's default runtime, as Darkroom runs.
/// What one client reads from it per second is what any server of this kind reaches on
/// this machine: the line a status read's figure is to be read against.
#[derive(Debug)]
pub struct BareServer {
    pub base: String,
    /// Killed when dropped; it also stops when its stdin closes (this process ended).
    _child: tokio::process::Child,
    _answer: tempfile::NamedTempFile,
}

impl BareServer {
    /// Starts `darkroom-bench --bare-server FILE` answering `answer` as JSON.
    ///
    /// # Errors
    ///
    /// When it cannot start or does not say where it listens.
    pub async fn start(answer: &[u8]) -> anyhow::Result<Self> {
        let mut file = tempfile::NamedTempFile::new()?;
        std::io::Write::write_all(&mut file, answer)?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("--bare-server")
            .arg(file.path())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the bare server")?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let base = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
            .await
            .context("the bare server did not start")??
            .context("the bare server ended at once")?;
        Ok(Self {
            base,
            _child: child,
            _answer: file,
        })
    }
}

/// Runs the bare server (`--bare-server FILE`): prints its address, then answers every
/// request with the file's bytes until its stdin closes.
///
/// # Errors
///
/// When the file cannot be read or no port can be had.
pub async fn serve_bare(answer: &std::path::Path) -> anyhow::Result<()> {
    let answer = Bytes::from(std::fs::read(answer)?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = format!("http://{}\n", listener.local_addr()?);
    let mut stdout = tokio::io::stdout();
    tokio::io::AsyncWriteExt::write_all(&mut stdout, address.as_bytes()).await?;
    tokio::io::AsyncWriteExt::flush(&mut stdout).await?;
    let app = axum::Router::new().fallback(move || {
        let answer = answer.clone();
        async move { ([(header::CONTENT_TYPE, "application/json")], answer) }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut sink).await;
        })
        .await?;
    Ok(())
}
