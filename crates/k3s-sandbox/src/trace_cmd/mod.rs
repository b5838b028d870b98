//! `k3s-sandbox trace`: switch the plugins' invocation trace on and off, and print it.
//!
//! The plugins append one JSON line per call to `<dir>/trace.jsonl` while the trace directory
//! exists (cni-core's `trace` module); `off` moves the directory aside to `<dir>.off`, so the
//! records stay readable, and `on` moves it back.

use std::fs::{self, File};
use std::io::{IsTerminal, Read, Seek, SeekFrom};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use cni_core::trace::{DEFAULT_DIR, DIR_VAR, FILE, ROTATED};
use serde_json::Value;

use crate::error::{Failure, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TraceAction {
    /// Start recording every plugin call
    On,
    /// Stop recording (the records stay readable)
    Off,
    /// Say whether the trace is on, where it is and how large
    Status,
    /// Delete the records
    Clear,
}

#[derive(Args, Debug)]
pub struct TraceArgs {
    /// on, off, status or clear; without it, print the recorded calls
    #[arg(value_enum)]
    pub action: Option<TraceAction>,
    /// Keep printing calls as they are recorded (stop with Ctrl-C)
    #[arg(long, short)]
    pub follow: bool,
    /// Only calls of the last DURATION, e.g. 90s, 10m, 2h, 1d, 1h30m
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub since: Option<Duration>,
    /// Print the records as they are stored (JSON lines) instead of a table
    #[arg(long)]
    pub json: bool,
    /// Trace directory; the plugins use it only when it is the default or they have
    /// SANDBOX_CNI_TRACE_DIR set to it [env: SANDBOX_CNI_TRACE_DIR] [default: /run/sandbox-cni/trace]
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

fn say(msg: &str) {
    eprintln!("k3s-sandbox: {msg}");
}

/// `90s`, `10m`, `2h`, `1d`, `1h30m`; a bare number is seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("`{s}` is not a duration: use e.g. 90s, 10m, 2h, 1d or 1h30m");
    if s.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    let mut total = 0u64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        total = total.saturating_add(n.saturating_mul(unit));
        num.clear();
    }
    if !num.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// A trace time (seconds since the epoch) as `YYYY-MM-DD HH:MM:SS.mmm` UTC.
pub fn fmt_time(t: f64) -> String {
    if !t.is_finite() || t < 0.0 {
        return "?".to_string();
    }
    let ms = (t * 1000.0).round() as u64;
    let secs = ms / 1000;
    // Days to a civil date: 400-year eras of 146,097 days, years starting on 1 March.
    let z = secs / 86_400 + 719_468;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = z / 146_097 * 400 + yoe + u64::from(month <= 2);
    let sod = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:03}",
        sod / 3600,
        sod / 60 % 60,
        sod % 60,
        ms % 1000
    )
}

