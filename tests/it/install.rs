//! install.sh into temporary directories: fresh install with self-test, re-run is a no-op, foreign files
//! are protected (and backed up and restored with --force / --uninstall), dry runs change nothing;
//! releases (unpacked or as a tarball) are checked before anything is installed.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::PLUGINS;

struct Setup {
    _tmp: tempfile::TempDir,
    from: PathBuf,
    bin: PathBuf,
    conf: PathBuf,
    cli: PathBuf,
}

/// A staging dir with this build's plugins and a stand-in CLI, and empty target dirs.
fn setup() -> Setup {
    let tmp = tempfile::tempdir().expect("temp dir");
    let from = tmp.path().join("from");
    fs::create_dir(&from).expect("staging dir");
    for p in PLUGINS {
        fs::copy(crate::harness::plugin(p), from.join(p)).expect("stage plugin");
    }
    // The CLI's stand-in: an ELF of this machine (install.sh checks every binary's header).
    fs::copy(crate::harness::plugin("loopback"), from.join("k3s-sandbox")).expect("stage CLI");
    let (bin, conf, cli) = (
        tmp.path().join("bin"),
        tmp.path().join("net.d"),
        tmp.path().join("cli"),
    );
    Setup {
        from,
        bin,
        conf,
        cli,
        _tmp: tmp,
    }
}

impl Setup {
    fn install(&self, extra: &[&str]) -> (bool, String) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
        let mut cmd = Command::new(script);
        cmd.arg("--bin-dir").arg(&self.bin);
        // --uninstall takes only --bin-dir (its manifest names every path).
        if !extra.contains(&"--uninstall") {
            cmd.arg("--from")
                .arg(&self.from)
                .arg("--conf-dir")
                .arg(&self.conf)
                .arg("--cli-dir")
                .arg(&self.cli);
        }
        let out = cmd.args(extra).output().expect("run install.sh");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    fn installed(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = PLUGINS.iter().map(|p| self.bin.join(p)).collect();
        v.push(self.conf.join("10-sandbox-cni.conflist"));
        v.push(self.cli.join("k3s-sandbox"));
        v
    }
}

#[test]
fn fresh_install_then_rerun_is_a_no_op() {
    let s = setup();
    let (ok, out) = s.install(&[]);
    assert!(ok, "{out}");
    assert!(
        out.contains("self-test: VERSION of 7 plugins, loopback ADD/DEL, bridge+host-local ADD/DEL: ok"),
        "{out}"
    );
    for f in s.installed() {
        let m = fs::metadata(&f).unwrap_or_else(|_| panic!("{} missing", f.display()));
        let want = if f.extension().is_some_and(|e| e == "conflist") {
            0o644
        } else {
            0o755
        };
        assert_eq!(m.permissions().mode() & 0o777, want, "{}", f.display());
    }
    assert_eq!(
        fs::read(s.bin.join("bridge")).unwrap(),
        fs::read(s.from.join("bridge")).unwrap()
    );
    let manifest = fs::read_to_string(s.bin.join(".sandbox-cni.manifest")).unwrap();
    assert_eq!(
        manifest.lines().filter(|l| l.starts_with("file ")).count(),
        9,
        "{manifest}"
    );
    // No staging leftovers.
    assert!(fs::read_dir(&s.bin).unwrap().all(|e| {
        !e.unwrap()
            .file_name()
            .to_string_lossy()
            .contains("sandbox-cni-new")
    }));

    let inodes: Vec<u64> = s
        .installed()
        .iter()
        .map(|f| fs::metadata(f).unwrap().ino())
        .collect();
    let (ok, out) = s.install(&[]);
    assert!(ok, "{out}");
    assert!(out.contains("0 file(s) changed, 9 already current"), "{out}");
    let after: Vec<u64> = s
        .installed()
        .iter()
        .map(|f| fs::metadata(f).unwrap().ino())
        .collect();
    assert_eq!(inodes, after, "a re-run must not rewrite current files");
    assert_eq!(
        fs::read_to_string(s.bin.join(".sandbox-cni.manifest")).unwrap(),
        manifest
    );
}

