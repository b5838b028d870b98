//! How every command prints: JSON with one indentation, errors as JSON objects under `--json`,
//! plurals, container IDs shortened as crictl and docker do, aligned tables that fit 100
//! columns, colour only where NO_COLOR and CLICOLOR allow it, and shell quoting ([`shell_quote`]) of
//! the values in the command lines it suggests.
//!
//! It is the CLI's one printer: every line reaches stdout through `out!` and `outln!` and stderr
//! through `errln!` (or [`say`], which adds the program's name), and those go through
//! [`stdout_fmt`] and [`stderr_fmt`], the only two places that print.

use std::fmt;

use serde::Serialize;
use serde_json::Value;

/// Writes `args` to stdout as `print!` does (line-buffered; a failed write panics as it does).
#[allow(clippy::print_stdout)]
pub(crate) fn stdout_fmt(args: fmt::Arguments<'_>) {
    print!("{args}");
}

/// Writes `args` to stderr as `eprint!` does (unbuffered).
#[allow(clippy::print_stderr)]
pub(crate) fn stderr_fmt(args: fmt::Arguments<'_>) {
    eprint!("{args}");
}

/// `print!` for the CLI: formats to stdout through [`stdout_fmt`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::stdout_fmt(format_args!($($arg)*))
    };
}

/// `println!` for the CLI: formats a line to stdout through [`stdout_fmt`].
macro_rules! outln {
    () => {
        $crate::output::stdout_fmt(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::stdout_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` for the CLI: formats a line to stderr through [`stderr_fmt`].
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::stderr_fmt(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};

/// A line on stderr after the program's name: `k3s-sandbox: {msg}` (progress, notes, errors).
pub(crate) fn say(msg: &str) {
    errln!("k3s-sandbox: {msg}");
}

/// Width a table is fitted to (unless `--no-trunc`).
pub(crate) const WIDTH: usize = 100;
/// Characters of a container ID shown in tables, as crictl and docker show them.
pub(crate) const SHORT_ID: usize = 13;
/// The one indentation of pretty-printed JSON (cnitool's, for `cni add`'s result).
pub(crate) const INDENT: &[u8] = b"    ";

/// `v` as indented JSON text.
pub(crate) fn json_text(v: &impl Serialize) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(INDENT);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    if v.serialize(&mut ser).is_err() {
        return "null".to_string();
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Writes `bytes` to stdout as they are and flushes. The error (a closed pipe: `... | head`) is the
/// caller's to ignore or act on; nothing panics.
#[allow(clippy::disallowed_methods)]
pub(crate) fn stdout_bytes(bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// Writes `bytes` to stderr as they are (a plugin's own stderr, passed through); a failed write is
/// ignored, as there is nowhere left to report it.
#[allow(clippy::disallowed_methods)]
pub(crate) fn stderr_bytes(bytes: &[u8]) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(bytes);
}

/// Prints `v` as indented JSON on stdout.
pub(crate) fn print_json(v: &impl Serialize) {
    outln!("{}", json_text(v));
}

/// The object `--json` prints on stdout when a command fails.
pub(crate) fn error_json(message: &str, exit_code: u8) -> Value {
    serde_json::json!({"error": {"message": message, "exitCode": exit_code}})
}

/// `1 warning`, `2 warnings`.
pub(crate) fn plural(n: impl Into<u128>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A container ID as tables show it: its first 13 characters, unless `full`.
pub(crate) fn short_id(id: &str, full: bool) -> String {
    if full {
        id.to_string()
    } else {
        id.chars().take(SHORT_ID).collect()
    }
}

/// Whether stdout gets colour: NO_COLOR (set and not empty) turns it off, CLICOLOR_FORCE (set,
/// not empty, not 0) on, CLICOLOR=0 off, else only on a terminal (anstream reads these).
#[allow(clippy::disallowed_methods)]
pub(crate) fn stdout_color() -> bool {
    !matches!(
        anstream::AutoStream::choice(&std::io::stdout()),
        anstream::ColorChoice::Never
    )
}

/// An aligned table: columns padded to their widest cell (the `right` ones aligned right), two
/// spaces apart, the last column cut with `…` so a line fits [`WIDTH`] unless `wide`.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>], right: &[usize], wide: bool) -> Vec<String> {
    let n = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(n) {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            let last = i + 1 == n;
            if i > 0 {
                s.push_str("  ");
            }
            if last {
                let room = WIDTH.saturating_sub(s.chars().count()).max(12);
                if !wide && c.chars().count() > room {
                    s.extend(c.chars().take(room - 1));
                    s.push('…');
                } else {
                    s.push_str(c);
                }
            } else if right.contains(&i) {
                s.push_str(&format!("{c:>w$}", w = widths[i]));
            } else {
                s.push_str(&format!("{c:<w$}", w = widths[i]));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(header.to_vec())];
    for r in rows {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// Quote `s` for a POSIX shell when it contains anything but safe characters.
pub(crate) fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,=@%".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_has_one_indentation() {
        assert_eq!(
            json_text(&serde_json::json!({"a": [1]})),
            "{\n    \"a\": [\n        1\n    ]\n}"
        );
    }

    #[test]
    fn plurals_and_ids() {
        assert_eq!(plural(1u8, "warning", "warnings"), "1 warning");
        assert_eq!(plural(0u8, "warning", "warnings"), "0 warnings");
        assert_eq!(short_id("cnitool-57af0123456789abcdef", false), "cnitool-57af0");
        assert_eq!(short_id("abc", false), "abc");
        assert_eq!(short_id("cnitool-57af0123456789", true), "cnitool-57af0123456789");
    }

    #[test]
    fn tables_align_and_fit() {
        let rows = vec![
            vec!["a".to_string(), "1".to_string(), "x".repeat(200)],
            vec!["bbbb".to_string(), "22".to_string(), "short".to_string()],
        ];
        let t = table(&["NAME", "N", "TEXT"], &rows, &[1], false);
        assert_eq!(t[0], "NAME   N  TEXT");
        assert_eq!(t[2], "bbbb  22  short");
        assert!(t.iter().all(|l| l.chars().count() <= WIDTH), "{t:?}");
        assert!(t[1].ends_with('…'));
        let wide = table(&["NAME", "N", "TEXT"], &rows, &[1], true);
        assert!(wide[1].chars().count() > WIDTH);
    }

    #[test]
    fn shell_quote_leaves_plain_paths_alone_and_quotes_the_rest() {
        assert_eq!(
            shell_quote("/var/lib/k3s-sandbox/kubeconfig.yaml"),
            "/var/lib/k3s-sandbox/kubeconfig.yaml"
        );
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }
}