/// The trace directory: --dir, else $SANDBOX_CNI_TRACE_DIR, else the default.
pub fn trace_dir(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| {
            std::env::var_os(DIR_VAR)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

/// Where the records are kept while the trace is off.
pub fn off_dir(dir: &Path) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(".off");
    PathBuf::from(s)
}

/// Whether the trace is on (the directory exists).
pub fn is_on(dir: &Path) -> bool {
    fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
}

fn turn_on(dir: &Path) -> Result<()> {
    if is_on(dir) {
        say(&format!("the trace is already on ({})", dir.display()));
        return Ok(());
    }
    let off = off_dir(dir);
    if is_on(&off) {
        fs::rename(&off, dir).map_err(|e| Failure::io("move back", &off, &e))?;
    } else {
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(|e| {
                Failure::new(format!(
                    "cannot create {}: {e}{}",
                    parent.display(),
                    if e.kind() == std::io::ErrorKind::PermissionDenied {
                        " (the default trace directory is root's: run as root, or point --dir and SANDBOX_CNI_TRACE_DIR elsewhere)"
                    } else {
                        ""
                    }
                ))
            })?;
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .map_err(|e| Failure::io("create the trace directory", dir, &e))?;
    }
    say(&format!(
        "trace on: every plugin call appends a line to {}; read it with `k3s-sandbox trace`, stop with `k3s-sandbox trace off`",
        dir.join(FILE).display()
    ));
    Ok(())
}

fn turn_off(dir: &Path) -> Result<()> {
    if !is_on(dir) {
        say("the trace is already off");
        return Ok(());
    }
    let off = off_dir(dir);
    if fs::symlink_metadata(&off).is_ok() {
        fs::remove_dir_all(&off).map_err(|e| Failure::io("remove the old records in", &off, &e))?;
    }
    fs::rename(dir, &off).map_err(|e| Failure::io("move aside", dir, &e))?;
    say(&format!(
        "trace off; the records stay readable with `k3s-sandbox trace` (kept in {})",
        off.display()
    ));
    Ok(())
}

/// The directory holding the records: the live one, else the one moved aside by `off`.
fn records_dir(dir: &Path) -> Option<PathBuf> {
    if is_on(dir) {
        return Some(dir.to_path_buf());
    }
    let off = off_dir(dir);
    is_on(&off).then_some(off)
}

fn status(dir: &Path) -> Result<u8> {
    let size = |d: &Path| {
        [ROTATED, FILE]
            .iter()
            .filter_map(|f| fs::metadata(d.join(f)).ok())
            .map(|m| m.len())
            .sum::<u64>()
    };
    if is_on(dir) {
        println!("trace: on");
        println!("file: {}", dir.join(FILE).display());
        println!("size: {} bytes (with {ROTATED})", size(dir));
        Ok(0)
    } else {
        println!("trace: off");
        if let Some(d) = records_dir(dir) {
            println!("records: {} ({} bytes)", d.display(), size(&d));
        }
        Ok(1)
    }
}

fn clear(dir: &Path) -> Result<u8> {
    for d in [dir.to_path_buf(), off_dir(dir)] {
        for f in [ROTATED, FILE] {
            match fs::remove_file(d.join(f)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Failure::io("remove", &d.join(f), &e)),
            }
        }
    }
    say("trace records deleted");
    Ok(0)
}

/// One record for the table.
struct Row {
    time: String,
    plugin: String,
    verb: String,
    network: String,
    container: String,
    ifname: String,
    result: String,
    error: bool,
    duration: String,
    pid: String,
}

fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The addresses of a result in any version's layout.
fn addresses(reply: &Value) -> Vec<String> {
    let mut out: Vec<String> = reply
        .get("ips")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|i| i.get("address").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for fam in ["ip4", "ip6"] {
        if let Some(ip) = reply.get(fam).and_then(|f| f.get("ip")).and_then(Value::as_str) {
            out.push(ip.to_string());
        }
    }
    out
}

fn row(v: &Value, parent: &str) -> Row {
    let plugin = text(v, "plugin");
    let reply = v.get("reply").unwrap_or(&Value::Null);
    let error = reply.get("code").is_some();
    let result = if error {
        format!("ERROR {}: {}", text(reply, "code"), text(reply, "msg"))
    } else if reply.get("supportedVersions").is_some() {
        "versions".to_string()
    } else {
        let ips = addresses(reply);
        if ips.is_empty() {
            "ok".to_string()
        } else {
            ips.join(",")
        }
    };
    Row {
        time: v
            .get("time")
            .and_then(Value::as_f64)
            .map_or_else(|| "?".into(), fmt_time),
        plugin: if parent.is_empty() {
            plugin
        } else {
            format!("{parent}>{plugin}")
        },
        verb: text(v, "verb"),
        network: text(v, "network"),
        container: text(v, "containerID").chars().take(12).collect(),
        ifname: text(v, "ifname"),
        result,
        error,
        duration: v
            .get("durationUs")
            .and_then(Value::as_u64)
            .map_or(String::new(), |us| format!("{:.1}", us as f64 / 1000.0)),
        pid: text(v, "pid"),
    }
}

