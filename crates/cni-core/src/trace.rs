//! The invocation trace: while it is on, every call appends one JSON line to `trace.jsonl` in the
//! trace directory (see docs/operations.md).
//!
//! The switch is the directory itself: [`DEFAULT_DIR`] (or `$SANDBOX_CNI_TRACE_DIR`). A call opens
//! `<dir>/trace.jsonl` with `O_APPEND|O_CREAT`; when the directory does not exist (tracing off), that
//! one failed open is the whole cost. Nothing about the trace can fail or hold up a call: every error
//! is ignored, the open never follows a symlink or waits on a FIFO, and the line is written with one
//! `write` after the reply. One `write` with `O_APPEND` is atomic on a local file system, so lines of
//! concurrent calls never interleave or tear. When the file grows past its limit (4 MiB, or
//! `$SANDBOX_CNI_TRACE_MAX_BYTES`) the call that noticed renames it to `trace.jsonl.1` (replacing the
//! previous one), holding `flock` on it so that two calls never rotate twice; the next call creates a
//! new file.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::env::{CNI_COMMAND, CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS, EnvMap};
use crate::output::Outcome;

/// Where the trace lives unless `SANDBOX_CNI_TRACE_DIR` says otherwise: on a tmpfs, root's.
pub const DEFAULT_DIR: &str = "/run/sandbox-cni/trace";
/// Environment override of the trace directory (tests, unprivileged use).
pub const DIR_VAR: &str = "SANDBOX_CNI_TRACE_DIR";
/// Environment override of the size at which the file is rotated, in bytes.
pub const MAX_VAR: &str = "SANDBOX_CNI_TRACE_MAX_BYTES";
/// Set by a plugin on the plugin it delegates to: the delegating plugin's name.
pub const PARENT_VAR: &str = "SANDBOX_CNI_PARENT";
/// The current trace file, and the one before it.
pub const FILE: &str = "trace.jsonl";
pub const ROTATED: &str = "trace.jsonl.1";
/// Default rotation size.
pub const DEFAULT_MAX: u64 = 4 << 20;

/// O_NOFOLLOW | O_NONBLOCK (their values differ between architectures).
#[cfg(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc",
    target_arch = "powerpc64"
))]
const FLAGS: i32 = 0o100000 | 0o4000;
#[cfg(any(target_arch = "mips", target_arch = "mips64"))]
const FLAGS: i32 = 0o400000 | 0o200;
#[cfg(not(any(
    target_arch = "aarch64",
    target_arch = "arm",
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64"
)))]
const FLAGS: i32 = 0o400000 | 0o4000;

static SELF: OnceLock<&'static str> = OnceLock::new();

/// The running plugin's name, passed to delegated plugins in [`PARENT_VAR`].
pub fn self_name() -> &'static str {
    SELF.get().copied().unwrap_or_default()
}

/// What a call was about, noted by the dispatcher for the trace (how it ended is read from the
/// reply itself).
#[derive(Debug, Default)]
pub struct Note {
    pub network: String,
    pub version: &'static str,
}

/// An open trace file, for one call.
pub struct Trace {
    file: File,
    dir: PathBuf,
    start: Instant,
}

fn var<'a>(vars: &'a EnvMap, name: &str) -> Option<&'a std::ffi::OsString> {
    vars.get(OsStr::new(name)).filter(|v| !v.is_empty())
}

/// Opens the trace for a CNI call, if tracing is on. `None` when it is off, when it cannot be
/// opened, or when the binary was run by hand (no CNI_COMMAND).
pub fn start(plugin: &'static str, vars: &EnvMap) -> Option<Trace> {
    let _ = SELF.set(plugin);
    var(vars, CNI_COMMAND)?;
    let dir = PathBuf::from(var(vars, DIR_VAR).map_or(OsStr::new(DEFAULT_DIR), |d| d.as_os_str()));
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(FLAGS)
        .open(dir.join(FILE))
        .ok()?;
    Some(Trace {
        file,
        dir,
        start: Instant::now(),
    })
}