#[test]
fn changed_build_updates_only_what_changed() {
    let s = setup();
    assert!(s.install(&["--no-self-test"]).0);
    let mut newer = fs::read(s.from.join("k3s-sandbox")).unwrap();
    newer.extend_from_slice(b"newer");
    fs::write(s.from.join("k3s-sandbox"), newer).unwrap();
    let (ok, out) = s.install(&["--no-self-test"]);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("update    {}", s.cli.join("k3s-sandbox").display())),
        "{out}"
    );
    assert!(out.contains("1 file(s) changed, 8 already current"), "{out}");
}

#[test]
fn foreign_file_is_protected_then_forced_with_backup_and_restored_by_uninstall() {
    let s = setup();
    fs::create_dir_all(&s.bin).unwrap();
    let foreign = b"#!/bin/sh\n# the reference bridge\n";
    fs::write(s.bin.join("bridge"), foreign).unwrap();

    let (ok, out) = s.install(&[]);
    assert!(!ok, "must refuse: {out}");
    assert!(
        out.contains(&s.bin.join("bridge").display().to_string()) && out.contains("--force"),
        "{out}"
    );
    assert_eq!(fs::read(s.bin.join("bridge")).unwrap(), foreign);
    assert!(
        !s.bin.join("loopback").exists(),
        "nothing may change when refusing"
    );
    assert!(!s.conf.exists());

    let (ok, out) = s.install(&["--force"]);
    assert!(ok, "{out}");
    assert_eq!(
        fs::read(s.bin.join("bridge.sandbox-cni-backup")).unwrap(),
        foreign
    );
    assert_eq!(
        fs::read(s.bin.join("bridge")).unwrap(),
        fs::read(s.from.join("bridge")).unwrap()
    );

    // A file changed after install is left alone by uninstall.
    fs::write(s.bin.join("tuning"), "edited by hand").unwrap();

    let (ok, out) = s.install(&["--uninstall"]);
    assert!(ok, "{out}");
    assert_eq!(
        fs::read(s.bin.join("bridge")).unwrap(),
        foreign,
        "backup restored"
    );
    assert!(!s.bin.join("bridge.sandbox-cni-backup").exists());
    assert_eq!(
        fs::read_to_string(s.bin.join("tuning")).unwrap(),
        "edited by hand"
    );
    for f in s.installed() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name != "bridge" && name != "tuning" {
            assert!(!f.exists(), "{} should be removed", f.display());
        }
    }
    assert!(!s.bin.join(".sandbox-cni.manifest").exists());
    let (ok, out) = s.install(&["--uninstall"]);
    assert!(!ok && out.contains("no manifest"), "{out}");
}

#[test]
fn dry_run_changes_nothing() {
    let s = setup();
    let (ok, out) = s.install(&["--dry-run"]);
    assert!(ok, "{out}");
    assert!(out.contains("9 file(s) would change"), "{out}");
    assert!(!s.bin.exists() && !s.conf.exists() && !s.cli.exists());
    assert!(s.install(&["--no-self-test"]).0);
    let (ok, out) = s.install(&["--uninstall", "--dry-run"]);
    assert!(ok && out.contains("9 file(s) would be removed"), "{out}");
    assert!(s.bin.join("loopback").exists());
}

#[test]
fn no_conf_and_no_cli_install_only_plugins() {
    let s = setup();
    let (ok, out) = s.install(&["--no-conf", "--no-cli", "--no-self-test"]);
    assert!(ok, "{out}");
    assert!(!s.conf.exists() && !s.cli.exists());
    assert!(s.bin.join("host-local").exists());
}