/// The delegating plugin of each record: the first later record (within a minute) whose pid is
/// this record's ppid. Records are in file order.
fn parents(recs: &[Value]) -> Vec<String> {
    recs.iter()
        .enumerate()
        .map(|(i, r)| {
            let (Some(ppid), Some(t)) = (
                r.get("ppid").and_then(Value::as_u64),
                r.get("time").and_then(Value::as_f64),
            ) else {
                return String::new();
            };
            recs[i + 1..]
                .iter()
                .take_while(|o| {
                    o.get("time")
                        .and_then(Value::as_f64)
                        .is_none_or(|ot| ot - t < 60.0)
                })
                .find(|o| o.get("pid").and_then(Value::as_u64) == Some(ppid))
                .map(|o| text(o, "plugin"))
                .unwrap_or_default()
        })
        .collect()
}

const HEADER: [&str; 9] = [
    "TIME (UTC)",
    "PLUGIN",
    "VERB",
    "NETWORK",
    "CONTAINER",
    "IF",
    "MS",
    "PID",
    "RESULT",
];

fn format_row(cols: [&str; 9]) -> String {
    format!(
        "{:<23}  {:<18}  {:<7}  {:<14}  {:<12}  {:<5}  {:>7}  {:>7}  {}",
        cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8]
    )
}

/// Prints one line; when stdout is gone (`trace | head`), stops quietly, as `cat` does.
fn emit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

struct Printer {
    json: bool,
    color: bool,
    since: Option<f64>,
    header_done: bool,
    bad_lines: usize,
}

impl Printer {
    /// Prints a batch of lines (in file order; a delegated call's parent is found within it).
    fn lines(&mut self, lines: &[String]) {
        let mut recs = Vec::new();
        for line in lines.iter().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Value>(line) {
                Ok(v) => recs.push(v),
                Err(_) => self.bad_lines += 1,
            }
        }
        let parents = parents(&recs);
        for (mut v, parent) in recs.into_iter().zip(parents) {
            if let Some(since) = self.since
                && v.get("time").and_then(Value::as_f64).is_none_or(|t| t < since)
            {
                continue;
            }
            if self.json {
                if let Some(o) = v.as_object_mut() {
                    o.insert("parent".to_string(), Value::String(parent));
                }
                emit(&v.to_string());
                continue;
            }
            if !self.header_done {
                emit(&format_row(HEADER));
                self.header_done = true;
            }
            let r = row(&v, &parent);
            let s = format_row([
                &r.time,
                &r.plugin,
                &r.verb,
                &r.network,
                &r.container,
                &r.ifname,
                &r.duration,
                &r.pid,
                &r.result,
            ]);
            if r.error && self.color {
                emit(&format!("\x1b[1;31m{s}\x1b[0m"));
            } else {
                emit(&s);
            }
        }
    }
}

/// Reads `file` from `offset` to its end; returns the complete lines and the new offset (a line
/// being written is left for later).
fn read_from(file: &mut File, offset: u64) -> (Vec<String>, u64) {
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(offset)).is_err() || file.read_to_end(&mut buf).is_err() {
        return (Vec::new(), offset);
    }
    let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&buf[..complete]);
    (
        text.lines().map(str::to_string).collect(),
        offset + complete as u64,
    )
}

