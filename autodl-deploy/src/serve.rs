//! Serving a run's model over HTTP (axum on tokio).
//!
//! Endpoints:
//! - `POST /predict`: rows keyed by column name, as JSON (`[{…}, …]`, `{"rows": [{…}, …]}` or
//!   one object) or as CSV with a header (`Content-Type: text/csv`); answers
//!   `{"predictions": [...]}` in row order, with `ignored_columns` when rows carried columns
//!   the model does not read.
//! - `GET /health`: `{"status": "ok"}` (never needs the token).
//! - `GET /metadata`: the model's inputs, output, task and export.
//! - `GET /metrics`: Prometheus text: requests by endpoint and status, latency histograms,
//!   rows predicted, batches run and their sizes.
//!
//! Bad requests get a 4xx and a JSON `{"error": "..."}` that says what was wrong: malformed
//! JSON or CSV (400, with the position), a missing token (401), an oversized body (413), an
//! unsupported content type (415), a row that lacks a column the model reads or holds a
//! value of the wrong type (422, with the row and column). A full queue answers 503. Extra
//! columns are ignored. Missing values (null, empty) are imputed as in training.
//!
//! Requests are batched: a worker takes every request queued while it was busy (up to
//! [`ServeConfig::max_batch_rows`] rows) and runs them through the network together, so
//! throughput grows with load without adding latency when idle. Shutdown is graceful: the
//! server stops accepting, finishes what it holds, then returns.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use autodl_artifacts::table::RawTable;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::predictor::{Cell, Prediction, Predictor};
use crate::{DeployError, InputRows, Result};

/// Strings read as missing in CSV bodies, besides the empty field (as in training files).
const NULL_SPELLINGS: [&str; 6] = ["", "NA", "N/A", "NaN", "null", "NULL"];

/// Latency histogram bounds, in seconds.
const LATENCY_BOUNDS: [f64; 11] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Batch-size histogram bounds, in rows.
const BATCH_BOUNDS: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 64.0, 256.0, 1024.0];

/// How the server runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    /// Address to bind (default 127.0.0.1:8080; port 0 picks a free one).
    pub addr: SocketAddr,
    /// When set, every endpoint but `/health` needs `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most rows run through the network at once.
    pub max_batch_rows: usize,
    /// Requests waiting for a worker before new ones get 503.
    pub queue: usize,
    /// Worker threads running the network.
    pub workers: usize,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            max_body_bytes: 8 << 20,
            max_batch_rows: 1024,
            queue: 1024,
            workers: 1,
        }
    }
}

/// A histogram with fixed bounds (cumulative counts are computed when rendered).
struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations, in millionths.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, x: f64) {
        let i = self.bounds.partition_point(|&b| b < x);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((x * 1e6).round() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        use std::fmt::Write;
        let mut cumulative = 0;
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c.load(Ordering::Relaxed);
            let le = self
                .bounds
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(
            out,
            "{name}_count{braces} {}",
            self.count.load(Ordering::Relaxed)
        );
    }
}

/// What the server counts.
struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: BTreeMap<&'static str, Histogram>,
    rows: AtomicU64,
    batches: Histogram,
    started: Instant,
}

const ENDPOINTS: [&str; 4] = ["predict", "health", "metadata", "metrics"];

impl Metrics {
    fn new() -> Self {
        Metrics {
            requests: Mutex::new(BTreeMap::new()),
            latency: ENDPOINTS
                .iter()
                .map(|e| (*e, Histogram::new(&LATENCY_BOUNDS)))
                .collect(),
            rows: AtomicU64::new(0),
            batches: Histogram::new(&BATCH_BOUNDS),
            started: Instant::now(),
        }
    }

    fn record(&self, endpoint: &'static str, status: StatusCode, started: Instant) {
        *self
            .requests
            .lock()
            .expect("metrics lock")
            .entry((endpoint, status.as_u16()))
            .or_default() += 1;
        self.latency[endpoint].observe(started.elapsed().as_secs_f64());
    }

    fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        s += "# HELP autodl_requests_total HTTP requests by endpoint and status.\n";
        s += "# TYPE autodl_requests_total counter\n";
        for ((endpoint, status), n) in self.requests.lock().expect("metrics lock").iter() {
            let _ = writeln!(
                s,
                "autodl_requests_total{{endpoint=\"{endpoint}\",status=\"{status}\"}} {n}"
            );
        }
        s +=
            "# HELP autodl_request_duration_seconds Time from a request's arrival to its answer.\n";
        s += "# TYPE autodl_request_duration_seconds histogram\n";
        for (endpoint, h) in &self.latency {
            h.render(
                &mut s,
                "autodl_request_duration_seconds",
                &format!("endpoint=\"{endpoint}\""),
            );
        }
        s += "# HELP autodl_rows_predicted_total Rows predicted.\n";
        s += "# TYPE autodl_rows_predicted_total counter\n";
        let _ = writeln!(
            s,
            "autodl_rows_predicted_total {}",
            self.rows.load(Ordering::Relaxed)
        );
        s += "# HELP autodl_batch_rows Rows per network run (requests batched together).\n";
        s += "# TYPE autodl_batch_rows histogram\n";
        self.batches.render(&mut s, "autodl_batch_rows", "");
        s += "# HELP autodl_uptime_seconds Seconds since the server started.\n";
        s += "# TYPE autodl_uptime_seconds gauge\n";
        let _ = writeln!(
            s,
            "autodl_uptime_seconds {:.3}",
            self.started.elapsed().as_secs_f64()
        );
        s
    }
}

/// Rows waiting for the network, and where their answer goes.
struct Job {
    table: RawTable,
    reply: tokio::sync::oneshot::Sender<std::result::Result<Vec<Prediction>, String>>,
}

struct AppState {
    predictor: Arc<Predictor>,
    metrics: Arc<Metrics>,
    jobs: SyncSender<Job>,
    token: Option<String>,
    max_body_bytes: usize,
    metadata: Value,
}

/// An error answer: a status and a message, sent as `{"error": message}`.
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

fn authorised(state: &AppState, headers: &HeaderMap) -> std::result::Result<(), Failure> {
    let Some(token) = &state.token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    // Compared in time independent of where the strings differ.
    let same = given.len() == token.len()
        && given
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(Failure(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (send 'Authorization: Bearer <token>')".into(),
        ))
    }
}

/// The rows of a JSON body as cells per input column, and the columns no input reads.
fn rows_from_json(
    predictor: &Predictor,
    body: &[u8],
) -> std::result::Result<(Vec<Vec<Cell>>, Vec<String>), Failure> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, format!("malformed JSON: {e}")))?;
    let rows: Vec<Value> = match value {
        Value::Array(rows) => rows,
        Value::Object(mut o) if o.contains_key("rows") => match o.remove("rows") {
            Some(Value::Array(rows)) => rows,
            _ => {
                return Err(Failure(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "'rows' must be an array of objects".into(),
                ));
            }
        },
        Value::Object(o) => vec![Value::Object(o)],
        _ => {
            return Err(Failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the body must be an object, an array of objects, or {\"rows\": [...]}".into(),
            ));
        }
    };
    let inputs = predictor.inputs();
    let mut ignored = std::collections::BTreeSet::new();
    let mut cells = Vec::with_capacity(rows.len());
    for (r, row) in rows.into_iter().enumerate() {
        let Value::Object(mut o) = row else {
            return Err(Failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("row {r} is not an object of column values"),
            ));
        };
        let mut row_cells = Vec::with_capacity(inputs.len());
        for input in inputs {
            let cell = match o.remove(&input.name) {
                None => return Err(missing_column(r, &input.name, predictor)),
                Some(Value::Null) => Cell::Missing,
                Some(Value::Bool(b)) => Cell::Bool(b),
                Some(Value::Number(n)) => Cell::Number(n.as_f64().unwrap_or(f64::NAN)),
                Some(Value::String(s)) => Cell::Text(s),
                Some(other) => {
                    return Err(Failure(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        format!(
                            "row {r}, column '{}': expected a number, text, boolean or null, got {other}",
                            input.name
                        ),
                    ));
                }
            };
            row_cells.push(cell);
        }
        ignored.extend(o.into_iter().map(|(k, _)| k));
        cells.push(row_cells);
    }
    Ok((cells, ignored.into_iter().collect()))
}

fn missing_column(row: usize, column: &str, predictor: &Predictor) -> Failure {
    let names: Vec<&str> = predictor.inputs().iter().map(|c| c.name.as_str()).collect();
    Failure(
        StatusCode::UNPROCESSABLE_ENTITY,
        format!(
            "row {row} lacks column '{column}', which the model reads (it reads: {}); send null for a missing value",
            names.join(", ")
        ),
    )
}