#[test]
fn usage_errors_exit_2() {
    let s = setup();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    for args in [&["--bogus"][..], &["--bin-dir"], &["--bin-dir", "/tmp/a b"]] {
        let st = Command::new(&script).args(args).output().unwrap();
        assert_eq!(st.status.code(), Some(2), "{args:?}");
    }
    let help = Command::new(&script).arg("--help").output().unwrap();
    assert!(help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--uninstall"));
    // Options that do not apply together are usage errors (issue 20): `--uninstall --from x`
    // uninstalled the system copy, `--package --dry-run` built and wrote dist/.
    let dist = s.cli.join("dist");
    for (args, says) in [
        (
            &["--uninstall", "--from", "x"][..],
            "--from cannot be used with --uninstall",
        ),
        (
            &["--uninstall", "--force"],
            "--force cannot be used with --uninstall",
        ),
        (
            &["--uninstall", "--conf-dir", "/x"],
            "--conf-dir cannot be used with --uninstall",
        ),
        (
            &["--package", "--dry-run", "--dist-dir", dist.to_str().unwrap()],
            "--dry-run cannot be used with --package",
        ),
        (
            &["--package", "--from", "x"],
            "--from cannot be used with --package",
        ),
        (
            &["--package", "--bin-dir", "/x"],
            "--bin-dir cannot be used with --package",
        ),
        (&["--no-deb"], "--no-deb goes with --package"),
        (
            &["--no-cli", "--share-dir", "/x"],
            "--share-dir cannot be used with --no-cli",
        ),
    ] {
        let out = Command::new(&script).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(!dist.exists());
    drop(s);
}

/// The real CLI of this build.
fn real_cli() -> PathBuf {
    crate::harness::plugin("loopback").with_file_name("k3s-sandbox")
}

#[test]
fn completions_and_man_page_are_installed_with_the_cli_and_uninstalled() {
    let s = setup();
    fs::copy(real_cli(), s.from.join("k3s-sandbox")).unwrap();
    let share = s.cli.parent().unwrap().join("share");
    let (ok, out) = s.install(&["--no-self-test"]);
    assert!(ok, "{out}");
    let files = [
        "bash-completion/completions/k3s-sandbox",
        "zsh/site-functions/_k3s-sandbox",
        "fish/vendor_completions.d/k3s-sandbox.fish",
        "man/man1/k3s-sandbox.1",
    ];
    for f in files {
        let p = share.join(f);
        assert!(out.contains(&format!("new       {}", p.display())), "{out}");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o644, "{f}");
    }
    assert!(
        fs::read_to_string(share.join(files[3]))
            .unwrap()
            .contains(".TH k3s-sandbox 1")
    );
    let (ok, out) = s.install(&["--uninstall"]);
    assert!(ok, "{out}");
    for f in files {
        assert!(!share.join(f).exists(), "{f}: {out}");
    }
    // A CLI that cannot write them (the stand-in): said, and nothing half-made is installed.
    let s = setup();
    let (ok, out) = s.install(&["--no-self-test"]);
    assert!(
        ok && out.contains("cannot write its completions and manual page"),
        "{out}"
    );
    assert!(!s.cli.parent().unwrap().join("share").exists());
}

#[test]
fn a_source_build_installs_from_cargo_target_dir() {
    // A stand-in cargo that "builds" into CARGO_TARGET_DIR: install.sh must install from there,
    // not from a stale target/ of the source tree (issue 20).
    let s = setup();
    let root = s.bin.parent().unwrap().to_path_buf();
    let fake = root.join("fake-bin");
    fs::create_dir_all(&fake).unwrap();
    let target = root.join("custom-target");
    // An ELF (install.sh checks every binary's class and machine) that no other build has: the
    // staged stand-in with a marker appended.
    let mut marker = fs::read(s.from.join("k3s-sandbox")).unwrap();
    marker.extend_from_slice(b"built-into-CARGO_TARGET_DIR");
    fs::write(s.from.join("k3s-sandbox"), &marker).unwrap();
    fs::write(
        fake.join("cargo"),
        format!(
            "#!/bin/sh\nfor a; do t=$a; done\nd=\"$CARGO_TARGET_DIR/$t/release\"\nmkdir -p \"$d\"\ncp {}/* \"$d/\"\n",
            s.from.display()
        ),
    )
    .unwrap();
    fs::set_permissions(fake.join("cargo"), fs::Permissions::from_mode(0o755)).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let out = Command::new(script)
        .args(["--no-self-test", "--no-conf", "--bin-dir"])
        .arg(&s.bin)
        .arg("--cli-dir")
        .arg(&s.cli)
        .env("PATH", format!("{}:/usr/bin:/bin", fake.display()))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        fs::read(s.cli.join("k3s-sandbox")).unwrap() == marker,
        "the CLI installed is not the one built into CARGO_TARGET_DIR"
    );
}

/// This machine's architecture as releases name it, and another one.
fn arches() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "aarch64" => ("aarch64", "x86_64"),
        a => (a, "aarch64"),
    }
}

