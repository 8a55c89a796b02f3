//! Scenario 2: jobs accepted per second and status reads per second, with SQLite, at
//! several numbers of concurrent clients. The one backend is kept busy by a job that runs
//! until interrupted, so what is accepted stays queued and the figure is the API's and the
//! store's, not the scheduler's. Status reads pick from the newest 10,000 accepted jobs,
//! as clients poll what they have just submitted (Darkroom keeps the 16,384 statuses most
//! recently used in memory; an older one is a database read).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use comfy_sim::Knobs;
use futures_util::future::join_all;
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::{darkroom_for, simulators};
use crate::report::{Goal, Unit};
use crate::stats::Samples;
use crate::v2::V2Client;
use crate::wire::{BareServer, Wire};
use crate::{Bench, graphs};

const NAME: &str = "throughput (SQLite)";
/// The newest accepted jobs, whose ids status reads pick from.
const READ_IDS: usize = 10_000;
/// Turns of one-client reads from Darkroom and then the bare server, compared in pairs.
const TURNS: u32 = 6;
/// Flushes timed for the machine's own figure.
const FLUSHES: usize = 200;

/// # Errors
///
/// When Darkroom fails or refuses requests.
pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let sims = simulators(1, &Knobs::default()).await?;
    // No queue limit worth the name: every job submitted stays queued.
    let darkroom = darkroom_for(bench, &sims, &[("DARKROOM_QUEUE_LIMIT", "100000000")]).await?;
    let client = V2Client::new(bench.http.clone(), &darkroom.base);
    client.submit(&graphs::until_interrupted(0)).await?;

    let window = bench.options.sizes.throughput_window;
    let mut ids = Vec::new();
    for clients in bench.options.sizes.throughput_clients.clone() {
        let counter = Arc::new(AtomicU64::new(1));
        let outcome = load(&darkroom.base, clients, window, move |mut wire| {
            let number = counter.fetch_add(1, Ordering::Relaxed);
            async move {
                let id = submit(&mut wire, number).await?;
                Ok((wire, id))
            }
        })
        .await?;
        let measure = format!("jobs accepted, {clients} client{}", plural(clients));
        bench.report.figure(
            NAME,
            &measure,
            outcome.rate,
            Unit::PerSecond,
            Some(Goal::AtLeast(2000.0)),
        );
        bench.report.figure(
            NAME,
            &format!("{measure}: submit p99"),
            outcome.latency.p99(),
            Unit::Milliseconds,
            None,
        );
        ids.extend(outcome.values);
    }
    if ids.is_empty() {
        bail!("no job was accepted");
    }
    // Clients poll the jobs they have just submitted: the newest.
    let ids: Vec<String> = ids.split_off(ids.len().saturating_sub(READ_IDS));
    let sample = {
        let mut wire = Wire::open(&darkroom.base).await?;
        read(&mut wire, &ids[0]).await?
    };

    let ids = Arc::new(ids);
    for clients in bench.options.sizes.throughput_clients.clone() {
        let outcome = read_load(&darkroom.base, clients, window, &ids).await?;
        let measure = format!("status reads, {clients} client{}", plural(clients));
        bench.report.figure(
            NAME,
            &measure,
            outcome.rate,
            Unit::PerSecond,
            Some(Goal::AtLeast(20_000.0)),
        );
        bench.report.figure(
            NAME,
            &format!("{measure}: read p99"),
            outcome.latency.p99(),
            Unit::Milliseconds,
            None,
        );
    }
    // The line to read the one-client figure against: the same client and loop on a
    // server that does nothing but answer a status's bytes. On a shared VM the line
    // itself moves (2x between runs here), so the two are measured in turns and compared
    // pair by pair.
    let bare = BareServer::start(&sample).await?;
    let one = Arc::new(vec![ids[0].clone()]);
    let turn = window / TURNS;
    let (mut floors, mut shares) = (Samples::new(), Samples::new());
    for _ in 0..TURNS {
        let ours = read_load(&darkroom.base, 1, turn, &ids).await?;
        let theirs = read_load(&bare.base, 1, turn, &one).await?;
        floors.push(theirs.rate);
        shares.push(ours.rate / theirs.rate);
    }
    drop(bare);
    let floor = floors.p50();
    bench.report.figure(
        NAME,
        &format!("status reads, 1 client: a bare axum server answering the same bytes, median of {TURNS} turns"),
        floor,
        Unit::PerSecond,
        None,
    );
    bench.report.figure(
        NAME,
        &format!("status reads, 1 client: Darkroom / the bare server, median of {TURNS} turns"),
        shares.p50(),
        Unit::Times,
        None,
    );
    // And for accepts: an accept with one client is at least that exchange and one disk
    // flush (its commit's), measured here where Darkroom's data folder is.
    let flush = flush_time().await?;
    bench.report.figure(
        NAME,
        "fsync of a 4 KiB append where the data folder is, p50",
        flush.p50(),
        Unit::Milliseconds,
        None,
    );
    bench.report.figure(
        NAME,
        "jobs accepted, 1 client, at most: one bare exchange and one such fsync each",
        1.0 / (1.0 / floor + flush.p50() / 1000.0),
        Unit::PerSecond,
        None,
    );
    let queued = darkroom.memory()?;
    darkroom.stop().await;
    bench.report.figure(
        NAME,
        "RSS at the end",
        queued.rss_mib,
        Unit::MebiBytes,
        None,
    );
    Ok(())
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}