/// Appends `n` in decimal, zero-padded to `width` digits. (Written out by hand: the formatting
/// machinery would cost the plugins kilobytes.)
fn push_num(s: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    while n > 0 || i == digits.len() {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    let len = (digits.len() - i).max(width).min(digits.len());
    s.extend_from_slice(&digits[digits.len() - len..]);
}

/// Appends `v` as a JSON string.
fn push_json(s: &mut Vec<u8>, v: &str) {
    s.push(b'"');
    for &b in v.as_bytes() {
        match b {
            b'"' | b'\\' => s.extend_from_slice(&[b'\\', b]),
            0..0x20 => {
                s.extend_from_slice(b"\\u00");
                s.push(b"0123456789abcdef"[usize::from(b >> 4)]);
                s.push(b"0123456789abcdef"[usize::from(b & 15)]);
            }
            _ => s.push(b),
        }
    }
    s.push(b'"');
}

/// The raw bytes after the next `key` in `json`, up to `end` (skipping backslash escapes); `json`
/// moves past them.
fn next_value<'a>(json: &mut &'a [u8], key: &[u8], end: u8) -> Option<&'a [u8]> {
    let at = json.windows(key.len()).position(|w| w == key)? + key.len();
    let mut i = at;
    while i < json.len() && json[i] != end {
        i += if json[i] == b'\\' { 2 } else { 1 };
    }
    let i = i.min(json.len());
    let v = &json[at..i];
    *json = &json[i..];
    Some(v)
}

/// Appends `,"key":"value"`.
fn field(s: &mut Vec<u8>, key: &str, v: &str) {
    s.extend_from_slice(b",\"");
    s.extend_from_slice(key.as_bytes());
    s.extend_from_slice(b"\":");
    push_json(s, v);
}

/// Appends the UTC time as `YYYY-MM-DDTHH:MM:SS.uuuuuuZ` (days to a civil date: the proleptic
/// Gregorian calendar in 400-year eras of 146,097 days, each year starting on 1 March).
fn push_time(s: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let z = secs / 86_400 + 719_468;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = z / 146_097 * 400 + yoe + u64::from(month <= 2);
    let sod = secs % 86_400;
    for (n, width, sep) in [
        (year, 4, b'-'),
        (month, 2, b'-'),
        (day, 2, b'T'),
        (sod / 3600, 2, b':'),
        (sod / 60 % 60, 2, b':'),
        (sod % 60, 2, b'.'),
        (u64::from(d.subsec_micros()), 6, b'Z'),
    ] {
        push_num(s, n, width);
        s.push(sep);
    }
}