/// An unpacked release of this build's plugins laid out as `./install.sh --package` does, claiming
/// architecture `arch`, with its MANIFEST.sha256.
fn release(s: &Setup, arch: &str) -> PathBuf {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rel = s
        .from
        .parent()
        .unwrap()
        .join(format!("sandbox-cni-0.1.0-{arch}-linux-musl"));
    fs::create_dir_all(rel.join("bin")).unwrap();
    fs::create_dir_all(rel.join("cni-conf")).unwrap();
    for f in PLUGINS.iter().chain(&["k3s-sandbox"]) {
        fs::copy(s.from.join(f), rel.join("bin").join(f)).unwrap();
    }
    fs::copy(
        repo.join("cni-conf/10-sandbox-cni.conflist"),
        rel.join("cni-conf/10-sandbox-cni.conflist"),
    )
    .unwrap();
    fs::copy(repo.join("install.sh"), rel.join("install.sh")).unwrap();
    fs::copy(repo.join("LICENSE"), rel.join("LICENSE")).unwrap();
    fs::write(
        rel.join("RELEASE"),
        format!(
            "name=sandbox-cni\nversion=0.1.0\narch={arch}\ncommit=test\nplugins={}\n",
            PLUGINS.join(" ")
        ),
    )
    .unwrap();
    write_manifest(&rel);
    rel
}

fn write_manifest(rel: &Path) {
    let st = Command::new("sh")
        .arg("-c")
        .arg("find . -type f ! -name MANIFEST.sha256 | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum > MANIFEST.sha256")
        .current_dir(rel)
        .status()
        .unwrap();
    assert!(st.success());
}

fn tar_gz(rel: &Path) -> PathBuf {
    let tarball = rel.with_file_name(format!("{}.tar.gz", rel.file_name().unwrap().to_string_lossy()));
    let st = Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(rel.parent().unwrap())
        .arg(rel.file_name().unwrap())
        .status()
        .unwrap();
    assert!(st.success());
    tarball
}

/// Runs `script` with the target dirs of `s`, `args`, and optionally PATH replaced.
fn run_script(s: &Setup, script: &Path, args: &[&str], path: Option<&str>) -> (bool, String) {
    let mut cmd = Command::new(script);
    cmd.arg("--bin-dir").arg(&s.bin);
    if !args.contains(&"--uninstall") {
        cmd.arg("--conf-dir").arg(&s.conf).arg("--cli-dir").arg(&s.cli);
    }
    cmd.args(args);
    if let Some(p) = path {
        cmd.env("PATH", p);
    }
    let out = cmd.output().expect("run install.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn release_tarball_installs_checked_and_its_own_script_needs_no_cargo() {
    let s = setup();
    let (arch, _) = arches();
    let rel = release(&s, arch);
    let tarball = tar_gz(&rel);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");

    let tarball_arg = tarball.to_str().unwrap();
    let (ok, out) = run_script(&s, &script, &["--from", tarball_arg], None);
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("verified  12 file(s) of sandbox-cni 0.1.0 for {arch}")),
        "{out}"
    );
    assert!(out.contains("bridge+host-local ADD/DEL: ok"), "{out}");
    assert!(out.contains("9 file(s) changed"), "{out}");
    for f in s.installed() {
        assert!(f.is_file(), "{} missing", f.display());
    }
    assert_eq!(
        fs::read(s.bin.join("host-local")).unwrap(),
        fs::read(s.from.join("host-local")).unwrap()
    );
    let (ok, out) = run_script(&s, &script, &["--uninstall"], None);
    assert!(ok, "{out}");
    assert!(s.installed().iter().all(|f| !f.exists()));

    // A directory of release artefacts: this machine's tarball is taken from it.
    let dist = tarball.parent().unwrap().to_str().unwrap();
    let (ok, out) = run_script(&s, &script, &["--from", dist, "--no-self-test"], None);
    assert!(ok && out.contains("9 file(s) changed"), "{out}");
    let (ok, out) = run_script(&s, &script, &["--uninstall"], None);
    assert!(ok, "{out}");

    // The release's own install.sh, with no cargo reachable: it installs the release it sits in.
    let (ok, out) = run_script(&s, &rel.join("install.sh"), &[], Some("/usr/bin:/bin"));
    assert!(ok, "{out}");
    assert!(
        out.contains("verified") && out.contains("9 file(s) changed"),
        "{out}"
    );
    assert!(!out.contains("building"), "{out}");
    let (ok, out) = run_script(
        &s,
        &rel.join("install.sh"),
        &["--uninstall"],
        Some("/usr/bin:/bin"),
    );
    assert!(ok, "{out}");
    assert!(s.installed().iter().all(|f| !f.exists()));
}

