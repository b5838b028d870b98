//! Reading the records: the rotated file then the current one, and following new records across
//! rotations and off/on switches.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cni_core::trace::{FILE, ROTATED};

use super::render::Printer;
use super::{TraceArgs, is_on, records_dir, say};
use crate::error::{Failure, Result};

/// The most read from a trace file at once: a file is rotated at 4 MiB.
const MAX_READ: u64 = 4 * cni_core::trace::MAX_SIZE;

/// Opens a trace file as the plugins do: never through a symlink, never waiting on a FIFO, a
/// regular file only.
fn open(path: &Path) -> Option<File> {
    cni_core::safefs::open_regular(fs::OpenOptions::new().read(true), path)
        .ok()
        .map(|(f, _)| f)
}

/// Reads `file` from `offset` to its end (at most [`MAX_READ`] bytes); returns the complete lines and the new offset (a line
/// being written is left for later).
fn read_from(file: &mut File, offset: u64) -> (Vec<String>, u64) {
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(offset)).is_err()
        || Read::take(&mut *file, MAX_READ).read_to_end(&mut buf).is_err()
    {
        return (Vec::new(), offset);
    }
    let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let text = String::from_utf8_lossy(&buf[..complete]);
    (
        text.lines().map(str::to_string).collect(),
        offset + complete as u64,
    )
}

pub(super) fn show(dir: &Path, a: &TraceArgs) -> Result<u8> {
    let since = a.since.map(|d| {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        now.saturating_sub(d).as_secs_f64()
    });
    let mut p = Printer {
        json: a.json,
        full: a.no_trunc,
        skipped: 0,
        color: crate::output::stdout_color(),
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
        let Some(mut f) = open(&path) else { continue };
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
        match a.since {
            Some(d) if p.skipped > 0 => say(&format!(
                "no calls in the last {}s ({})",
                d.as_secs(),
                crate::output::plural(p.skipped as u64, "older call", "older calls")
            )),
            _ => say("no calls recorded"),
        }
    }
    if p.bad_lines > 0 {
        say(&format!(
            "{} skipped",
            crate::output::plural(p.bad_lines as u64, "unreadable line", "unreadable lines")
        ));
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
            if !same && let Some(f) = open(&path) {
                current = Some((f, 0));
                continue;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}
