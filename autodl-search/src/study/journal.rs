//! Where a study's operation log lives: a local JSON-lines file, or a Redis server, both in the
//! layouts of Optuna's `JournalFileBackend` and `JournalRedisBackend`, so that Python Optuna
//! reads and writes the same studies.
//!
//! Both backends offer one primitive beyond reading: [`Journal::append_if`], which reads the
//! operations appended since the caller last looked and appends the caller's decision with no
//! other append in between. Claiming a trial, failing a dead worker's trial and enforcing a
//! trial budget are decisions over the whole log, so they need it; Optuna has no such primitive,
//! which is why its `MaxTrialsCallback` can overshoot and two of its workers can retry the same
//! failed trial.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::{Result, SearchError};

/// Decides, from the operations appended since the caller last read, what to append.
pub type Decide<'a> = dyn FnMut(Vec<Value>) -> Result<Vec<Value>> + 'a;

/// A study's operation log.
pub trait Journal: Send {
    /// The operations from number `from` on (0-based, in log order). An operation still being
    /// written is not returned.
    fn read(&mut self, from: usize) -> Result<Vec<Value>>;

    /// Reads the operations from `from` on and passes them to `decide`; appends what it returns
    /// with no other append in between. `decide` may be called again with further operations
    /// when another writer got in first (Redis); every call gets only operations it has not seen.
    fn append_if(&mut self, from: usize, decide: &mut Decide<'_>) -> Result<()>;

    /// A second connection to the same log (for a heartbeat thread).
    fn reopen(&self) -> Result<Box<dyn Journal>>;

    /// Where the log is, for messages.
    fn describe(&self) -> String;

    /// What the journal repaired since last asked (a lock or a line left by a killed writer),
    /// for the caller to show.
    fn take_notices(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// Opens `uri`: `redis://HOST:PORT[/DB][?prefix=P]` (Optuna's `JournalRedisBackend(url,
/// prefix=P)`; the default prefix is Optuna's, the empty string), a `file:` URI, or a plain
/// path to a journal file (created when missing).
pub fn open(uri: &str) -> Result<Box<dyn Journal>> {
    if uri.starts_with("redis://") || uri.starts_with("rediss://") {
        return Ok(Box::new(RedisJournal::open(uri)?));
    }
    let path = uri.strip_prefix("file://").or(uri.strip_prefix("file:"));
    Ok(Box::new(FileJournal::open(Path::new(path.unwrap_or(uri)))?))
}

fn storage_err(what: impl std::fmt::Display) -> SearchError {
    SearchError::Storage(what.to_string())
}

fn parse_op(bytes: &[u8], number: usize, source: &str) -> Result<Value> {
    let text = String::from_utf8_lossy(bytes);
    // Python's json.dumps writes NaN and Infinity, which are not JSON; serde_json reads them
    // only as strings, so they are spelled as such first (only outside string literals).
    let parsed = serde_json::from_str::<Value>(&text).or_else(|e| {
        let fixed = python_json_constants(&text);
        serde_json::from_str::<Value>(&fixed).map_err(|_| e)
    });
    let op = parsed.map_err(|e| {
        storage_err(format!(
            "{source}: operation {number} is not valid JSON ({e}): {}",
            text.chars().take(200).collect::<String>()
        ))
    })?;
    if op.get("op_code").and_then(Value::as_u64).is_none() {
        return Err(storage_err(format!(
            "{source}: operation {number} has no op_code; is this an Optuna journal?"
        )));
    }
    Ok(op)
}

/// Replaces Python's bare `NaN`, `Infinity` and `-Infinity` by the strings `"NaN"`,
/// `"Infinity"` and `"-Infinity"`, which the replay reads as numbers ([`super::replay::number`]).
fn python_json_constants(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let replaced = [
            ("-Infinity", "\"-Infinity\""),
            ("Infinity", "\"Infinity\""),
            ("NaN", "\"NaN\""),
        ]
        .into_iter()
        .find(|(from, _)| rest.starts_with(from));
        if let Some((from, to)) = replaced {
            out.push_str(to);
            rest = &rest[from.len()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn op_line(op: &Value) -> Result<String> {
    serde_json::to_string(op).map_err(storage_err)
}

/// Optuna's `JournalFileBackend`: one JSON operation per line, appended under Optuna's lock
/// (a symbolic link `FILE.lock`, which Python writers also take). autodl's own writers first
/// take an OS file lock on `FILE.autodl-lock`, which the kernel releases when a process dies:
/// so when a `.lock` link is left by a process killed while appending, the next autodl writer
/// knows no autodl writer holds it and removes it after [`STALE_LOCK`] (Optuna waits 30 s).
/// A line cut short by such a kill is removed under the lock before the next append, so the
/// log never holds a broken line followed by more operations (which Optuna rejects).
pub struct FileJournal {
    path: PathBuf,
    /// (operation number, byte offset) of the next unread line.
    cursor: (usize, u64),
    /// Repairs not yet reported ([`Journal::take_notices`]).
    notices: Vec<String>,
}

/// How long an Optuna lock link may exist, while no autodl writer holds the OS lock, before it
/// is taken to be left by a killed process.
pub const STALE_LOCK: Duration = Duration::from_secs(2);

impl FileJournal {
    /// Opens (creating when missing) the journal at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            return Err(storage_err(format!(
                "{}: the folder {} does not exist",
                path.display(),
                dir.display()
            )));
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| storage_err(format!("{}: {e}", path.display())))?;
        Ok(FileJournal {
            path: path.to_path_buf(),
            cursor: (0, 0),
            notices: Vec::new(),
        })
    }

    fn lock_link(&self) -> PathBuf {
        with_suffix(&self.path, ".lock")
    }

    /// Takes the OS lock, then Optuna's link lock.
    fn lock(&mut self) -> Result<FileLock> {
        let os_lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(with_suffix(&self.path, ".autodl-lock"))
            .map_err(|e| storage_err(format!("{}: lock file: {e}", self.path.display())))?;
        os_lock
            .lock()
            .map_err(|e| storage_err(format!("{}: lock: {e}", self.path.display())))?;
        let link = self.lock_link();
        let mut sleep = Duration::from_millis(1);
        let mut first_seen: Option<(SystemTime, Instant)> = None;
        loop {
            match std::os::unix::fs::symlink(&self.path, &link) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    // Held by a Python writer (briefly), or left by a killed autodl writer.
                    let created = std::fs::symlink_metadata(&link)
                        .and_then(|m| m.modified())
                        .ok();
                    if let Some(created) = created {
                        let seen = *first_seen.get_or_insert((created, Instant::now()));
                        if seen.0 != created {
                            first_seen = Some((created, Instant::now()));
                        } else if seen.1.elapsed() >= STALE_LOCK {
                            self.notices.push(format!(
                                "journal: removed {} (held for over {} s with no autodl writer \
                                 running: left by a killed process)",
                                link.display(),
                                STALE_LOCK.as_secs()
                            ));
                            release_link(&link);
                            first_seen = None;
                            continue;
                        }
                    }
                    std::thread::sleep(sleep);
                    sleep = (sleep * 2).min(Duration::from_millis(50));
                }
                Err(e) => {
                    return Err(storage_err(format!("{}: {e}", link.display())));
                }
            }
        }
        Ok(FileLock {
            link,
            _os_lock: os_lock,
        })
    }

    /// The operations from `from` on, in complete lines (a trailing partial line, still being
    /// written or cut off by a kill, is not read). Reads from the cursor when it is not past
    /// `from`, else from the start.
    fn read_lines(&mut self, from: usize) -> Result<Vec<Value>> {
        let mut file = File::open(&self.path)
            .map_err(|e| storage_err(format!("{}: {e}", self.path.display())))?;
        if self.cursor.0 > from {
            self.cursor = (0, 0);
        }
        file.seek(SeekFrom::Start(self.cursor.1))
            .map_err(storage_err)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(storage_err)?;
        let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        let mut ops = Vec::new();
        let (mut number, mut offset) = self.cursor;
        let source = self.path.display().to_string();
        for line in bytes[..complete].split_inclusive(|&b| b == b'\n') {
            let body = line.strip_suffix(b"\n").unwrap_or(line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if number >= from {
                ops.push(parse_op(body, number, &source)?);
            }
            number += 1;
            offset += line.len() as u64;
        }
        self.cursor = (number, offset);
        Ok(ops)
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Optuna's release: rename to a unique name, then remove (so that two releasers cannot both
/// remove a fresh lock).
fn release_link(link: &Path) {
    let unique = with_suffix(
        link,
        &format!(
            "{}-{}.rename",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ),
    );
    if std::fs::rename(link, &unique).is_ok() {
        let _ = std::fs::remove_file(&unique);
    }
}

struct FileLock {
    link: PathBuf,
    _os_lock: File,
}

impl Drop for FileLock {
    fn drop(&mut self) {
        release_link(&self.link);
        // The OS lock goes with the file handle.
    }
}

impl Journal for FileJournal {
    fn read(&mut self, from: usize) -> Result<Vec<Value>> {
        self.read_lines(from)
    }

    fn append_if(&mut self, from: usize, decide: &mut Decide<'_>) -> Result<()> {
        let _lock = self.lock()?;
        let ops = self.read_lines(from)?;
        let new = decide(ops)?;
        if new.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for op in &new {
            text.push_str(&op_line(op)?);
            text.push('\n');
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(|e| storage_err(format!("{}: {e}", self.path.display())))?;
        // A line cut short by a writer killed mid-write is dropped before appending after it.
        let len = file.metadata().map_err(storage_err)?.len();
        let mut end = len;
        if len > 0 {
            let back = len.min(1 << 20);
            file.seek(SeekFrom::Start(len - back))
                .map_err(storage_err)?;
            let mut tail = vec![0; back as usize];
            file.read_exact(&mut tail).map_err(storage_err)?;
            if tail.last() != Some(&b'\n') {
                end = match tail.iter().rposition(|&b| b == b'\n') {
                    Some(i) => len - back + i as u64 + 1,
                    None if back == len => 0,
                    None => {
                        return Err(storage_err(format!(
                            "{}: the last line is over 1 MiB and unfinished",
                            self.path.display()
                        )));
                    }
                };
                self.notices.push(format!(
                    "journal: {}: dropped an unfinished last line ({} bytes, from a writer \
                     that was killed while appending)",
                    self.path.display(),
                    len - end
                ));
                file.set_len(end).map_err(storage_err)?;
            }
        }
        // One write of whole lines: a kill either leaves all of them or a cut-off tail that
        // the next writer drops.
        file.seek(SeekFrom::Start(end)).map_err(storage_err)?;
        file.write_all(text.as_bytes()).map_err(storage_err)?;
        file.sync_data().map_err(storage_err)?;
        Ok(())
    }

    fn reopen(&self) -> Result<Box<dyn Journal>> {
        Ok(Box::new(FileJournal::open(&self.path)?))
    }

    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn take_notices(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notices)
    }
}

/// Optuna's `JournalRedisBackend`: operation `i` is the string key `PREFIX:log:i`, and
/// `PREFIX:log_number` holds the number of the last one (−1 before the first). Python appends
/// with a Lua script that increments the counter and sets the key atomically; autodl appends
/// in a `WATCH`ed `MULTI`/`EXEC` transaction on the counter, so a decision is retried when any
/// writer (Python's scripts included) got in first.
pub struct RedisJournal {
    uri: String,
    prefix: String,
    con: redis::Connection,
}

impl RedisJournal {
    /// Connects to `uri` (`redis://HOST:PORT[/DB][?prefix=P]`).
    pub fn open(uri: &str) -> Result<Self> {
        let (url, prefix) = match uri.split_once('?') {
            None => (uri.to_string(), String::new()),
            Some((url, query)) => {
                let mut prefix = None;
                for pair in query.split('&') {
                    match pair.split_once('=') {
                        Some(("prefix", p)) => prefix = Some(p.to_string()),
                        _ => {
                            return Err(storage_err(format!(
                                "{uri}: unknown query `{pair}` (only prefix=NAME is understood)"
                            )));
                        }
                    }
                }
                (url.to_string(), prefix.unwrap_or_default())
            }
        };
        let client =
            redis::Client::open(url.as_str()).map_err(|e| storage_err(format!("{uri}: {e}")))?;
        let con = client
            .get_connection_with_timeout(Duration::from_secs(10))
            .map_err(|e| storage_err(format!("{uri}: cannot connect: {e}")))?;
        Ok(RedisJournal {
            uri: uri.to_string(),
            prefix,
            con,
        })
    }

    fn counter(&self) -> String {
        format!("{}:log_number", self.prefix)
    }

    fn key(&self, n: i64) -> String {
        format!("{}:log:{n}", self.prefix)
    }

    fn last_number(&mut self) -> Result<i64> {
        let last: Option<i64> = redis::cmd("GET")
            .arg(self.counter())
            .query(&mut self.con)
            .map_err(|e| storage_err(format!("{}: {e}", self.uri)))?;
        Ok(last.unwrap_or(-1))
    }

    fn read_upto(&mut self, from: usize, last: i64) -> Result<Vec<Value>> {
        let mut ops = Vec::new();
        let mut next = from as i64;
        while next <= last {
            let upto = (next + 999).min(last);
            let keys: Vec<String> = (next..=upto).map(|n| self.key(n)).collect();
            let values: Vec<Option<Vec<u8>>> =
                redis::cmd("MGET")
                    .arg(&keys)
                    .query(&mut self.con)
                    .map_err(|e| storage_err(format!("{}: {e}", self.uri)))?;
            for (i, v) in values.into_iter().enumerate() {
                let number = next as usize + i;
                match v {
                    Some(bytes) => ops.push(parse_op(&bytes, number, &self.uri)?),
                    // Only in Optuna's cluster mode (counter and key set separately): the key
                    // follows; read again from here.
                    None => {
                        std::thread::sleep(Duration::from_millis(10));
                        return Ok(ops);
                    }
                }
            }
            next = upto + 1;
        }
        Ok(ops)
    }
}

impl Journal for RedisJournal {
    fn read(&mut self, from: usize) -> Result<Vec<Value>> {
        let last = self.last_number()?;
        self.read_upto(from, last)
    }

    fn append_if(&mut self, from: usize, decide: &mut Decide<'_>) -> Result<()> {
        let mut from = from;
        let counter = self.counter();
        loop {
            redis::cmd("WATCH")
                .arg(&counter)
                .query::<()>(&mut self.con)
                .map_err(|e| storage_err(format!("{}: {e}", self.uri)))?;
            let last = self.last_number()?;
            let ops = self.read_upto(from, last)?;
            if (from + ops.len()) as i64 != last + 1 {
                // A key not yet visible (cluster-mode writer): look again.
                from += ops.len();
                decide(ops)?;
                redis::cmd("UNWATCH")
                    .query::<()>(&mut self.con)
                    .map_err(storage_err)?;
                continue;
            }
            from += ops.len();
            let new = decide(ops)?;
            if new.is_empty() {
                redis::cmd("UNWATCH")
                    .query::<()>(&mut self.con)
                    .map_err(storage_err)?;
                return Ok(());
            }
            let mut pipe = redis::pipe();
            pipe.atomic();
            for (i, op) in new.iter().enumerate() {
                pipe.cmd("SET")
                    .arg(self.key(last + 1 + i as i64))
                    .arg(op_line(op)?)
                    .ignore();
            }
            pipe.cmd("SET")
                .arg(&counter)
                .arg(last + new.len() as i64)
                .ignore();
            let done: Option<()> = pipe
                .query(&mut self.con)
                .map_err(|e| storage_err(format!("{}: {e}", self.uri)))?;
            if done.is_some() {
                return Ok(());
            }
            // Another writer appended first: decide again over what it wrote.
        }
    }

    fn reopen(&self) -> Result<Box<dyn Journal>> {
        Ok(Box::new(RedisJournal::open(&self.uri)?))
    }

    fn describe(&self) -> String {
        self.uri.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_constants_are_read_outside_strings_only() {
        let fixed =
            python_json_constants(r#"{"a":NaN,"b":-Infinity,"c":"NaN Infinity","d":Infinity}"#);
        let v: Value = serde_json::from_str(&fixed).unwrap();
        use crate::study::replay::number;
        assert!(number(&v["a"]).unwrap().is_nan());
        assert_eq!(number(&v["b"]), Some(f64::NEG_INFINITY));
        assert_eq!(v["c"], "NaN Infinity");
        assert_eq!(number(&v["d"]), Some(f64::INFINITY));
    }

    #[test]
    fn a_lock_link_left_by_a_killed_writer_is_removed_after_the_grace_period() {
        let dir = std::env::temp_dir().join(format!("autodl-stale-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stale.log");
        let mut j = FileJournal::open(&path).unwrap();
        // Optuna's lock as a writer killed while appending leaves it; no process holds the
        // OS lock.
        std::os::unix::fs::symlink(&path, with_suffix(&path, ".lock")).unwrap();
        let t = Instant::now();
        j.append_if(0, &mut |_| {
            Ok(vec![serde_json::json!({"op_code": 10, "worker_id": "w"})])
        })
        .unwrap();
        assert!(t.elapsed() >= STALE_LOCK);
        assert_eq!(j.read(0).unwrap().len(), 1);
        assert!(
            !with_suffix(&path, ".lock").exists(),
            "released after the append"
        );
        let notices = j.take_notices();
        assert!(
            notices.len() == 1 && notices[0].contains("killed process"),
            "{notices:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_cut_off_last_line_is_not_read_and_is_dropped_before_the_next_append() {
        let dir = std::env::temp_dir().join(format!("autodl-journal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cut.log");
        std::fs::write(
            &path,
            "{\"op_code\":0,\"worker_id\":\"w\"}\n{\"op_code\":4,\"wor",
        )
        .unwrap();
        let mut j = FileJournal::open(&path).unwrap();
        assert_eq!(j.read(0).unwrap().len(), 1);
        j.append_if(1, &mut |seen| {
            assert!(seen.is_empty());
            Ok(vec![
                serde_json::json!({"op_code": 1, "worker_id": "w", "study_id": 0}),
            ])
        })
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        let notices = j.take_notices();
        assert!(
            notices.len() == 1 && notices[0].contains("(17 bytes"),
            "{notices:?}"
        );
        assert_eq!(j.read(0).unwrap().len(), 2);
        assert_eq!(j.read(1).unwrap()[0]["op_code"], 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