#[test]
fn damaged_release_or_tarball_is_refused_before_anything_changes() {
    let s = setup();
    let (arch, _) = arches();
    let rel = release(&s, arch);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");

    fs::write(rel.join("bin/bridge"), "#!/bin/sh\necho tampered\n").unwrap();
    let (ok, out) = run_script(&s, &script, &["--from", rel.to_str().unwrap()], None);
    assert!(!ok, "{out}");
    assert!(out.contains("bin/bridge does not match its sha256"), "{out}");
    assert!(!s.bin.exists() && !s.conf.exists() && !s.cli.exists(), "{out}");

    // A sound release, but its tarball does not match the SHA256SUMS next to it.
    write_manifest(&rel);
    let tarball = tar_gz(&rel);
    let name = tarball.file_name().unwrap().to_string_lossy().into_owned();
    fs::write(
        tarball.parent().unwrap().join("SHA256SUMS"),
        format!("{}  {name}\n", "0".repeat(64)),
    )
    .unwrap();
    let (ok, out) = run_script(&s, &script, &["--from", tarball.to_str().unwrap()], None);
    assert!(!ok, "{out}");
    assert!(out.contains("does not match its sha256 in"), "{out}");
    assert!(!s.bin.exists(), "{out}");

    // Not a tarball at all.
    let junk = tarball.with_file_name("junk.tar.gz");
    fs::write(&junk, "not a tarball").unwrap();
    let (ok, out) = run_script(&s, &script, &["--from", junk.to_str().unwrap()], None);
    assert!(!ok && out.contains("not a gzip-compressed tar file"), "{out}");
}

#[test]
fn release_for_another_architecture_is_refused_clearly() {
    let s = setup();
    let (arch, other) = arches();
    let rel = release(&s, other);
    let tarball = tar_gz(&rel);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let (ok, out) = run_script(&s, &script, &["--from", tarball.to_str().unwrap()], None);
    assert!(!ok, "{out}");
    assert!(
        out.contains(&format!("this release is for {other}"))
            && out.contains(&format!("this machine is {arch}"))
            && out.contains(&format!("sandbox-cni-0.1.0-{arch}-linux-musl.tar.gz")),
        "{out}"
    );
    assert!(!s.bin.exists() && !s.conf.exists() && !s.cli.exists());
}

#[test]
fn a_cnitool_link_is_made_only_when_no_cnitool_is_on_path() {
    // PATH without any directory holding a cnitool, so the "none on PATH" half always runs.
    let path = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| !Path::new(d).join("cnitool").exists())
        .collect::<Vec<_>>()
        .join(":");
    let run = |s: &Setup, args: &[&str], extra_path: Option<&Path>| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
        let path = match extra_path {
            Some(d) => format!("{}:{path}", d.display()),
            None => path.clone(),
        };
        let mut cmd = Command::new(script);
        cmd.arg("--bin-dir").arg(&s.bin);
        if !args.contains(&"--uninstall") {
            cmd.arg("--from")
                .arg(&s.from)
                .arg("--conf-dir")
                .arg(&s.conf)
                .arg("--cli-dir")
                .arg(&s.cli);
        }
        let out = cmd.args(args).env("PATH", path).output().expect("run install.sh");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Another cnitool on PATH: no link.
    let s = setup();
    let other = s.from.parent().unwrap().join("other");
    fs::create_dir(&other).unwrap();
    fs::write(other.join("cnitool"), "#!/bin/sh\n").unwrap();
    fs::set_permissions(other.join("cnitool"), fs::Permissions::from_mode(0o755)).unwrap();
    run(&s, &[], Some(&other));
    assert!(fs::symlink_metadata(s.cli.join("cnitool")).is_err());

    // None on PATH: the link is made, recorded, kept on a re-run and removed by --uninstall.
    let s = setup();
    let out = run(&s, &[], None);
    assert!(out.contains("cnitool -> k3s-sandbox"), "{out}");
    let link = s.cli.join("cnitool");
    assert_eq!(fs::read_link(&link).unwrap(), Path::new("k3s-sandbox"));
    let manifest = fs::read_to_string(s.bin.join(".sandbox-cni.manifest")).unwrap();
    assert!(
        manifest.contains(&format!("link {} k3s-sandbox", link.display())),
        "{manifest}"
    );
    run(&s, &[], None);
    assert!(fs::read_link(&link).is_ok());
    run(&s, &["--uninstall"], None);
    assert!(fs::symlink_metadata(&link).is_err());
}