/// The rows of a CSV body (with a header) as cells per input column, and the columns no
/// input reads.
fn rows_from_csv(
    predictor: &Predictor,
    body: &[u8],
) -> std::result::Result<(Vec<Vec<Cell>>, Vec<String>), Failure> {
    let malformed = |e: csv::Error| Failure(StatusCode::BAD_REQUEST, format!("malformed CSV: {e}"));
    let mut reader = csv::ReaderBuilder::new().from_reader(body);
    let header: Vec<String> = reader
        .headers()
        .map_err(malformed)?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let mut at = Vec::with_capacity(predictor.inputs().len());
    for input in predictor.inputs() {
        match header.iter().position(|h| *h == input.name) {
            Some(i) => at.push(i),
            None => return Err(missing_column(0, &input.name, predictor)),
        }
    }
    let ignored: Vec<String> = header
        .iter()
        .filter(|h| !predictor.inputs().iter().any(|c| c.name == **h))
        .cloned()
        .collect();
    let mut cells = Vec::new();
    for record in reader.records() {
        let record = record.map_err(malformed)?;
        cells.push(
            at.iter()
                .map(|&i| {
                    let v = record.get(i).unwrap_or("");
                    if NULL_SPELLINGS.contains(&v.trim()) {
                        Cell::Missing
                    } else {
                        Cell::Text(v.to_string())
                    }
                })
                .collect(),
        );
    }
    Ok((cells, ignored))
}

async fn predict_endpoint(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let response = match predict_inner(&state, &headers, body).await {
        Ok(r) => r,
        Err(f) => f.into_response(),
    };
    state.metrics.record("predict", response.status(), started);
    response
}

async fn predict_inner(
    state: &AppState,
    headers: &HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> std::result::Result<Response, Failure> {
    authorised(state, headers)?;
    let body = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Failure(
                status,
                format!(
                    "the body is over the {}-byte limit; send fewer rows per request",
                    state.max_body_bytes
                ),
            )
        } else {
            Failure(status, e.body_text())
        }
    })?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (cells, ignored) = match content_type.as_str() {
        // curl's `-d` sends form encoding by default; the body is still read as JSON.
        "application/json" | "application/x-www-form-urlencoded" | "" => {
            rows_from_json(&state.predictor, &body)?
        }
        "text/csv" => rows_from_csv(&state.predictor, &body)?,
        other => {
            return Err(Failure(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content type '{other}' is not accepted; send application/json or text/csv"
                ),
            ));
        }
    };
    if cells.is_empty() {
        return Err(Failure(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no rows to predict".into(),
        ));
    }
    let table = state
        .predictor
        .table(&cells)
        .map_err(|e| Failure(StatusCode::UNPROCESSABLE_ENTITY, e.0))?;
    let (reply, answer) = tokio::sync::oneshot::channel();
    match state.jobs.try_send(Job { table, reply }) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            return Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is at capacity; retry shortly".into(),
            ));
        }
        Err(TrySendError::Disconnected(_)) => {
            return Err(Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down".into(),
            ));
        }
    }
    let predictions = answer
        .await
        .map_err(|_| {
            Failure(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down".into(),
            )
        })?
        .map_err(|e| Failure(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    Ok(axum::Json(Answer {
        predictions,
        ignored_columns: ignored,
    })
    .into_response())
}

/// The answer to `POST /predict`.
#[derive(serde::Serialize)]
struct Answer {
    predictions: Vec<Prediction>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ignored_columns: Vec<String>,
}

async fn health_endpoint(State(state): State<Arc<AppState>>) -> Response {
    let started = Instant::now();
    let response = axum::Json(json!({ "status": "ok" })).into_response();
    state.metrics.record("health", response.status(), started);
    response
}

async fn metadata_endpoint(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let response = match authorised(&state, &headers) {
        Ok(()) => axum::Json(state.metadata.clone()).into_response(),
        Err(f) => f.into_response(),
    };
    state.metrics.record("metadata", response.status(), started);
    response
}

async fn metrics_endpoint(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let response = match authorised(&state, &headers) {
        Ok(()) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            state.metrics.render(),
        )
            .into_response(),
        Err(f) => f.into_response(),
    };
    state.metrics.record("metrics", response.status(), started);
    response
}

