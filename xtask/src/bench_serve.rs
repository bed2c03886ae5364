//! `cargo xtask bench serve`: autodl's server against FastAPI + uvicorn + onnxruntime under the
//! same bounded load, and a soak run of valid and malformed requests.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use autodl_artifacts::run::paths;
use autodl_artifacts::table::{ColumnValues, RawTable};
use serde::Serialize;

use crate::bench::{bench_python, repo_path};

/// Settings of `cargo xtask bench serve`.
#[derive(Debug, Clone)]
pub struct ServeBenchArgs {
    /// The run whose model is served; without it, one is trained on datasets/penguins.csv.
    pub run: Option<PathBuf>,
    pub concurrency: Vec<usize>,
    pub secs: f64,
    pub soak_secs: f64,
    pub python: Option<PathBuf>,
    pub out: PathBuf,
}

/// The p99 latency a load level must stay under to count.
const P99_LIMIT_MS: f64 = 10.0;

/// One load level against one server.
#[derive(Debug, Clone, Serialize)]
struct Level {
    concurrency: usize,
    requests: usize,
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Answers other than 200 (and broken connections).
    failures: usize,
}

/// Requests of one kind in the soak run, and the statuses they got.
#[derive(Debug, Serialize)]
struct KindCount {
    kind: String,
    requests: usize,
    statuses: Vec<(u16, usize)>,
}

#[derive(Debug, Serialize)]
struct Soak {
    secs: f64,
    concurrency: usize,
    by_kind: Vec<KindCount>,
    server_errors: usize,
    broken_connections: usize,
    alive_after: bool,
    rss_mib: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct ServeBenchReport {
    run: String,
    /// Largest difference of the two servers' predictions of the same test rows.
    predictions_max_diff: f64,
    autodl: Vec<Level>,
    fastapi: Vec<Level>,
    best_autodl_rps: f64,
    best_fastapi_rps: f64,
    ratio: f64,
    soak: Option<Soak>,
}

/// A keep-alive HTTP/1.1 client connection.
struct Client {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
}

impl Client {
    fn new(addr: &str) -> Self {
        Client {
            addr: addr.to_string(),
            stream: None,
        }
    }

    /// Sends one request and reads the answer's status (the body is read and dropped).
    /// `None` when the connection broke.
    fn send(&mut self, content_type: &str, body: &[u8], close: bool) -> Option<u16> {
        let result = self.exchange(content_type, body, close);
        if result.is_none() || close {
            self.stream = None;
        }
        result
    }

    fn exchange(&mut self, content_type: &str, body: &[u8], close: bool) -> Option<u16> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr).ok()?;
            s.set_nodelay(true).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            self.stream = Some(BufReader::new(s));
        }
        let reader = self.stream.as_mut()?;
        let head = format!(
            "POST /predict HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}\r\n",
            self.addr,
            body.len(),
            if close { "Connection: close\r\n" } else { "" }
        );
        let s = reader.get_mut();
        s.write_all(head.as_bytes()).ok()?;
        // A server refusing an oversized body may answer before reading it.
        let _ = s.write_all(body);
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let status: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        let mut length = 0usize;
        loop {
            line.clear();
            reader.read_line(&mut line).ok()?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().ok()?;
            }
        }
        let mut sink = vec![0u8; length];
        reader.read_exact(&mut sink).ok()?;
        Some(status)
    }
}

/// Sends `bodies` (cycling) from `concurrency` connections for `secs` seconds.
fn load(addr: &str, bodies: &[Vec<u8>], concurrency: usize, secs: f64) -> Level {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let results: Vec<(Vec<f64>, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency)
            .map(|t| {
                scope.spawn(move || {
                    let mut client = Client::new(addr);
                    let (mut latencies, mut failures) = (Vec::new(), 0);
                    let mut i = t * 7919;
                    while Instant::now() < deadline {
                        let body = &bodies[i % bodies.len()];
                        i += 1;
                        let t0 = Instant::now();
                        match client.send("application/json", body, false) {
                            Some(200) => latencies.push(t0.elapsed().as_secs_f64() * 1e3),
                            _ => failures += 1,
                        }
                    }
                    (latencies, failures)
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut all: Vec<f64> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    all.sort_by(f64::total_cmp);
    let q = |p: f64| {
        if all.is_empty() {
            f64::NAN
        } else {
            all[((all.len() - 1) as f64 * p).round() as usize]
        }
    };
    Level {
        concurrency,
        requests: all.len(),
        requests_per_s: all.len() as f64 / secs,
        p50_ms: q(0.5),
        p99_ms: q(0.99),
        failures: results.iter().map(|r| r.1).sum(),
    }
}

/// Starts `cargo xtask serve` on a free port; returns the child and its address.
fn start_autodl(run: &Path, extra: &[&str]) -> Result<(Child, String)> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "serve",
            "--run",
            &run.to_string_lossy(),
            "--addr",
            "127.0.0.1:0",
        ])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .context("starting cargo xtask serve")?;
    let mut stderr = BufReader::new(child.stderr.take().context("stderr")?);
    let mut line = String::new();
    loop {
        line.clear();
        if stderr.read_line(&mut line)? == 0 {
            bail!("the autodl server ended before listening");
        }
        if let Some(a) = line.trim().strip_prefix("listening on http://") {
            let addr = a.to_string();
            // Keep draining its stderr so it never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                let _ = stderr.read_to_string(&mut sink);
            });
            return Ok((child, addr));
        }
    }
}

