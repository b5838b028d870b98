//! The invocation trace: while it is on, every call appends one JSON line to `trace.jsonl` in the
//! trace directory (see docs/operations.md):
//!
//! ```text
//! {"time":1764630000.123456,"plugin":"host-local","verb":"ADD","network":"sandbox-cni",
//!  "cniVersion":"1.0.0","containerID":"…","ifname":"eth0","netns":"/var/run/netns/…",
//!  "reply":{…the reply as sent: the result with its addresses, or the error…}|null,
//!  "durationUs":412,"pid":4242,"ppid":4241}
//! ```
//!
//! `time` is seconds since the epoch (UTC) with microseconds; a delegated call's `ppid` is the pid
//! of the plugin that delegated it, whose own line follows.
//!
//! The switch is the directory itself: [`DEFAULT_DIR`] (or `$SANDBOX_CNI_TRACE_DIR`). When it does
//! not exist (tracing off), one failed `lstat` is the whole cost. Nothing about the trace can fail
//! or hold up a call, or change its reply: every error is ignored, and the file is opened only after
//! the reply is written (so the call holds no extra descriptor). The directory is used only the way
//! ssh uses `~/.ssh`: a real directory (not a symlink), owned by the caller or root, writable by
//! nobody else; and `trace.jsonl` only when it is a regular file of the caller's with no second
//! name, mode 0600 (it is created so, and an older file of the caller's is made so). The open never follows a symlink or waits on a FIFO.
//!
//! Writers take the file's lock (waiting at most `LOCK_WAIT_MS` ms, else the record is dropped),
//! append the record, and on a short write (a full file system) cut the file back to where the
//! record began: a record is there whole or not at all, and the next one starts a line. The writer
//! that takes the file past [`MAX_SIZE`] renames it to `trace.jsonl.1` (replacing the previous
//! one), under the lock and only while the name still is that file, so each file is rotated once
//! and no record of the current one is lost; the next call creates a new file. Everything here is
//! written out by hand: the plugins' size budget leaves no room for the formatting machinery.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::env::{CNI_COMMAND, CNI_CONTAINERID, CNI_IFNAME, CNI_NETNS, EnvMap};
use crate::oflags::{O_NOFOLLOW, O_NONBLOCK};
use crate::output::Outcome;

/// Where the trace lives unless `SANDBOX_CNI_TRACE_DIR` says otherwise: on a tmpfs, root's.
pub const DEFAULT_DIR: &str = "/run/sandbox-cni/trace";
/// Environment override of the trace directory (tests, unprivileged use).
pub const DIR_VAR: &str = "SANDBOX_CNI_TRACE_DIR";
/// The current trace file, and the one before it.
pub const FILE: &str = "trace.jsonl";
pub const ROTATED: &str = "trace.jsonl.1";
/// The size at which the file is rotated.
pub const MAX_SIZE: u64 = 4 << 20;
/// How long a writer waits for another writer's lock (held for one `write`) before it drops its record.
pub(crate) const LOCK_WAIT_MS: u32 = 20;

/// Never through a symlink, never waiting on a FIFO.
const FLAGS: i32 = O_NOFOLLOW | O_NONBLOCK;

/// What a call was about, noted by the dispatcher for the trace (how it ended is read from the
/// reply itself).
#[derive(Debug, Default)]
pub(crate) struct Note {
    pub(crate) network: String,
    pub(crate) version: &'static str,
}

/// A call being traced.
pub(crate) struct Trace {
    dir: PathBuf,
    /// The trace directory as found at the start (checked before the file is opened).
    dir_md: fs::Metadata,
    start: SystemTime,
}

fn var<'a>(vars: &'a EnvMap, name: &str) -> Option<&'a std::ffi::OsString> {
    vars.get(OsStr::new(name)).filter(|v| !v.is_empty())
}

/// Starts tracing a CNI call, if tracing is on. `None` when it is off (no trace directory) or
/// when the binary was run by hand (no CNI_COMMAND). Opens nothing.
pub(crate) fn start(vars: &EnvMap) -> Option<Trace> {
    var(vars, CNI_COMMAND)?;
    let dir = PathBuf::from(var(vars, DIR_VAR).map_or(OsStr::new(DEFAULT_DIR), |d| d.as_os_str()));
    let dir_md = fs::symlink_metadata(&dir).ok()?;
    Some(Trace {
        dir,
        dir_md,
        start: SystemTime::now(),
    })
}

/// The effective user ID, as the owner of this process's `/proc` entry; `None` without `/proc`.
fn euid() -> Option<u32> {
    fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// Opens `dir/trace.jsonl` for appending when the directory (its `lstat` metadata `md`) and the file
/// pass the checks of the module's documentation (a trace directory that fails them is treated as off).
fn open_in(dir: &Path, md: &fs::Metadata) -> Option<File> {
    if !md.is_dir() || md.mode() & 0o022 != 0 {
        return None;
    }
    // Root's directory (writable by root alone) needs no more: only root can have put a file in
    // it, and a caller that is not root cannot open root's 0600 file. Any other directory must be
    // the caller's own (its effective user, from `/proc/self`), and so must the file.
    let owner = if md.uid() == 0 {
        0
    } else {
        euid().filter(|&me| me == md.uid())?
    };
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(FLAGS)
        .open(dir.join(FILE))
        .ok()?;
    let f = file.metadata().ok()?;
    if !f.is_file() || f.nlink() != 1 || f.uid() != owner {
        return None;
    }
    // A file of ours that others may read (written by an older version): made private first.
    if f.mode() & 0o077 != 0 {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600)).ok()?;
    }
    Some(file)
}