/// Takes every job queued (up to `max_rows` rows), runs them through the network at once,
/// and answers each; returns when the queue closes.
fn work(jobs: &Mutex<Receiver<Job>>, predictor: &Predictor, metrics: &Metrics, max_rows: usize) {
    loop {
        let batch = {
            let jobs = jobs.lock().expect("job queue lock");
            let Ok(first) = jobs.recv() else {
                return;
            };
            let mut rows = first.table.n_rows();
            let mut batch = vec![first];
            while rows < max_rows {
                match jobs.try_recv() {
                    Ok(job) => {
                        rows += job.table.n_rows();
                        batch.push(job);
                    }
                    Err(_) => break,
                }
            }
            batch
        };
        // Each request's rows through the transform (its own errors stay its own), then one
        // network run for all of them.
        let mut ready: Vec<(Job, usize)> = Vec::with_capacity(batch.len());
        let mut inputs: Option<Vec<InputRows>> = None;
        for job in batch {
            match predictor.graph_inputs(&job.table) {
                Ok(blocks) => {
                    let n = blocks.first().map_or(0, InputRows::n_rows);
                    match &mut inputs {
                        None => inputs = Some(blocks),
                        Some(all) => all.iter_mut().zip(&blocks).for_each(|(a, b)| a.extend(b)),
                    }
                    ready.push((job, n));
                }
                Err(e) => {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
        let Some(inputs) = inputs else {
            continue;
        };
        let rows: usize = ready.iter().map(|(_, n)| n).sum();
        metrics.batches.observe(rows as f64);
        match predictor.run_inputs(&inputs) {
            Ok(outputs) => {
                metrics.rows.fetch_add(rows as u64, Ordering::Relaxed);
                let mut at = 0;
                for (job, n) in ready {
                    let predictions = (at..at + n)
                        .map(|i| predictor.prediction(&outputs, i))
                        .collect();
                    at += n;
                    let _ = job.reply.send(Ok(predictions));
                }
            }
            Err(e) => {
                for (job, _) in ready {
                    let _ = job.reply.send(Err(e.to_string()));
                }
            }
        }
    }
}

fn metadata_of(predictor: &Predictor) -> Value {
    let t = predictor.transform();
    let e = predictor.exported();
    json!({
        "target": t.target,
        "task": t.task,
        "inputs": predictor.inputs(),
        "output": e.output,
        "features": e.feature_names,
        "onnx": {
            "path": e.onnx_path,
            "sha256": e.onnx_sha256,
            "ir_version": e.ir_version,
            "opset": e.opset,
            "inputs": e.inputs,
            "output": e.output_name,
            "value_output": e.value_output_name,
        },
        "policy": {
            "missing_values": "null, an empty field, NA, N/A, NaN or null (CSV): imputed as in training",
            "missing_columns": "422: every column the model reads must be present in every row",
            "extra_columns": "ignored, and listed in the answer's ignored_columns",
            "unseen_categories": "read as the '(other)' category where training had one, else as no category",
        },
    })
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

fn io(e: impl std::fmt::Display) -> DeployError {
    DeployError::Runtime(format!("server: {e}"))
}

impl Server {
    /// Binds `cfg.addr` and serves `predictor` on a thread of its own; returns once the
    /// socket is bound.
    pub fn start(predictor: Predictor, cfg: ServeConfig) -> Result<Server> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(io)?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(cfg.addr))
            .map_err(|e| io(format!("cannot bind {}: {e}", cfg.addr)))?;
        let addr = listener.local_addr().map_err(io)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || -> Result<()> {
            let predictor = Arc::new(predictor);
            let metrics = Arc::new(Metrics::new());
            let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(cfg.queue.max(1));
            let queue = Arc::new(Mutex::new(queue));
            let workers: Vec<_> = (0..cfg.workers.max(1))
                .map(|_| {
                    let (queue, predictor, metrics) =
                        (queue.clone(), predictor.clone(), metrics.clone());
                    std::thread::spawn(move || {
                        work(&queue, &predictor, &metrics, cfg.max_batch_rows.max(1))
                    })
                })
                .collect();
            let state = Arc::new(AppState {
                metadata: metadata_of(&predictor),
                predictor,
                metrics,
                jobs,
                token: cfg.token.clone(),
                max_body_bytes: cfg.max_body_bytes,
            });
            let app = Router::new()
                .route("/predict", post(predict_endpoint))
                .route("/health", get(health_endpoint))
                .route("/metadata", get(metadata_endpoint))
                .route("/metrics", get(metrics_endpoint))
                .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
                .with_state(state.clone());
            let served = runtime.block_on(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stopped.await;
                    })
                    .await
            });
            // The queue closes once the last handle on it goes: the workers finish what they
            // hold and stop.
            drop(state);
            drop(runtime);
            for w in workers {
                let _ = w.join();
            }
            served.map_err(io)
        });
        Ok(Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets requests in flight finish, and waits for the server to end.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| io("the server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM.
pub fn wait_for_signal() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io)?;
    runtime.block_on(async {
        #[cfg(unix)]
        {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .map_err(io)?;
            tokio::select! {
                r = tokio::signal::ctrl_c() => r.map_err(io),
                _ = term.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await.map_err(io)
        }
    })
}