/// Starts the FastAPI peer and waits until it answers /health.
fn start_fastapi(python: &Path, run: &Path) -> Result<(Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let run = run
        .canonicalize()
        .with_context(|| format!("{}", run.display()))?;
    let mut child = Command::new(python)
        .arg(repo_path("scripts/serve_fastapi.py"))
        .arg(&run)
        .arg(port.to_string())
        .current_dir(repo_path("scripts"))
        .stdout(Stdio::null())
        .spawn()
        .context("starting scripts/serve_fastapi.py")?;
    let addr = format!("127.0.0.1:{port}");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        if let Some(status) = child.try_wait()? {
            bail!("the FastAPI server exited ({status}) before answering /health");
        }
        if let Ok(mut s) = TcpStream::connect(&addr) {
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer);
            if answer.starts_with("HTTP/1.1 200") {
                return Ok((child, addr));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("the FastAPI server did not answer /health within 60 s")
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// Resident memory of process `pid` in MiB (Linux).
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

/// One request body per row: `{"rows": [row]}`.
fn bodies(table: &RawTable) -> Vec<Vec<u8>> {
    (0..table.n_rows())
        .map(|r| {
            let mut o = serde_json::Map::new();
            for c in &table.columns {
                let v = match &c.values {
                    ColumnValues::Numeric(v) => {
                        v[r].map_or(serde_json::Value::Null, serde_json::Value::from)
                    }
                    values => values
                        .label(r)
                        .map_or(serde_json::Value::Null, serde_json::Value::from),
                };
                o.insert(c.name.clone(), v);
            }
            serde_json::to_vec(&serde_json::json!({ "rows": [o] })).expect("JSON")
        })
        .collect()
}

/// The predictions a server answers for every row of `bodies` (one request each, on one
/// connection closed after each answer), as JSON values.
fn predictions(addr: &str, bodies: &[Vec<u8>]) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::with_capacity(bodies.len());
    for body in bodies {
        let mut s = TcpStream::connect(addr)?;
        write!(
            s,
            "POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        s.write_all(body)?;
        let mut answer = Vec::new();
        s.read_to_end(&mut answer)?;
        let text = String::from_utf8_lossy(&answer);
        let (head, json) = text
            .split_once("\r\n\r\n")
            .context("an HTTP answer without a body")?;
        if !head.starts_with("HTTP/1.1 200") {
            bail!("{addr} answered {head}: {json}");
        }
        let v: serde_json::Value = serde_json::from_str(json)?;
        out.push(v["predictions"][0].clone());
    }
    Ok(out)
}

/// Largest difference between two servers' predictions of the same rows (probabilities or
/// values); infinite where labels differ or a prediction is absent.
fn largest_difference(a: &[serde_json::Value], b: &[serde_json::Value]) -> f64 {
    let mut worst = 0.0f64;
    for (x, y) in a.iter().zip(b) {
        let d = if let (Some(p), Some(q)) = (
            x["probabilities"].as_object(),
            y["probabilities"].as_object(),
        ) {
            if x["label"] != y["label"] || p.len() != q.len() {
                f64::INFINITY
            } else {
                p.iter()
                    .map(
                        |(k, v)| match (v.as_f64(), q.get(k).and_then(|w| w.as_f64())) {
                            (Some(v), Some(w)) => (v - w).abs(),
                            _ => f64::INFINITY,
                        },
                    )
                    .fold(0.0, f64::max)
            }
        } else {
            match (x["value"].as_f64(), y["value"].as_f64()) {
                (Some(v), Some(w)) => (v - w).abs() / v.abs().max(1.0),
                _ => f64::INFINITY,
            }
        };
        worst = worst.max(d);
    }
    worst
}

/// 60 seconds (by default) of valid and malformed requests against autodl's server.
fn soak(run: &Path, valid: &[Vec<u8>], secs: f64, concurrency: usize) -> Result<Soak> {
    let (child, addr) = start_autodl(run, &["--max-body-bytes", "65536"])?;
    let pid = child.id();
    let first: serde_json::Value = serde_json::from_slice(&valid[0])?;
    let row = first["rows"][0].as_object().context("a row")?.clone();
    let some_column = row.keys().next().context("a column")?.clone();
    let mut missing = row.clone();
    missing.remove(&some_column);
    let mut wrong = row.clone();
    wrong.insert(some_column, serde_json::Value::from([1, 2]));
    let kinds: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "malformed JSON",
            "application/json",
            b"{\"rows\": [{".to_vec(),
        ),
        (
            "missing column",
            "application/json",
            serde_json::to_vec(&serde_json::json!({ "rows": [missing] }))?,
        ),
        (
            "wrong type",
            "application/json",
            serde_json::to_vec(&serde_json::json!({ "rows": [wrong] }))?,
        ),
        ("no rows", "application/json", b"[]".to_vec()),
        ("wrong content type", "application/xml", b"<rows/>".to_vec()),
        ("oversized body", "application/json", vec![b' '; 100_000]),
        ("bad CSV", "text/csv", b"a,b\n\"1,2\n".to_vec()),
    ];
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut rss = vec![rss_mib(pid)];
    type Counts = std::collections::BTreeMap<(usize, u16), usize>;
    let (counts, broken): (Counts, usize) = std::thread::scope(|scope| {
        let kinds = &kinds;
        let workers: Vec<_> = (0..concurrency)
            .map(|t| {
                let addr = addr.clone();
                scope.spawn(move || {
                    let mut client = Client::new(&addr);
                    let (mut counts, mut broken) = (Counts::new(), 0);
                    let mut i = t;
                    while Instant::now() < deadline {
                        i += 1;
                        // Seven in ten valid; the rest cycle through the malformed kinds.
                        let (kind, content_type, body, close) = if i % 10 < 7 {
                            (0, "application/json", &valid[i % valid.len()], false)
                        } else {
                            let k = (i / 10) % kinds.len();
                            (
                                k + 1,
                                kinds[k].1,
                                &kinds[k].2,
                                kinds[k].0 == "oversized body",
                            )
                        };
                        match client.send(content_type, body, close) {
                            Some(status) => *counts.entry((kind, status)).or_default() += 1,
                            None => broken += 1,
                        }
                    }
                    (counts, broken)
                })
            })
            .collect();
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(1));
            rss.push(rss_mib(pid));
        }
        let mut all = Counts::new();
        let mut broken = 0;
        for w in workers {
            let (c, b) = w.join().unwrap();
            for (k, n) in c {
                *all.entry(k).or_default() += n;
            }
            broken += b;
        }
        (all, broken)
    });
    let mut child = child;
    let alive = child.try_wait()?.is_none();
    stop(child);
    let names: Vec<&str> = std::iter::once("valid")
        .chain(kinds.iter().map(|k| k.0))
        .collect();
    let by_kind = names
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let statuses: Vec<(u16, usize)> = counts
                .iter()
                .filter(|((kind, _), _)| *kind == k)
                .map(|((_, s), n)| (*s, *n))
                .collect();
            KindCount {
                kind: name.to_string(),
                requests: statuses.iter().map(|s| s.1).sum(),
                statuses,
            }
        })
        .collect();
    Ok(Soak {
        secs,
        concurrency,
        by_kind,
        server_errors: counts
            .iter()
            .filter(|((_, s), _)| *s >= 500)
            .map(|(_, n)| n)
            .sum(),
        broken_connections: broken,
        alive_after: alive,
        rss_mib: rss,
    })
}

