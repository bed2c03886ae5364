//! What the orchestrator reads from the machine: versions, CPU time, energy counters.

use std::collections::BTreeMap;

use autodl_criteria::Energy;

/// Versions of autodl, the compiler and the main dependencies (from the workspace lock file).
pub fn versions() -> BTreeMap<String, String> {
    let lock = include_str!("../../Cargo.lock");
    let mut out = BTreeMap::new();
    out.insert("autodl".into(), env!("CARGO_PKG_VERSION").into());
    out.insert("rustc".into(), env!("AUTODL_RUSTC_VERSION").into());
    for name in ["polars", "burn", "tract-onnx", "linfa", "petgraph", "prost"] {
        let needle = format!("name = \"{name}\"\nversion = \"");
        if let Some(start) = lock.find(&needle) {
            let rest = &lock[start + needle.len()..];
            if let Some(end) = rest.find('"') {
                out.insert(name.into(), rest[..end].into());
            }
        }
    }
    out.insert(
        "lock_sha256".into(),
        autodl_artifacts::io::sha256_hex(lock.as_bytes()),
    );
    out
}

/// User plus system CPU seconds of this process, from `/proc/self/stat` (Linux).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on every Linux architecture this runs on.
    Some(ticks / 100.0)
}

/// Reads the RAPL package energy counter, in joules, if the machine exposes it.
pub fn rapl_joules() -> Result<f64, String> {
    let path = "/sys/class/powercap/intel-rapl:0/energy_uj";
    std::fs::read_to_string(path)
        .map_err(|e| format!("{path}: {e}"))?
        .trim()
        .parse::<f64>()
        .map(|uj| uj / 1e6)
        .map_err(|e| format!("{path}: {e}"))
}

/// Energy between two RAPL readings, or why there is none.
pub fn energy_between(start: &Result<f64, String>) -> Energy {
    match (start.clone(), rapl_joules()) {
        (Ok(a), Ok(b)) if b >= a => Energy::Measured {
            joules: b - a,
            source: "RAPL package counter intel-rapl:0".into(),
        },
        (Err(e), _) | (_, Err(e)) => Energy::Unavailable { reason: e },
        _ => Energy::Unavailable {
            reason: "the RAPL counter wrapped during the run".into(),
        },
    }
}

/// Memory available to new work, in bytes (Linux `MemAvailable`); `None` where unknown.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