/// Attacks on `--from` (issue 21): a release member that is a symlink, a binary of another
/// architecture, a self-test that fails, a manifest entry that links to a file that never ends.
#[test]
fn from_accepts_only_regular_files_of_this_machine_and_tests_before_installing() {
    let (arch, other) = arches();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let from = |rel: &Path| rel.to_str().unwrap().to_string();

    // A member that is a symlink (to another program).
    let s = setup();
    let rel = release(&s, arch);
    fs::remove_file(rel.join("bin/tuning")).unwrap();
    std::os::unix::fs::symlink("/usr/bin/id", rel.join("bin/tuning")).unwrap();
    let st = Command::new("sh")
        .arg("-c")
        .arg("find . ! -name MANIFEST.sha256 \\( -type f -o -type l \\) | sed 's|^\\./||' | LC_ALL=C sort | xargs sha256sum > MANIFEST.sha256")
        .current_dir(&rel)
        .status()
        .unwrap();
    assert!(st.success());
    let (ok, out) = run_script(&s, &script, &["--from", &from(&rel)], None);
    assert!(!ok && out.contains("bin/tuning is not a regular file"), "{out}");
    assert!(!s.bin.exists(), "{out}");

    // One binary built for another architecture (its e_machine patched), with a matching manifest.
    let s = setup();
    let rel = release(&s, arch);
    let mut elf = fs::read(rel.join("bin/host-local")).unwrap();
    elf[18..20].copy_from_slice(if other == "aarch64" {
        &[0xb7, 0]
    } else {
        &[0x3e, 0]
    });
    fs::write(rel.join("bin/host-local"), elf).unwrap();
    write_manifest(&rel);
    let (ok, out) = run_script(&s, &script, &["--from", &from(&rel)], None);
    assert!(
        !ok && out.contains(&format!(
            "bin/host-local is not a 64-bit {arch} ELF binary (found: {other})"
        )),
        "{out}"
    );
    assert!(!s.bin.exists(), "{out}");
    // A plain directory of binaries is checked the same way.
    let s = setup();
    fs::write(s.from.join("portmap"), "#!/bin/sh\nexit 0\n").unwrap();
    let (ok, out) = s.install(&[]);
    assert!(!ok && out.contains("portmap is not a 64-bit"), "{out}");
    assert!(!s.bin.exists(), "{out}");

    // A manifest entry that links to a file that never ends: refused at once, never read.
    let s = setup();
    let rel = release(&s, arch);
    std::os::unix::fs::symlink("/dev/zero", rel.join("zero")).unwrap();
    let mut m = fs::read_to_string(rel.join("MANIFEST.sha256")).unwrap();
    m.push_str(&format!("{}  zero\n", "0".repeat(64)));
    fs::write(rel.join("MANIFEST.sha256"), m).unwrap();
    let start = std::time::Instant::now();
    let (ok, out) = run_script(&s, &script, &["--from", &from(&rel)], None);
    assert!(start.elapsed() < std::time::Duration::from_secs(30));
    assert!(!ok && out.contains("zero is not a regular file"), "{out}");

    // A self-test that fails leaves the previous install untouched.
    let s = setup();
    assert!(s.install(&[]).0);
    let before: Vec<Vec<u8>> = s.installed().iter().map(|f| fs::read(f).unwrap()).collect();
    // A valid binary of this machine that does not do a bridge's job.
    fs::copy(s.from.join("loopback"), s.from.join("bridge")).unwrap();
    let (ok, out) = s.install(&["--force"]);
    assert!(
        !ok && out.contains("nothing was installed, the previous install is untouched"),
        "{out}"
    );
    let after: Vec<Vec<u8>> = s.installed().iter().map(|f| fs::read(f).unwrap()).collect();
    assert!(before == after, "files changed by a failed install");
    assert_eq!(
        fs::read_dir(&s.bin).unwrap().count(),
        PLUGINS.len() + 1,
        "scratch left behind"
    );
}
