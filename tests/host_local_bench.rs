//! Side-by-side benchmark of host-local against the reference plugin (not part of the test suite:
//! it prints ratios and never asserts timings). Compare a release build:
//!
//! ```text
//! cargo build --release --bin host-local
//! HOST_LOCAL_BIN=target/release/host-local cargo test --test host_local_bench -- --ignored --nocapture
//! ```
//!
//! (Without HOST_LOCAL_BIN the binary of the test's own build is measured.)
//! HOST_LOCAL_BENCH_STORE (default 60000) sets the size of the large store (0 skips it),
//! HOST_LOCAL_BENCH_CONCURRENT=0 skips the concurrency run; HOST_LOCAL_BENCH_N the
//! number of timed calls per figure (default 40 on an empty store, 20 on the large one). Peak RSS is
//! read with /usr/bin/time -v when it is installed (Debian package `time`).
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::json;

const REFERENCE: &str = "/usr/lib/cni/host-local";

fn conf(data: &Path, subnet: &str) -> String {
    json!({"cniVersion": "1.0.0", "name": "bench", "type": "host-local",
           "ipam": {"type": "host-local", "dataDir": data.to_str().unwrap(), "ranges": [[{"subnet": subnet}]]}})
    .to_string()
}

/// Runs one call and returns its wall time in microseconds; panics if it fails.
fn call(exe: &Path, cmd: &str, id: &str, stdin: &str) -> f64 {
    let start = Instant::now();
    let mut child = Command::new(exe)
        .env_clear()
        .envs([
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", "/var/run/netns/bench"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let us = start.elapsed().as_secs_f64() * 1e6;
    assert!(
        out.status.success(),
        "{} {cmd} {id}: {}",
        exe.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    us
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak RSS in KiB of one call, from /usr/bin/time -v.
fn peak_rss(exe: &Path, cmd: &str, id: &str, stdin: &str) -> Option<u64> {
    if !Path::new("/usr/bin/time").is_file() {
        return None;
    }
    let mut child = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(exe)
        .env_clear()
        .envs([
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", "/var/run/netns/bench"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/usr/lib/cni"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(stdin.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    String::from_utf8_lossy(&out.stderr).lines().find_map(|l| {
        l.trim()
            .strip_prefix("Maximum resident set size (kbytes): ")
            .and_then(|n| n.parse().ok())
    })
}

/// Fills `<data>/bench` with `count` reservation files from 10.200.0.2 up (as the reference's own
/// measurements did), and a cursor.
fn populate(data: &Path, count: u32) {
    let dir = data.join("bench");
    fs::create_dir_all(&dir).unwrap();
    let base = u32::from(Ipv4Addr::new(10, 200, 0, 2));
    for k in 0..count {
        fs::write(
            dir.join(Ipv4Addr::from(base + k).to_string()),
            format!("pre-{k}\r\neth0"),
        )
        .unwrap();
    }
    fs::write(
        dir.join("last_reserved_ip.0"),
        Ipv4Addr::from(base + count - 1).to_string(),
    )
    .unwrap();
}

/// A scratch data directory. Default under /var/tmp, on the file system of the real default
/// dataDir (/var/lib/cni/networks); HOST_LOCAL_BENCH_DIR overrides it. (On some machines /tmp is
/// far slower at creating files, which would blur the comparison.)
fn scratch() -> tempfile::TempDir {
    let base =
        std::env::var_os("HOST_LOCAL_BENCH_DIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
    tempfile::Builder::new()
        .prefix("host-local-bench")
        .tempdir_in(base)
        .unwrap()
}

struct Row {
    what: String,
    ours: f64,
    theirs: f64,
}

fn env_n(key: &str, default: usize) -> usize {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Interleaved ADD/CHECK/DEL on both plugins, each on its own store.
#[allow(clippy::too_many_arguments)]
fn lifecycle(
    rows: &mut Vec<Row>,
    label: &str,
    ours: &Path,
    d_ours: &Path,
    d_ref: &Path,
    subnet: &str,
    n: usize,
    check: bool,
) {
    let (co, cr) = (conf(d_ours, subnet), conf(d_ref, subnet));
    let mut t: [[Vec<f64>; 2]; 3] = Default::default();
    for i in 0..n {
        let id = format!("{}-{i}", label.replace(' ', "-"));
        for (k, (exe, c)) in [(ours, &co), (Path::new(REFERENCE), &cr)].into_iter().enumerate() {
            t[0][k].push(call(exe, "ADD", &id, c));
            if check {
                t[1][k].push(call(exe, "CHECK", &id, c));
            }
            t[2][k].push(call(exe, "DEL", &id, c));
        }
    }
    for (j, verb) in ["ADD", "CHECK", "DEL"].iter().enumerate() {
        if t[j][0].is_empty() {
            continue;
        }
        rows.push(Row {
            what: format!("{verb} {label}"),
            ours: median(t[j][0].clone()),
            theirs: median(t[j][1].clone()),
        });
    }
}

fn concurrent(exe: &Path, data: &Path, total: usize) -> f64 {
    let c = conf(data, "10.30.0.0/24");
    let start = Instant::now();
    let handles: Vec<_> = (0..16)
        .map(|t| {
            let (exe, c) = (exe.to_path_buf(), c.clone());
            std::thread::spawn(move || {
                for i in (t..total).step_by(16) {
                    call(&exe, "ADD", &format!("c{i}"), &c);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let files = fs::read_dir(data.join("bench"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_str()
                .unwrap()
                .starts_with("10.")
        })
        .count();
    assert_eq!(files, total, "every ADD holds one distinct file");
    total as f64 / secs
}

#[test]
#[ignore = "benchmark: run with --ignored --nocapture on a release build"]
fn bench_against_the_reference() {
    assert!(
        Path::new(REFERENCE).is_file(),
        "install containernetworking-plugins"
    );
    let ours = std::env::var_os("HOST_LOCAL_BIN")
        .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_host-local")), PathBuf::from);
    println!("ours: {}", ours.display());
    let big = env_n("HOST_LOCAL_BENCH_STORE", 60_000) as u32;
    let n = env_n("HOST_LOCAL_BENCH_N", 40);
    let kb = |v: Option<u64>| v.map_or_else(|| "n/a".to_owned(), |k| format!("{k} KiB"));
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let (a, b) = (scratch(), scratch());
    // Warm both (page cache, first directory creation), then measure on an empty store.
    lifecycle(
        &mut rows,
        "warm",
        &ours,
        a.path(),
        b.path(),
        "10.22.0.0/24",
        3,
        false,
    );
    rows.clear();
    lifecycle(
        &mut rows,
        "empty store",
        &ours,
        a.path(),
        b.path(),
        "10.22.0.0/24",
        n,
        true,
    );
    notes.push(format!(
        "peak RSS of ADD, empty store: ours {}, reference {}",
        kb(peak_rss(&ours, "ADD", "rss", &conf(a.path(), "10.22.0.0/24"))),
        kb(peak_rss(
            Path::new(REFERENCE),
            "ADD",
            "rss",
            &conf(b.path(), "10.22.0.0/24")
        ))
    ));
    if big > 0 {
        let (a, b) = (scratch(), scratch());
        populate(a.path(), big);
        populate(b.path(), big);
        // Both plugins read every file once (the reference's first reads also update access times),
        // then everything is flushed so that writeback does not run during the timed calls.
        call(
            Path::new(REFERENCE),
            "CHECK",
            "pre-0",
            &conf(b.path(), "10.200.0.0/16"),
        );
        let _ = Command::new("sync").status();
        // Our first call after files were written behind its back rebuilds the index once.
        let rebuild = call(&ours, "CHECK", "pre-0", &conf(a.path(), "10.200.0.0/16"));
        notes.push(format!(
            "first call on the {big}-entry store (index rebuild): {:.0} ms",
            rebuild / 1000.0
        ));
        let _ = Command::new("sync").status();
        let label = format!("{big} reservations");
        let m = env_n("HOST_LOCAL_BENCH_N", 20).min(n);
        lifecycle(
            &mut rows,
            &label,
            &ours,
            a.path(),
            b.path(),
            "10.200.0.0/16",
            m,
            true,
        );
        notes.push(format!(
            "peak RSS of ADD, {big} reservations: ours {}, reference {}",
            kb(peak_rss(&ours, "ADD", "rss", &conf(a.path(), "10.200.0.0/16"))),
            kb(peak_rss(
                Path::new(REFERENCE),
                "ADD",
                "rss",
                &conf(b.path(), "10.200.0.0/16")
            ))
        ));
    }
    if env_n("HOST_LOCAL_BENCH_CONCURRENT", 1) > 0 {
        let (a, b) = (scratch(), scratch());
        let thr = (
            concurrent(&ours, a.path(), 200),
            concurrent(Path::new(REFERENCE), b.path(), 200),
        );
        notes.push(format!(
            "16-way concurrent ADDs (200 into a /24): ours {:.0}/s, reference {:.0}/s, ratio {:.1}x",
            thr.0,
            thr.1,
            thr.0 / thr.1
        ));
    }
    println!(
        "\n{:<32} {:>12} {:>12} {:>8}",
        "median wall time per call", "ours (us)", "ref (us)", "ratio"
    );
    for r in &rows {
        println!(
            "{:<32} {:>12.0} {:>12.0} {:>7.1}x",
            r.what,
            r.ours,
            r.theirs,
            r.theirs / r.ours
        );
    }
    for note in notes {
        println!("{note}");
    }
}