/// Appends 4 KiB and flushes it (`fdatasync`), 200 times, in a file in the temporary
/// folder (where the harness puts Darkroom's data folder): how long each flush took.
async fn flush_time() -> anyhow::Result<Samples> {
    tokio::task::spawn_blocking(|| {
        let mut file = tempfile::tempfile()?;
        let block = [7_u8; 4096];
        let mut samples = Samples::new();
        for _ in 0..FLUSHES {
            std::io::Write::write_all(&mut file, &block)?;
            let started = Instant::now();
            file.sync_data()?;
            samples.push_duration(started.elapsed());
        }
        anyhow::Ok(samples)
    })
    .await?
}

/// Submits a small job; its id.
async fn submit(wire: &mut Wire, number: u64) -> anyhow::Result<String> {
    let body = serde_json::to_vec(&json!({ "workflow": graphs::small_image(number) }))?;
    let (status, answer) = wire.post_json("/api/v2/jobs", body.into()).await?;
    if status != StatusCode::CREATED {
        bail!(
            "job refused with {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    let created: Created = serde_json::from_slice(&answer).context("the answer is no job")?;
    Ok(created.id)
}

/// Reads job `id`'s status; its bytes.
async fn read(wire: &mut Wire, id: &str) -> anyhow::Result<Bytes> {
    let (status, answer) = wire.get(&format!("/api/v2/jobs/{id}")).await?;
    if status != StatusCode::OK {
        bail!("job {id}: {status}");
    }
    Ok(answer)
}

/// `clients` loops reading statuses of `ids` in turn from the server at `base`.
async fn read_load(
    base: &str,
    clients: usize,
    window: Duration,
    ids: &Arc<Vec<String>>,
) -> anyhow::Result<Load> {
    let counter = Arc::new(AtomicU64::new(0));
    let ids = Arc::clone(ids);
    load(base, clients, window, move |mut wire| {
        let number = counter.fetch_add(1, Ordering::Relaxed) as usize;
        let ids = Arc::clone(&ids);
        async move {
            let id = &ids[number % ids.len()];
            let answer = read(&mut wire, id).await?;
            // A cheap check that the answer is the status asked for.
            if !answer
                .windows(id.len())
                .any(|window| window == id.as_bytes())
            {
                bail!("the status read for {id} does not name it");
            }
            Ok((wire, String::new()))
        }
    })
    .await
}

/// The part of a created job's answer the loop needs.
#[derive(Deserialize)]
struct Created {
    id: String,
}

/// What a load run did.
#[derive(Debug)]
pub struct Load {
    /// Requests completed per second of the run.
    pub rate: f64,
    pub latency: Samples,
    /// What the requests returned (empty values left out).
    pub values: Vec<String>,
}

/// Runs `clients` loops, each its own task with its own connection to `base`, each
/// sending one request after another (`request(wire)`, which hands the connection back)
/// until `window` has passed. Connecting is not timed.
///
/// The loops run on one thread of their own (a current-thread runtime), as `wrk -t1`
/// does: on two cores, the harness's multi-thread runtime woke its other worker for
/// every answer, and one client read statuses at 8,500/s where the same client on one
/// thread reads 10,800/s from the same server.
///
/// # Errors
///
/// The first request that failed.
pub async fn load<F, Fut>(
    base: &str,
    clients: usize,
    window: Duration,
    request: F,
) -> anyhow::Result<Load>
where
    F: Fn(Wire) -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<(Wire, String)>> + 'static,
{
    let base = base.to_owned();
    on_own_thread(move || async move {
        let mut wires = Vec::with_capacity(clients);
        for _ in 0..clients {
            wires.push(Wire::open(&base).await?);
        }
        let request = std::rc::Rc::new(request);
        let started = Instant::now();
        let deadline = started + window;
        let loops: Vec<_> = wires
            .into_iter()
            .map(|wire| {
                let request = std::rc::Rc::clone(&request);
                tokio::task::spawn_local(async move {
                    let mut latency = Samples::new();
                    let mut values = Vec::new();
                    let mut wire = wire;
                    while Instant::now() < deadline {
                        let sent = Instant::now();
                        let (next, value) = request(wire).await?;
                        latency.push_duration(sent.elapsed());
                        wire = next;
                        if !value.is_empty() {
                            values.push(value);
                        }
                    }
                    anyhow::Ok((latency, values))
                })
            })
            .collect();
        let results = join_all(loops).await;
        let elapsed = started.elapsed();
        let mut latency = Samples::new();
        let mut values = Vec::new();
        for result in results {
            let (loop_latency, loop_values) = result??;
            latency.extend(loop_latency);
            values.extend(loop_values);
        }
        Ok(Load {
            rate: latency.len() as f64 / elapsed.as_secs_f64(),
            latency,
            values,
        })
    })
    .await
}

/// Runs the future `make` makes on a current-thread runtime of its own, on a thread of
/// its own; its outcome.
async fn on_own_thread<T, M, Fut>(make: M) -> anyhow::Result<T>
where
    T: Send + 'static,
    M: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let (done, outcome) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("load".to_owned())
        .spawn(move || {
            let result = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| tokio::task::LocalSet::new().block_on(&runtime, make()));
            let _ = done.send(result);
        })?;
    outcome.await.context("the load thread failed")?
}