/// Appends one record (a whole line) to the open trace file of `dir`, as the module's
/// documentation says: under the lock, whole or not at all, rotating past `max` bytes.
pub(crate) fn append(file: &File, dir: &Path, record: &[u8], max: u64) {
    let mut waited = 0;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(fs::TryLockError::WouldBlock) if waited < LOCK_WAIT_MS => {
                std::thread::sleep(std::time::Duration::from_millis(1));
                waited += 1;
            }
            Err(_) => return,
        }
    }
    let Ok(md) = file.metadata() else { return };
    if (&*file).write_all(record).is_err() {
        // Torn (a full file system): cut back to where the record began.
        let _ = file.set_len(md.len());
        return;
    }
    if md.len() + record.len() as u64 > max {
        let (from, to) = (dir.join(FILE), dir.join(ROTATED));
        if fs::symlink_metadata(&from).is_ok_and(|m| m.ino() == md.ino() && m.dev() == md.dev()) {
            let _ = fs::rename(&from, &to);
        }
    }
}

/// Appends bytes. Out of line: inlined at every use, growing a vector costs kilobytes of code.
#[inline(never)]
fn put(s: &mut Vec<u8>, b: &[u8]) {
    s.extend_from_slice(b);
}

/// Appends `n` in decimal. (Written out by hand: the formatting machinery would cost the plugins
/// kilobytes.)
fn push_num(s: &mut Vec<u8>, mut n: u64) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    while n > 0 || i == digits.len() {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    put(s, &digits[i..]);
}

/// Appends `v` as a JSON string; a quote, backslash or control character (none of which a
/// valid CNI value holds) becomes `?`, which keeps the line valid JSON without escape sequences.
fn push_json(s: &mut Vec<u8>, v: &str) {
    put(s, b"\"");
    for &b in v.as_bytes() {
        s.push(if b == b'"' || b == b'\\' || b < 0x20 {
            b'?'
        } else {
            b
        });
    }
    put(s, b"\"");
}

/// Appends `,"key":"value"`.
fn field(s: &mut Vec<u8>, key: &str, v: &str) {
    put(s, b",\"");
    put(s, key.as_bytes());
    put(s, b"\":");
    push_json(s, v);
}

/// Appends the time as seconds since the epoch with microseconds, e.g. `1764630000.123456`: a
/// number, because formatting a calendar date would cost the plugins code (readers convert it).
fn push_time(s: &mut Vec<u8>, t: SystemTime) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    push_num(s, d.as_secs());
    // 1_000_000 + micros gives the six digits with their leading zeros; its `1` becomes the point.
    push_num(s, 1_000_000 + u64::from(d.subsec_micros()));
    let at = s.len() - 7;
    s[at] = b'.';
}

impl Trace {
    /// Appends the call's line and rotates the file when it is too large. Ignores every error.
    pub(crate) fn finish(self, plugin: &str, vars: &EnvMap, note: &Note, outcome: &Outcome) {
        let now = SystemTime::now();
        let took = now.duration_since(self.start).unwrap_or_default();
        let get = |name| var(vars, name).and_then(|v| v.to_str()).unwrap_or_default();
        let mut s = Vec::new();
        put(&mut s, b"{\"time\":");
        push_time(&mut s, now);
        field(&mut s, "plugin", plugin);
        field(&mut s, "verb", get(CNI_COMMAND));
        field(&mut s, "network", &note.network);
        field(&mut s, "cniVersion", note.version);
        field(&mut s, "containerID", get(CNI_CONTAINERID));
        field(&mut s, "ifname", get(CNI_IFNAME));
        field(&mut s, "netns", get(CNI_NETNS));
        // The reply itself (a result with its addresses, or an error with its code and message):
        // compact JSON written by the output module, one line; `null` when there was none.
        put(&mut s, b",\"reply\":");
        put(
            &mut s,
            if outcome.stdout.is_empty() {
                b"null"
            } else {
                &outcome.stdout
            },
        );
        put(&mut s, b",\"durationUs\":");
        push_num(
            &mut s,
            took.as_secs() * 1_000_000 + u64::from(took.subsec_micros()),
        );
        put(&mut s, b",\"pid\":");
        push_num(&mut s, u64::from(std::process::id()));
        // The calling process: for a delegated call, the plugin that delegated it (whose own line
        // follows, with this pid).
        put(&mut s, b",\"ppid\":");
        push_num(&mut s, u64::from(std::os::unix::process::parent_id()));
        put(&mut s, b"}\n");
        if let Some(file) = open_in(&self.dir, &self.dir_md) {
            append(&file, &self.dir, &s, MAX_SIZE);
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
    fn times_are_epoch_seconds_with_microseconds() {
        assert_eq!(time(0, 0), "0.000000");
        assert_eq!(time(1_764_630_000, 7), "1764630000.000007");
        assert_eq!(time(1_764_630_000, 999_999), "1764630000.999999");
    }

    #[test]
    fn numbers_are_decimal() {
        for (n, want) in [
            (0, "0"),
            (7, "7"),
            (1230, "1230"),
            (u64::MAX, "18446744073709551615"),
        ] {
            let mut s = Vec::new();
            push_num(&mut s, n);
            assert_eq!(String::from_utf8(s).unwrap(), want);
        }
    }

    #[test]
    fn strings_stay_valid_json() {
        let mut s = Vec::new();
        push_json(&mut s, "a\"b\\c\nd\u{1}é/x");
        let s = String::from_utf8(s).unwrap();
        assert_eq!(s, "\"a?b?c?d?é/x\"");
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v, "a?b?c?d?é/x");
    }
}