fn show(dir: &Path, a: &TraceArgs) -> Result<u8> {
    let since = a.since.map(|d| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        now.saturating_sub(d).as_secs_f64()
    });
    let mut p = Printer {
        json: a.json,
        color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        since,
        header_done: false,
        bad_lines: 0,
    };
    let Some(rdir) = records_dir(dir) else {
        if !a.follow {
            return Err(Failure::new(format!(
                "there is no trace in {}: start one with `k3s-sandbox trace on`",
                dir.display()
            )));
        }
        say(&format!(
            "waiting for the trace to be switched on ({})",
            dir.display()
        ));
        return follow(dir, &mut p, None);
    };
    if !is_on(dir) && !a.follow {
        say("the trace is off; these are the calls recorded while it was on");
    }
    // Older records first.
    let mut current = None;
    let mut all = Vec::new();
    for name in [ROTATED, FILE] {
        let path = rdir.join(name);
        let Ok(mut f) = File::open(&path) else { continue };
        let (lines, end) = read_from(&mut f, 0);
        all.extend(lines);
        if name == FILE {
            current = Some((f, end));
        }
    }
    p.lines(&all);
    if a.follow {
        return follow(dir, &mut p, current);
    }
    if !p.header_done && !p.json {
        say("no calls recorded");
    }
    if p.bad_lines > 0 {
        say(&format!("{} unreadable line(s) skipped", p.bad_lines));
    }
    Ok(0)
}

/// Prints new records as they arrive, across rotations and off/on switches.
fn follow(dir: &Path, p: &mut Printer, mut current: Option<(File, u64)>) -> Result<u8> {
    loop {
        if let Some((f, off)) = &mut current {
            let (lines, end) = read_from(f, *off);
            *off = end;
            p.lines(&lines);
        }
        // A rotation (or `off` then `on`) replaced the file: continue with the new one.
        let path = dir.join(FILE);
        if let Ok(md) = fs::metadata(&path) {
            let same = current
                .as_ref()
                .and_then(|(f, _)| f.metadata().ok())
                .is_some_and(|m| m.ino() == md.ino() && m.dev() == md.dev());
            if !same && let Ok(f) = File::open(&path) {
                current = Some((f, 0));
                continue;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

pub fn trace(a: &TraceArgs) -> Result<u8> {
    let dir = trace_dir(a.dir.as_deref());
    match a.action {
        Some(TraceAction::On) => turn_on(&dir).map(|()| 0),
        Some(TraceAction::Off) => turn_off(&dir).map(|()| 0),
        Some(TraceAction::Status) => status(&dir),
        Some(TraceAction::Clear) => clear(&dir),
        None => show(&dir, a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        for bad in ["", "m", "10x", "1h30", "-5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn trace_times_are_shown_in_utc() {
        assert_eq!(fmt_time(0.0), "1970-01-01 00:00:00.000");
        assert_eq!(fmt_time(951_868_799.999_4), "2000-02-29 23:59:59.999");
        assert_eq!(fmt_time(4_107_542_400.5), "2100-03-01 00:00:00.500");
        assert_eq!(fmt_time(-1.0), "?");
    }

    #[test]
    fn rows_name_the_parent_and_show_errors() {
        let recs: Vec<Value> = [
            r#"{"time":1764630000.123456,"plugin":"host-local","verb":"ADD","network":"n","cniVersion":"1.0.0","containerID":"0123456789abcdef","ifname":"eth0","netns":"/x","reply":{"cniVersion":"1.0.0","code":100,"msg":"no IP addresses available"},"durationUs":1530,"pid":7,"ppid":6}"#,
            r#"{"time":1764630000.2,"plugin":"bridge","verb":"ADD","network":"n","cniVersion":"1.0.0","containerID":"0123456789abcdef","ifname":"eth0","netns":"/x","reply":{"cniVersion":"1.0.0","code":100,"msg":"no IP addresses available"},"durationUs":2600,"pid":6,"ppid":1}"#,
            r#"{"time":1764630001,"plugin":"host-local","verb":"ADD","reply":{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}},"pid":9,"ppid":1}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let parents = parents(&recs);
        assert_eq!(parents, vec!["bridge", "", ""]);
        let r = row(&recs[0], &parents[0]);
        assert_eq!(r.time, "2025-12-01 23:00:00.123");
        assert_eq!(r.plugin, "bridge>host-local");
        assert_eq!(r.container, "0123456789ab");
        assert!(r.error);
        assert_eq!(r.result, "ERROR 100: no IP addresses available");
        assert_eq!(r.duration, "1.5");
        assert_eq!(row(&recs[2], "").result, "10.0.0.2/24");
    }
}