/// Trains the default model to serve: datasets/penguins.csv, two trials.
fn default_run(out: &Path) -> Result<PathBuf> {
    let run = out
        .parent()
        .unwrap_or(Path::new("."))
        .join("bench-serve-model");
    if run.join(paths::MANIFEST).is_file() {
        return Ok(run);
    }
    eprintln!("training a model to serve: datasets/penguins.csv, 2 trials");
    let status = Command::new(std::env::current_exe()?)
        .args(["run", "--data"])
        .arg(repo_path("datasets/penguins.csv"))
        .args(["--target", "species", "--max-trials", "2", "--out"])
        .arg(&run)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    if !status.success() {
        bail!("training the model to serve failed");
    }
    Ok(run)
}

/// Runs the comparison and the soak run; prints tables and writes the raw results as JSON.
pub fn serve(args: &ServeBenchArgs) -> Result<()> {
    if args.concurrency.is_empty() || args.secs <= 0.0 {
        bail!("need at least one --concurrency level and --secs > 0");
    }
    let python = bench_python(args.python.as_deref())?;
    let run = match &args.run {
        Some(r) => r.clone(),
        None => default_run(&args.out)?,
    };
    let raw = autodl_data::read_table(&run.join(paths::TEST_RAW))?;
    let valid = bodies(&raw);
    // Both serve the same model: their predictions of the first rows agree.
    let check = &valid[..valid.len().min(100)];
    let (child, addr) = start_autodl(&run, &[])?;
    let a = predictions(&addr, check);
    stop(child);
    let (child, addr) = start_fastapi(&python, &run)?;
    let b = predictions(&addr, check);
    stop(child);
    let agreement = largest_difference(&a?, &b?);
    eprintln!(
        "both servers' predictions of {} test rows agree to {agreement:.2e} (probabilities; values relative to max(1, |value|))",
        check.len()
    );
    if agreement.is_nan() || agreement > 1e-4 {
        bail!(
            "the servers disagree on the same rows by {agreement:e}; the comparison would not be like for like"
        );
    }
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for &c in &args.concurrency {
        // Each level against each server, freshly started, the order alternating.
        for side in if ours.len() % 2 == 0 { [0, 1] } else { [1, 0] } {
            let (child, addr) = if side == 0 {
                start_autodl(&run, &[])?
            } else {
                start_fastapi(&python, &run)?
            };
            // A short warm-up at the same concurrency.
            load(&addr, &valid, c, 1.0);
            let level = load(&addr, &valid, c, args.secs);
            stop(child);
            eprintln!(
                "{:7} concurrency {c:3}: {:8.0} req/s, p50 {:6.2} ms, p99 {:6.2} ms, {} failures",
                if side == 0 { "autodl" } else { "fastapi" },
                level.requests_per_s,
                level.p50_ms,
                level.p99_ms,
                level.failures
            );
            if side == 0 {
                ours.push(level)
            } else {
                theirs.push(level)
            }
        }
    }
    let best = |levels: &[Level]| {
        levels
            .iter()
            .filter(|l| l.p99_ms < P99_LIMIT_MS && l.failures == 0)
            .map(|l| l.requests_per_s)
            .fold(0.0, f64::max)
    };
    let (best_ours, best_theirs) = (best(&ours), best(&theirs));
    println!(
        "| concurrency | autodl req/s | autodl p50 / p99 (ms) | FastAPI req/s | FastAPI p50 / p99 (ms) |\n|---:|---:|---:|---:|---:|"
    );
    for (a, b) in ours.iter().zip(&theirs) {
        println!(
            "| {} | {:.0} | {:.2} / {:.2} | {:.0} | {:.2} / {:.2} |",
            a.concurrency,
            a.requests_per_s,
            a.p50_ms,
            a.p99_ms,
            b.requests_per_s,
            b.p50_ms,
            b.p99_ms
        );
    }
    println!(
        "\nrequests/s with p99 under {P99_LIMIT_MS} ms (best level, no failures): autodl {best_ours:.0}, FastAPI + uvicorn + onnxruntime {best_theirs:.0}: {:.2}×",
        best_ours / best_theirs
    );
    let soak = if args.soak_secs > 0.0 {
        eprintln!("soak: {} s of valid and malformed requests", args.soak_secs);
        let s = soak(&run, &valid, args.soak_secs, 8)?;
        println!(
            "\nsoak, {} s at concurrency {}: 7 in 10 requests valid, the rest malformed\n\n| kind | requests | statuses |\n|---|---:|---|",
            s.secs, s.concurrency
        );
        for k in &s.by_kind {
            let st: Vec<String> = k.statuses.iter().map(|(c, n)| format!("{c}×{n}")).collect();
            println!("| {} | {} | {} |", k.kind, k.requests, st.join(", "));
        }
        let (first, last) = (s.rss_mib[0], *s.rss_mib.last().unwrap());
        let max = s.rss_mib.iter().copied().fold(f64::NAN, f64::max);
        println!(
            "\n5xx answers: {}; broken connections: {}; server alive after: {}; server RSS: {first:.1} MiB at the start, {last:.1} MiB at the end, {max:.1} MiB at most (sampled every second)",
            s.server_errors, s.broken_connections, s.alive_after
        );
        Some(s)
    } else {
        None
    };
    let report = ServeBenchReport {
        run: run.display().to_string(),
        autodl: ours,
        fastapi: theirs,
        best_autodl_rps: best_ours,
        best_fastapi_rps: best_theirs,
        ratio: best_ours / best_theirs,
        predictions_max_diff: agreement,
        soak,
    };
    autodl_artifacts::io::write_json(&args.out, &report)?;
    eprintln!("raw results: {}", args.out.display());
    Ok(())
}