impl Trace {
    /// Appends the call's line and rotates the file when it is too large. Ignores every error.
    pub fn finish(self, plugin: &str, vars: &EnvMap, note: &Note, outcome: &Outcome) {
        let took = self.start.elapsed();
        let get = |name| var(vars, name).and_then(|v| v.to_str()).unwrap_or_default();
        let mut s = Vec::new();
        s.extend_from_slice(b"{\"time\":\"");
        push_time(&mut s, SystemTime::now());
        s.push(b'"');
        field(&mut s, "plugin", plugin);
        field(&mut s, "verb", get(CNI_COMMAND));
        field(&mut s, "network", &note.network);
        field(&mut s, "cniVersion", note.version);
        field(&mut s, "containerID", get(CNI_CONTAINERID));
        field(&mut s, "ifname", get(CNI_IFNAME));
        field(&mut s, "netns", get(CNI_NETNS));
        // The reply is compact JSON written by us: its values are copied as they are (escaped).
        let reply = outcome.stdout.as_slice();
        if outcome.exit == 0 {
            s.extend_from_slice(b",\"ips\":[");
            // `address` in 0.3.0 and later results, `ip` in ip4/ip6 of 0.1.0 and 0.2.0.
            let mut first = true;
            for key in [&b"\"address\":\""[..], b"\"ip\":\""] {
                let mut rest = reply;
                while let Some(v) = next_value(&mut rest, key, b'"') {
                    if !first {
                        s.push(b',');
                    }
                    first = false;
                    s.push(b'"');
                    s.extend_from_slice(v);
                    s.push(b'"');
                }
            }
            s.push(b']');
        } else {
            s.extend_from_slice(b",\"code\":");
            s.extend_from_slice(next_value(&mut { reply }, b"\"code\":", b',').unwrap_or(b"0"));
            s.extend_from_slice(b",\"msg\":\"");
            s.extend_from_slice(next_value(&mut { reply }, b"\"msg\":\"", b'"').unwrap_or_default());
            s.push(b'"');
        }
        s.extend_from_slice(b",\"durationUs\":");
        push_num(&mut s, took.as_secs() * 1_000_000 + u64::from(took.subsec_micros()), 1);
        s.extend_from_slice(b",\"pid\":");
        push_num(&mut s, u64::from(std::process::id()), 1);
        field(&mut s, "parent", get(PARENT_VAR));
        s.extend_from_slice(b"}\n");
        // One write: appended whole, never interleaved with another call's line.
        let _ = (&self.file).write(&s);
        let max = var(vars, MAX_VAR)
            .and_then(|v| v.to_str()?.parse().ok())
            .unwrap_or(DEFAULT_MAX);
        if let Ok(md) = self.file.metadata()
            && md.len() > max
            && self.file.try_lock().is_ok()
        {
            // Only the file this call wrote to is rotated: another call may have done it already.
            let path = self.dir.join(FILE);
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.ino() == md.ino() && m.dev() == md.dev()) {
                let _ = std::fs::rename(&path, self.dir.join(ROTATED));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn time(secs: u64, micros: u32) -> String {
        let mut s = Vec::new();
        push_time(&mut s, UNIX_EPOCH + Duration::new(secs, micros * 1000));
        String::from_utf8(s).unwrap()
    }

    #[test]
    fn values_are_found_in_replies() {
        let reply = br#"{"cniVersion":"1.0.0","code":100,"msg":"a \"quoted\" word","details":"x"}"#;
        assert_eq!(next_value(&mut &reply[..], b"\"code\":", b','), Some(&b"100"[..]));
        assert_eq!(
            next_value(&mut &reply[..], b"\"msg\":\"", b'"'),
            Some(&br#"a \"quoted\" word"#[..])
        );
        let mut rest = &br#"{"ips":[{"address":"10.0.0.2/24"},{"address":"fd00::2/64"}]}"#[..];
        assert_eq!(next_value(&mut rest, b"\"address\":\"", b'"'), Some(&b"10.0.0.2/24"[..]));
        assert_eq!(next_value(&mut rest, b"\"address\":\"", b'"'), Some(&b"fd00::2/64"[..]));
        assert_eq!(next_value(&mut rest, b"\"address\":\"", b'"'), None);
    }

    #[test]
    fn numbers_are_padded() {
        for (n, w, want) in [(0, 1, "0"), (7, 2, "07"), (123, 2, "123"), (u64::MAX, 1, "18446744073709551615")] {
            let mut s = Vec::new();
            push_num(&mut s, n, w);
            assert_eq!(String::from_utf8(s).unwrap(), want);
        }
    }

    #[test]
    fn times_are_utc_civil_dates() {
        assert_eq!(time(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(time(951_782_400, 7), "2000-02-29T00:00:00.000007Z");
        assert_eq!(time(951_868_799, 999_999), "2000-02-29T23:59:59.999999Z");
        assert_eq!(time(1_798_761_599, 0), "2026-12-31T23:59:59.000000Z");
        assert_eq!(time(4_107_542_400, 0), "2100-03-01T00:00:00.000000Z");
    }

    #[test]
    fn strings_are_json_escaped() {
        let mut s = Vec::new();
        push_json(&mut s, "a\"b\\c\nd\u{1}é");
        let s = String::from_utf8(s).unwrap();
        assert_eq!(s, r#""a\"b\\c\u000ad\u0001é""#);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a\"b\\c\nd\u{1}é");
    }
}
