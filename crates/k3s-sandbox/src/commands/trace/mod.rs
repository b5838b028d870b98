//! `k3s-sandbox trace`: switch the plugins' invocation trace on and off, and print it.
//!
//! The plugins append one JSON line per call to `<dir>/trace.jsonl` while the trace directory
//! exists (cni-core's `trace` module); `off` moves the directory aside to `<dir>.off`, so the
//! records stay readable, and `on` moves it back.

mod read;
pub mod render;
#[cfg(test)]
mod tests;

use std::fs;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use cni_core::trace::{DEFAULT_DIR, DIR_VAR, FILE, ROTATED};

use crate::duration::parse_duration;
use crate::error::{Failure, Result};
use crate::output::{outln, say};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TraceAction {
    /// Start recording every plugin call
    On,
    /// Stop recording (the records stay readable)
    Off,
    /// Say whether the trace is on, where it is and how large (exit 0 when on, 1 when off)
    Status,
    /// Delete the records
    Clear,
}

#[derive(Args, Debug)]
pub(crate) struct TraceArgs {
    /// on, off, status or clear; without it, print the recorded calls
    #[arg(value_enum)]
    pub(crate) action: Option<TraceAction>,
    /// Keep printing calls as they are recorded (stop with Ctrl-C)
    #[arg(long, short)]
    pub(crate) follow: bool,
    /// Only calls of the last DURATION, e.g. 90s, 10m, 2h, 1d, 1h30m
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) since: Option<Duration>,
    /// Print the records as they are stored (JSON lines) instead of a table; with `status`, one
    /// JSON object
    #[arg(long)]
    pub(crate) json: bool,
    /// Show whole container IDs and results (the table shows IDs' first 13 characters, as
    /// crictl does, and fits 100 columns)
    #[arg(long, visible_alias = "wide")]
    pub(crate) no_trunc: bool,
    /// Trace directory. The plugins write to the default one, or to the one their own
    /// environment names in SANDBOX_CNI_TRACE_DIR [env: SANDBOX_CNI_TRACE_DIR] [default:
    /// /run/sandbox-cni/trace]
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,
}

/// The trace directory: --dir, else $SANDBOX_CNI_TRACE_DIR, else the default.
pub(crate) fn trace_dir(explicit: Option<&Path>) -> PathBuf {
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
pub(crate) fn off_dir(dir: &Path) -> PathBuf {
    let mut s = dir.as_os_str().to_owned();
    s.push(".off");
    PathBuf::from(s)
}

/// Whether the trace is on (the directory exists).
pub(crate) fn is_on(dir: &Path) -> bool {
    fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
}

/// Why the plugins would not write into `dir` (see cni-core's `trace`): `None` when it is missing
/// or fit. Checked as ssh checks `~/.ssh`; the message says how to fix it.
pub(crate) fn refusal(dir: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let md = fs::symlink_metadata(dir).ok()?;
    let euid = rustix::process::geteuid().as_raw();
    let file = dir.join(FILE);
    let why = match cni_core::safefs::check_private_dir(dir, &md, euid) {
        Err(why) => why.to_string(),
        Ok(()) => match fs::symlink_metadata(&file) {
            Ok(f) if !f.is_file() || f.uid() != euid || f.nlink() != 1 => format!(
                "{} is not a regular file of uid {euid} with one name; remove it",
                file.display()
            ),
            _ => return None,
        },
    };
    Some(format!("{why}; the plugins do not write a trace there"))
}

fn turn_on(dir: &Path) -> Result<()> {
    if let Some(why) = refusal(dir) {
        return Err(Failure::new(why));
    }
    if is_on(dir) {
        say(&format!("the trace is already on ({})", dir.display()));
        return Ok(());
    }
    let off = off_dir(dir);
    if let Some(why) = refusal(&off) {
        return Err(Failure::new(format!("not moved back: {why}")));
    }
    if is_on(&off) {
        fs::rename(&off, dir).map_err(|e| Failure::io("move back", &off, &e))?;
    } else {
        if let Some(parent) = dir.parent() {
            fs::DirBuilder::new().recursive(true).mode(0o755).create(parent).map_err(|e| {
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
    // 0700 whatever the umask; the plugins create the files 0600.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Failure::io("set the mode of", dir, &e))?;
    if dir == Path::new(DEFAULT_DIR) {
        say(&format!(
            "trace on: every plugin call appends a line to {}; read it with `k3s-sandbox trace`, stop with `k3s-sandbox trace off`",
            dir.join(FILE).display()
        ));
    } else {
        say(&format!(
            "trace on in {}: plugins append to its {FILE} only when they run with \
             SANDBOX_CNI_TRACE_DIR={} in their environment (e.g. `SANDBOX_CNI_TRACE_DIR={} \
             k3s-sandbox cni add ...`, or set it in containerd's environment); without it they \
             write to {}",
            dir.display(),
            crate::output::shell_quote(&dir.to_string_lossy()),
            crate::output::shell_quote(&dir.to_string_lossy()),
            DEFAULT_DIR
        ));
    }
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

fn status(dir: &Path, json: bool) -> Result<u8> {
    let size = |d: &Path| {
        [ROTATED, FILE]
            .iter()
            .filter_map(|f| fs::metadata(d.join(f)).ok())
            .map(|m| m.len())
            .sum::<u64>()
    };
    let refused = refusal(dir);
    let on = refused.is_none() && is_on(dir);
    let records = records_dir(dir);
    let rotated = records.as_ref().is_some_and(|d| d.join(ROTATED).is_file());
    if json {
        crate::output::print_json(&serde_json::json!({
            "on": on,
            "dir": dir.display().to_string(),
            "refused": refused,
            "records": records.as_ref().map(|d| d.display().to_string()),
            "bytes": records.as_deref().map(size),
        }));
        return Ok(if on { 0 } else { 1 });
    }
    if let Some(why) = refused {
        outln!("trace: refused");
        outln!("reason: {why}");
        return Ok(1);
    }
    let with = if rotated {
        format!(" (with {ROTATED})")
    } else {
        String::new()
    };
    if on {
        outln!("trace: on");
        outln!("file: {}", dir.join(FILE).display());
        outln!(
            "size: {}{with}",
            crate::output::plural(size(dir), "byte", "bytes")
        );
        Ok(0)
    } else {
        outln!("trace: off");
        outln!("dir: {}", dir.display());
        if let Some(d) = records {
            outln!(
                "records: {} ({}{with})",
                d.display(),
                crate::output::plural(size(&d), "byte", "bytes")
            );
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

/// Runs `k3s-sandbox trace ...`.
pub(crate) fn run(a: &TraceArgs) -> Result<u8> {
    let dir = trace_dir(a.dir.as_deref());
    match a.action {
        Some(TraceAction::On) => turn_on(&dir).map(|()| 0),
        Some(TraceAction::Off) => turn_off(&dir).map(|()| 0),
        Some(TraceAction::Status) => status(&dir, a.json),
        Some(TraceAction::Clear) => clear(&dir),
        None => read::show(&dir, a),
    }
}
