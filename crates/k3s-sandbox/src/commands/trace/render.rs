//! The trace's records as a table (or as JSON lines): one row a call, a delegated call named after
//! its parent, errors in red on a terminal.

use serde_json::Value;

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

/// One record for the table.
pub struct Row {
    /// An error's message, printed under its row.
    pub(crate) message: String,
    pub time: String,
    pub plugin: String,
    pub verb: String,
    pub network: String,
    pub container: String,
    pub ifname: String,
    pub result: String,
    pub(crate) error: bool,
    pub(crate) duration: String,
    pub(crate) pid: String,
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

pub fn row(v: &Value, parent: &str, full: bool) -> Row {
    let plugin = text(v, "plugin");
    let reply = v.get("reply").unwrap_or(&Value::Null);
    let error = reply.get("code").is_some();
    let result = if error {
        format!("ERROR {}", text(reply, "code"))
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
        message: if error { text(reply, "msg") } else { String::new() },
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
        container: crate::output::short_id(&text(v, "containerID"), full),
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
pub fn parents(recs: &[Value]) -> Vec<String> {
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

/// One line of the table: fixed columns (rows are printed as they come, while following), the
/// time without its date and no PID (`--json` has both; `--no-trunc` shows the PID and whole
/// IDs), so a line fits 100 columns.
fn format_row(cols: [&str; 9], full: bool) -> String {
    let time = if cols[0] == HEADER[0] {
        cols[0]
    } else {
        cols[0].get(11..).unwrap_or(cols[0])
    };
    let id_width = if full { 64 } else { crate::output::SHORT_ID };
    let mut s = format!(
        "{time:<12}  {:<17}  {:<7}  {:<11}  {:<id_width$}  {:<5}  {:>6}  ",
        cols[1], cols[2], cols[3], cols[4], cols[5], cols[6],
    );
    if full {
        s.push_str(&format!("{:>7}  ", cols[7]));
    }
    s.push_str(cols[8]);
    if !full && s.chars().count() > crate::output::WIDTH {
        s = s.chars().take(crate::output::WIDTH - 1).collect();
        s.push('…');
    }
    s.trim_end().to_string()
}

/// Prints one line; when stdout is gone (`trace | head`), stops quietly, as `cat` does.
fn emit(line: &str) {
    if crate::output::stdout_bytes(format!("{line}\n").as_bytes()).is_err() {
        std::process::exit(0);
    }
}

pub(super) struct Printer {
    pub(super) json: bool,
    /// Whole container IDs and results (`--no-trunc`).
    pub(super) full: bool,
    /// Records older than --since, not shown.
    pub(super) skipped: usize,
    pub(super) color: bool,
    pub(super) since: Option<f64>,
    pub(super) header_done: bool,
    pub(super) bad_lines: usize,
}

impl Printer {
    /// Prints a batch of lines (in file order; a delegated call's parent is found within it).
    pub(super) fn lines(&mut self, lines: &[String]) {
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
                self.skipped += 1;
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
                emit(&format_row(HEADER, self.full));
                self.header_done = true;
            }
            let r = row(&v, &parent, self.full);
            let s = format_row(
                [
                    &r.time,
                    &r.plugin,
                    &r.verb,
                    &r.network,
                    &r.container,
                    &r.ifname,
                    &r.duration,
                    &r.pid,
                    &r.result,
                ],
                self.full,
            );
            let mut lines = vec![s];
            if !r.message.is_empty() {
                let mut m = format!("    {}", r.message);
                if !self.full && m.chars().count() > crate::output::WIDTH {
                    m = m.chars().take(crate::output::WIDTH - 1).collect();
                    m.push('…');
                }
                lines.push(m);
            }
            for l in lines {
                // Control characters of a forged record never reach the terminal.
                let l = cni_core::safefs::printable(&l).into_owned();
                if r.error && self.color {
                    emit(&format!("\x1b[1;31m{l}\x1b[0m"));
                } else {
                    emit(&l);
                }
            }
        }
    }
}
