//! Studies shared by worker processes: Redis and journal files, Python Optuna as the oracle of
//! the format, and `kill -9` at random moments.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autodl_search::study::{Replay, TrialEntry, TrialState, attrs, journal};
use serde_json::Value;

use super::{Scratch, oracle_python, repo};

/// A private redis-server on a free loopback port (installed by scripts/redis-server.sh from
/// Debian when missing), stopped when dropped.
struct RedisServer {
    child: Child,
    uri: String,
}

impl RedisServer {
    fn start(dir: &Path) -> Self {
        let o = Command::new("bash")
            .arg(repo().join("scripts/redis-server.sh"))
            .output()
            .expect("bash runs");
        assert!(
            o.status.success(),
            "redis-server setup failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let bin = String::from_utf8_lossy(&o.stdout).trim().to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "redis-server did not listen"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer {
            child,
            uri: format!("redis://127.0.0.1:{port}"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn worker(study: &str, storage: &str, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args([
        "search",
        "worker",
        "--quiet",
        "--study",
        study,
        "--storage",
        storage,
    ])
    .args(extra)
    .current_dir(repo());
    c
}

/// Starts `n` workers on one study at once and waits for all of them to succeed.
fn run_workers(n: usize, study: &str, storage: &str, args: &[&str]) {
    let children: Vec<Child> = (0..n)
        .map(|_| {
            worker(study, storage, args)
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
}

fn run_ok(mut c: Command) {
    let o = c.output().expect("runs");
    assert!(
        o.status.success(),
        "{c:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn replay(storage: &str) -> Replay {
    let mut j = journal::open(storage).unwrap();
    let mut r = Replay::default();
    r.apply_all(&j.read(0).unwrap()).unwrap();
    r
}

fn trials<'a>(r: &'a Replay, study: &str) -> Vec<&'a TrialEntry> {
    let id = r.study_by_name(study).expect("the study exists").id;
    r.trials_of(id).collect()
}

fn sample_index(t: &TrialEntry) -> u64 {
    t.system_attrs[attrs::SAMPLE_INDEX].as_u64().unwrap()
}

/// `search show --json` (autodl's reading) and Python Optuna's `load_study` (the oracle's),
/// each as one JSON value per trial.
fn both_readings(study: &str, storage: &str) -> (Vec<Value>, Vec<Value>) {
    let ours = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "search",
            "show",
            "--json",
            "--study",
            study,
            "--storage",
            storage,
        ])
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let python = Command::new(oracle_python())
        .arg(repo().join("scripts/optuna_study.py"))
        .args(["dump", "--study", study, "--storage", storage])
        .output()
        .unwrap();
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    let parse = |b: &[u8]| -> Vec<Value> {
        String::from_utf8_lossy(b)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    (parse(&ours.stdout), parse(&python.stdout))
}

fn python_start(study: &str, storage: &str, trials: usize) {
    let o = Command::new(oracle_python())
        .arg(repo().join("scripts/optuna_study.py"))
        .args(["start", "--study", study, "--storage", storage])
        .args(["--trials", &trials.to_string(), "--seed", "4"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// (sample index → parameters and value) of a study's complete trials.
fn outcomes(ts: &[&TrialEntry]) -> BTreeMap<u64, (BTreeMap<String, f64>, Vec<f64>)> {
    let mut out = BTreeMap::new();
    for t in ts.iter().filter(|t| t.state == TrialState::Complete) {
        let old = out.insert(
            sample_index(t),
            (t.params.clone(), t.values.clone().unwrap()),
        );
        assert!(old.is_none(), "sample {} completed twice", sample_index(t));
    }
    out
}

#[test]
fn three_worker_processes_on_redis_record_every_trial_once_and_find_the_single_workers_best() {
    let scratch = Scratch::new("redis-workers");
    let server = RedisServer::start(scratch.path());
    let n = 45;
    let common = [
        "--objective",
        "hartmann6",
        "--sampler",
        "random",
        "--seed",
        "11",
        "--n-trials",
        "45",
    ];
    let single = format!("{}?prefix=single", server.uri);
    run_ok(worker("h6", &single, &common));
    let three = format!("{}?prefix=three", server.uri);
    // The workers take turns: each trial costs 40 ms of waiting, so that all of them start
    // before the study is done even on a loaded machine.
    let costly: Vec<&str> = common
        .iter()
        .copied()
        .chain(["--cost-ms", "40", "--cost", "sleep"])
        .collect();
    run_workers(3, "h6", &three, &costly);
    let (r1, r3) = (replay(&single), replay(&three));
    let (t1, t3) = (trials(&r1, "h6"), trials(&r3, "h6"));
    assert_eq!(t3.len(), n, "exactly the budget, no overshoot");
    assert!(t3.iter().all(|t| t.state == TrialState::Complete));
    let numbers: BTreeSet<usize> = t3.iter().map(|t| t.number).collect();
    let indices: BTreeSet<u64> = t3.iter().map(|t| sample_index(t)).collect();
    assert_eq!(numbers, (0..n).collect());
    assert_eq!(indices, (0..n as u64).collect(), "each proposal taken once");
    let owners: BTreeSet<&str> = t3.iter().filter_map(|t| t.owner.as_deref()).collect();
    // Normally all three; a worker that started late on a loaded machine may find the
    // study done, which is not a failure of the storage.
    assert!(
        owners.len() >= 2,
        "the workers shared the study: {owners:?}"
    );
    // The same proposals with the same values: the same best as one worker's.
    assert_eq!(outcomes(&t3), outcomes(&t1));
    let best = |ts: &[&TrialEntry]| {
        ts.iter()
            .map(|t| t.values.as_ref().unwrap()[0])
            .fold(f64::INFINITY, f64::min)
    };
    assert_eq!(best(&t3), best(&t1));
    eprintln!(
        "3 workers on Redis: {n} trials, {} by each worker, best {} (one worker: {})",
        owners
            .iter()
            .map(|o| t3
                .iter()
                .filter(|t| t.owner.as_deref() == Some(o))
                .count()
                .to_string())
            .collect::<Vec<_>>()
            .join("/"),
        best(&t3),
        best(&t1)
    );
    // Python Optuna reads the Redis study and sees the same trials.
    let (ours, python) = both_readings("h6", &three);
    assert_eq!(ours.len(), n);
    assert_eq!(ours, python);
}

#[test]
fn python_optuna_reads_our_studies_and_our_workers_continue_pythons() {
    let scratch = Scratch::new("optuna-interop");
    let server = RedisServer::start(scratch.path());
    // Ours, read by Python: categorical parameters, intermediate values and pruned trials
    // (ASHA across two workers on the NAS table).
    let file = scratch.path().join("nas.log").display().to_string();
    let nas = [
        "--objective",
        "nas-table",
        "--asha",
        "--n-trials",
        "40",
        "--seed",
        "2",
    ];
    run_workers(2, "nas", &file, &nas);
    let r = replay(&file);
    let ts = trials(&r, "nas");
    let pruned = ts.iter().filter(|t| t.state == TrialState::Pruned).count();
    let complete = ts
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .count();
    assert_eq!(pruned + complete, 40);
    assert!(
        pruned > 0 && complete > 0,
        "{pruned} pruned, {complete} complete"
    );
    for t in &ts {
        let last = *t.intermediate.keys().next_back().unwrap();
        if t.state == TrialState::Complete {
            assert_eq!(last, 6, "a complete trial reported every epoch");
        } else {
            assert!(
                [1, 3].contains(&last),
                "pruned at a rung, not at step {last}"
            );
        }
    }
    let (ours, python) = both_readings("nas", &file);
    assert_eq!(ours.len(), 40);
    assert_eq!(ours, python);
    // The optimisation history as a plot.
    let svg = scratch.path().join("history.svg");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "search",
            "show",
            "--study",
            "nas",
            "--storage",
            &file,
            "--plot",
        ])
        .arg(&svg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(
        text.starts_with("<svg") && text.ends_with("</svg>"),
        "{text}"
    );
    assert_eq!(text.matches("<circle").count(), 2 * complete);

    // Python's, continued by ours: 10 trials of Optuna's TPE and one enqueued (x = 3), on a
    // file and on Redis.
    for storage in [
        scratch.path().join("py.log").display().to_string(),
        format!("{}?prefix=py", server.uri),
    ] {
        python_start("branin", &storage, 10);
        let (_, before) = both_readings("branin", &storage);
        assert_eq!(before.len(), 11);
        run_ok(worker(
            "branin",
            &storage,
            &["--objective", "branin", "--n-trials", "25"],
        ));
        let (ours, after) = both_readings("branin", &storage);
        assert_eq!(ours, after);
        assert_eq!(after.len(), 25);
        assert_eq!(
            after[..10],
            before[..10],
            "Python's trials are kept as they were"
        );
        assert!(after.iter().all(|t| t["state"] == "COMPLETE"), "{after:?}");
        assert_eq!(
            after[10]["params"]["x"], 3.0,
            "the enqueued trial ran as given"
        );
    }
}

#[test]
fn kill_dash_9_twenty_times_then_resume_loses_and_repeats_nothing() {
    let scratch = Scratch::new("kill-resume");
    let args = [
        "--objective",
        "hartmann6",
        "--sampler",
        "tpe",
        "--seed",
        "3",
        "--n-trials",
        "100",
        "--cost-ms",
        "50",
        "--cost",
        "sleep",
    ];
    let reference = scratch.path().join("whole.log").display().to_string();
    run_ok(worker("k", &reference, &args));
    let log = scratch.path().join("killed.log");
    let storage = log.display().to_string();
    let mut snapshots = Vec::new();
    let (mut interrupted, mut complete_at_kill) = (0, 0);
    // Kill moments from a fixed pseudo-random sequence (30–330 ms after each start, 4.0 s
    // in all, less than the 100 trials of 50 ms take).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for k in 0..20 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let wait = Duration::from_millis(30 + state % 300);
        let mut child = worker("k", &storage, &args)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(wait);
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if log.exists() {
            let snap: PathBuf = scratch.path().join(format!("snapshot-{k:02}.log"));
            std::fs::copy(&log, &snap).unwrap();
            // Our reader accepts it (a line cut off by the kill is left unread) …
            let r = replay(&snap.display().to_string());
            if let Some(study) = r.study_by_name("k") {
                let ts: Vec<_> = r.trials_of(study.id).collect();
                interrupted += ts.iter().any(|t| t.state == TrialState::Running) as usize;
                complete_at_kill = ts
                    .iter()
                    .filter(|t| t.state == TrialState::Complete)
                    .count();
            }
            snapshots.push(snap);
        }
    }
    // Every kill hit a search under way: the study was not finished at the last one.
    assert!(
        complete_at_kill < 100,
        "{complete_at_kill} complete at the 20th kill"
    );
    // … then the resumed search finishes the study.
    run_ok(worker("k", &storage, &args));
    let (whole, killed) = (replay(&reference), replay(&storage));
    let (tw, tk) = (trials(&whole, "k"), trials(&killed, "k"));
    let complete = tk
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .count();
    let failed: Vec<_> = tk.iter().filter(|t| t.state == TrialState::Fail).collect();
    assert_eq!(complete, 100);
    assert!(tk.iter().all(|t| t.state.is_finished()));
    for f in &failed {
        let retries = tk
            .iter()
            .filter(|t| t.system_attrs.get(attrs::RETRY_OF) == Some(&Value::from(f.number)))
            .count();
        assert_eq!(retries, 1, "trial {} retried once", f.number);
    }
    // No completed trial lost or repeated, and the sampler resumed exactly: the same
    // proposals with the same values as the uninterrupted search.
    assert_eq!(outcomes(&tk), outcomes(&tw));
    eprintln!(
        "20 kills, {interrupted} of them in the middle of a trial (the others between trials \
         or while starting); {} trials failed and were retried; {complete_at_kill} complete at \
         the last kill; {complete} complete after resuming; {} snapshots",
        failed.len(),
        snapshots.len()
    );
    // Every snapshot, and the final log, is a valid journal for Python Optuna.
    let o = Command::new(oracle_python())
        .arg(repo().join("scripts/optuna_study.py"))
        .args(["check", "--study", "k"])
        .args(&snapshots)
        .arg(&log)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), snapshots.len() + 1);
    assert!(lines.last().unwrap().ends_with(" 100"), "{lines:?}");
}

#[test]
fn two_workers_train_networks_on_a_table_with_asha_across_them() {
    let scratch = Scratch::new("train-workers");
    let storage = scratch.path().join("digits.log").display().to_string();
    let data = repo().join("datasets/digits.csv").display().to_string();
    let args = [
        "--objective",
        "train",
        "--data",
        &data,
        "--asha",
        "--n-trials",
        "5",
        "--seed",
        "1",
    ];
    run_workers(2, "digits", &storage, &args);
    let r = replay(&storage);
    let ts = trials(&r, "digits");
    assert_eq!(ts.len(), 5);
    assert!(ts.iter().all(|t| t.state.is_finished()), "{ts:?}");
    let complete: Vec<_> = ts
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .collect();
    assert!(!complete.is_empty());
    for t in &complete {
        // One intermediate value per epoch trained, the last equal to the result.
        let steps: Vec<i64> = t.intermediate.keys().copied().collect();
        assert_eq!(steps, (1..=steps.len() as i64).collect::<Vec<_>>());
        let last = *t.intermediate.values().next_back().unwrap();
        assert_eq!(t.values.as_ref().unwrap()[0], last);
    }
    let best = complete
        .iter()
        .map(|t| t.values.as_ref().unwrap()[0])
        .fold(f64::MIN, f64::max);
    assert!(best > 0.8, "best validation score {best}");
    let owners: BTreeSet<&str> = ts.iter().filter_map(|t| t.owner.as_deref()).collect();
    assert_eq!(owners.len(), 2);
}
