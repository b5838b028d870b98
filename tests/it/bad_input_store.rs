//! Bad-input catalogue, part 2: attacks on the host-local store and on delegation, through the real
//! host-local and bridge binaries (bridge reaches the store through its host-local child).
//!
//! Symlinks, pipes and directories planted in the store, an unwritable or traversing dataDir, a missing
//! or broken IPAM binary and long CNI_PATH lists: each call must finish in bounded time (see
//! the harness's bounded run), answer with the right code and a message naming the culprit, never write
//! through a planted link, and never write outside the store.

use std::path::{Path, PathBuf};

use crate::harness::bin_dir;
use crate::harness::bounded::{NOBODY, is_root, set_mode, snapshot};
use crate::harness::{Cni, assert_none_failed, base_conf};
use serde_json::{Value, json};

const NET: &str = "bad-input";
/// The first address host-local hands out in the baseline's 10.77.0.0/24.
const FIRST: &str = "10.77.0.2";

/// A scratch area: `data` is the dataDir, `outside` a directory the store must never touch, with a
/// victim file in it.
struct Scratch {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    data: PathBuf,
    outside: PathBuf,
    victim: PathBuf,
}

const VICTIM_BODY: &[u8] = b"ctr-1\r\neth0";

impl Scratch {
    fn new() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let data = root.join("data");
        let outside = root.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        // The victim looks like a reservation of the very attachment under test, so a store that
        // followed a link to it would be tempted to delete or rewrite it.
        let victim = outside.join("victim");
        std::fs::write(&victim, VICTIM_BODY).unwrap();
        Scratch {
            _tmp: tmp,
            root,
            data,
            outside,
            victim,
        }
    }

    fn net(&self) -> PathBuf {
        self.data.join(NET)
    }

    fn conf(&self, plugin: &str) -> Value {
        base_conf(plugin, &self.data)
    }

    /// Creates the store with one ADD/DEL cycle of another container, so it has its lock, index and
    /// cursor files.
    fn initialised(self) -> Scratch {
        let conf = self.conf("host-local");
        Cni::bounded("host-local", "ADD")
            .var("CNI_CONTAINERID", "setup")
            .run(&conf)
            .assert_success();
        Cni::bounded("host-local", "DEL")
            .var("CNI_CONTAINERID", "setup")
            .run(&conf)
            .assert_empty_success();
        self
    }

    fn assert_outside_untouched(&self, what: &str) {
        assert_eq!(
            std::fs::read(&self.victim).unwrap(),
            VICTIM_BODY,
            "{what}: the victim file outside the store changed"
        );
        let names: Vec<_> = std::fs::read_dir(&self.outside)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            names.len(),
            1,
            "{what}: something was created outside the store: {names:?}"
        );
        let top: Vec<_> = std::fs::read_dir(&self.root)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            top.len() <= 2,
            "{what}: something was created beside the data directory: {top:?}"
        );
    }
}

fn plant_symlink(target: &Path, link: &Path) {
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link).unwrap();
}

fn plant_fifo(path: &Path) {
    let _ = std::fs::remove_file(path);
    let ok = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo (coreutils)");
    assert!(ok.success(), "mkfifo {}", path.display());
}

fn first_address(v: &Value) -> String {
    let a = v["ips"][0]["address"].as_str().unwrap_or_default();
    a.split('/').next().unwrap_or_default().to_owned()
}

fn msg_of(v: &Value) -> String {
    format!(
        "{} {}",
        v["msg"].as_str().unwrap_or(""),
        v["details"].as_str().unwrap_or("")
    )
}

#[test]
fn symlinked_network_directory_is_refused_for_every_verb() {
    for plugin in ["host-local", "bridge"] {
        let s = Scratch::new();
        std::fs::create_dir_all(&s.data).unwrap();
        plant_symlink(&s.outside, &s.net());
        for (command, version) in [
            ("ADD", "1.0.0"),
            ("CHECK", "1.0.0"),
            ("DEL", "1.0.0"),
            ("STATUS", "1.1.0"),
            ("GC", "1.1.0"),
        ] {
            let mut conf = s.conf(plugin);
            conf["cniVersion"] = json!(version);
            if command == "GC" {
                conf["cni.dev/valid-attachments"] = json!([]);
            }
            if command == "CHECK" && plugin == "bridge" {
                continue; // bridge CHECK needs a real prevResult; host-local covers the store side
            }
            let out = Cni::bounded(plugin, command).run(&conf);
            let want = if command == "STATUS" { 50 } else { 5 };
            let v = out.assert_error(want);
            assert!(msg_of(&v).contains("symbolic link"), "{plugin} {command}: {v}");
            s.assert_outside_untouched(&format!("{plugin} {command}"));
        }
    }
}

#[test]
fn symlinks_in_the_store_are_never_followed() {
    // (file to replace by a link to the victim, whether ADD may still succeed by skipping it)
    let cases: &[(&str, bool)] = &[
        (FIRST, true),
        ("last_reserved_ip.0", false),
        ("lock", false),
        (".sandbox-cni", false),
        (".sandbox-cni/state", false),
        (".sandbox-cni/owners", false),
    ];
    for (name, may_succeed) in cases {
        let s = Scratch::new().initialised();
        let link = s.net().join(name);
        let _ = std::fs::remove_dir_all(&link);
        let target = if name.ends_with("owners") || *name == ".sandbox-cni" {
            s.outside.clone()
        } else {
            s.victim.clone()
        };
        plant_symlink(&target, &link);
        let conf = s.conf("host-local");
        for command in ["ADD", "CHECK", "DEL"] {
            let out = Cni::bounded("host-local", command).run(&conf);
            let what = format!("{name} -> outside, {command}");
            if out.ok() {
                if command == "ADD" {
                    assert!(
                        *may_succeed,
                        "{what}: ADD went through a planted link: {}",
                        out.text()
                    );
                    assert_ne!(
                        first_address(&out.json()),
                        *name,
                        "{what}: handed out the address a link blocks"
                    );
                }
            } else {
                let v = out.json();
                let code = v["code"].as_u64().unwrap_or_default();
                // CHECK after a refused ADD finds no reservation (102); everything else is the link (5).
                assert!(code == 5 || (command == "CHECK" && code == 102), "{what}: {v}");
                if code == 5 {
                    assert!(
                        msg_of(&v).contains("symbolic link"),
                        "{what}: the message must name the link: {v}"
                    );
                }
            }
            s.assert_outside_untouched(&what);
            assert_eq!(
                std::fs::read_link(&link).unwrap(),
                target,
                "{what}: the planted link was replaced or removed"
            );
        }
    }
}

#[test]
fn del_never_removes_a_reservation_reached_through_a_link() {
    // A link named like an address, pointing at a file whose body is this very attachment.
    let s = Scratch::new().initialised();
    plant_symlink(&s.victim, &s.net().join("10.77.0.9"));
    for plugin in ["host-local", "bridge"] {
        let out = Cni::bounded(plugin, "DEL").run(&s.conf(plugin));
        out.assert_empty_success();
        s.assert_outside_untouched(plugin);
        assert!(
            s.net().join("10.77.0.9").symlink_metadata().is_ok(),
            "{plugin}: DEL removed the planted link"
        );
    }
}

#[test]
fn pipes_and_directories_in_the_store_never_block_a_call() {
    // A named pipe blocks a plain open() for reading until a writer appears: every call must still
    // finish (the runner kills it after its deadline and fails the test).
    for name in [
        FIRST,
        "last_reserved_ip.0",
        ".sandbox-cni/state",
        ".sandbox-cni/boot_id",
        "lock",
    ] {
        let s = Scratch::new().initialised();
        let p = s.net().join(name);
        plant_fifo(&p);
        let conf = s.conf("host-local");
        for command in ["ADD", "CHECK", "DEL"] {
            let out = Cni::bounded("host-local", command).run(&conf);
            let what = format!("pipe as {name}, {command}");
            if !out.ok() {
                let v = out.json();
                let code = v["code"].as_u64().unwrap_or_default();
                assert!(code == 5 || (command == "CHECK" && code == 102), "{what}: {v}");
            } else if command == "ADD" {
                assert_ne!(
                    first_address(&out.json()),
                    name,
                    "{what}: handed out the address a pipe blocks"
                );
            }
        }
        s.assert_outside_untouched(name);
    }
    // A directory with an address name blocks that address and nothing else.
    let s = Scratch::new().initialised();
    std::fs::create_dir(s.net().join(FIRST)).unwrap();
    let out = Cni::bounded("host-local", "ADD").run(&s.conf("host-local"));
    let v = out.assert_success();
    assert_ne!(
        first_address(&v),
        FIRST,
        "handed out an address blocked by a directory"
    );
}

#[test]
fn oversized_and_garbage_store_files_are_handled_in_bounded_time() {
    let s = Scratch::new().initialised();
    // 32 MiB where a reservation body should be, binary garbage in the cursor and the index state.
    std::fs::write(s.net().join("10.77.0.7"), vec![b'x'; 32 << 20]).unwrap();
    std::fs::write(s.net().join("last_reserved_ip.0"), [0xff, 0x00, 0xfe, b'\n']).unwrap();
    std::fs::write(s.net().join(".sandbox-cni/state"), vec![0u8; 1 << 20]).unwrap();
    let conf = s.conf("host-local");
    let v = Cni::bounded("host-local", "ADD").run(&conf).assert_success();
    assert_ne!(first_address(&v), "10.77.0.7");
    Cni::bounded("host-local", "CHECK")
        .run(&conf)
        .assert_empty_success();
    Cni::bounded("host-local", "DEL")
        .run(&conf)
        .assert_empty_success();
    // The oversized file was not ours: DEL left it alone.
    assert_eq!(
        std::fs::metadata(s.net().join("10.77.0.7")).unwrap().len(),
        32 << 20
    );
}

#[test]
fn path_traversal_in_data_dir_is_refused_and_writes_nothing() {
    for plugin in ["host-local", "bridge"] {
        let s = Scratch::new();
        let escape = format!("sbx-escape-{}", std::process::id());
        for data_dir in [
            format!("{}/store/../../{escape}", s.root.display()),
            format!("{}/../{escape}", s.root.display()),
            "../../../../../../tmp/sbx-relative-escape".to_owned(),
        ] {
            for (command, version) in [
                ("ADD", "1.0.0"),
                ("DEL", "1.0.0"),
                ("STATUS", "1.1.0"),
                ("GC", "1.1.0"),
            ] {
                let mut conf = s.conf(plugin);
                conf["cniVersion"] = json!(version);
                conf["ipam"]["dataDir"] = json!(data_dir);
                if command == "GC" {
                    conf["cni.dev/valid-attachments"] = json!([]);
                }
                let out = Cni::bounded(plugin, command).run(&conf);
                // A configuration error, for STATUS too: the store is not unavailable, the request is wrong.
                let v = out.assert_error(7);
                assert!(
                    msg_of(&v).contains("dataDir"),
                    "{plugin} {command} {data_dir}: {v}"
                );
                assert!(msg_of(&v).contains(".."), "{plugin} {command} {data_dir}: {v}");
            }
            assert!(!s.root.join(&escape).exists() && !s.root.parent().unwrap().join(&escape).exists());
            assert!(!Path::new("/tmp/sbx-relative-escape").exists());
            assert!(!s.data.exists(), "{plugin}: something was created for {data_dir}");
        }
    }
}

#[test]
fn unwritable_data_dir_is_an_io_error_naming_the_directory() {
    for plugin in ["host-local", "bridge"] {
        // A dataDir path that runs through a regular file: nobody can create it, root included.
        let s = Scratch::new();
        let blocker = s.root.join("not-a-dir");
        std::fs::write(&blocker, b"x").unwrap();
        let mut conf = s.conf(plugin);
        conf["ipam"]["dataDir"] = json!(blocker.join("data").display().to_string());
        let v = Cni::bounded(plugin, "ADD").run(&conf).assert_error(5);
        assert!(
            msg_of(&v).contains(&blocker.display().to_string()),
            "{plugin}: {v}"
        );
        conf["cniVersion"] = json!("1.1.0");
        let v = Cni::bounded(plugin, "STATUS").run(&conf).assert_error(50);
        assert!(msg_of(&v).contains("not-a-dir"), "{plugin}: {v}");
        // DEL of an attachment in a store that cannot exist has nothing to do.
        Cni::bounded(plugin, "DEL").run(&conf).assert_empty_success();
        assert_eq!(std::fs::read(&blocker).unwrap(), b"x");
    }
}

#[test]
fn read_only_data_dir_for_an_unprivileged_caller() {
    if !is_root() {
        // Without root the permission bits below already apply to this very process.
        eprintln!("not root: running the read-only case as the current user");
    }
    for plugin in ["host-local", "bridge"] {
        let s = Scratch::new();
        std::fs::create_dir_all(&s.data).unwrap();
        set_mode(&s.root, 0o755);
        set_mode(&s.data, 0o555);
        let before = snapshot(&s.root);
        let conf = s.conf(plugin);
        let call = |c: &str| {
            let call = Cni::bounded(plugin, c);
            if is_root() { call.unprivileged() } else { call }
        };
        let v = call("ADD").run(&conf).assert_error(5);
        assert!(
            msg_of(&v).contains(&s.data.display().to_string()),
            "{plugin}: the message must name the directory: {v}"
        );
        let mut conf11 = conf.clone();
        conf11["cniVersion"] = json!("1.1.0");
        call("STATUS").run(&conf11).assert_error(50);
        call("DEL").run(&conf).assert_empty_success();
        assert_eq!(snapshot(&s.root), before, "{plugin}: something was written");
        set_mode(&s.data, 0o755);
    }
    let _ = NOBODY;
}

#[test]
fn missing_or_unusable_ipam_binary() {
    let s = Scratch::new();
    let mut failures = Vec::new();
    let mut check = |what: &str, call: Cni, conf: &Value, code: u64, words: &[&str]| {
        let before = snapshot(&s.root);
        let out = call.run(conf);
        if out.ok() {
            failures.push(format!("{what}: expected {code}, got success {}", out.text()));
            return;
        }
        let v = out.json();
        if v["code"].as_u64() != Some(code) || !words.iter().all(|w| msg_of(&v).contains(w)) {
            failures.push(format!("{what}: expected {code} naming {words:?}, got {v}"));
        }
        if snapshot(&s.root) != before {
            failures.push(format!("{what}: something was written"));
        }
    };
    let base = s.conf("bridge");
    let mut conf = base.clone();
    conf["ipam"]["type"] = json!("no-such-ipam");
    check(
        "missing IPAM binary",
        Cni::bounded("bridge", "ADD"),
        &conf,
        7,
        &["no-such-ipam"],
    );
    conf["ipam"]["type"] = json!("../../../../bin/sh");
    check(
        "IPAM type with a path",
        Cni::bounded("bridge", "ADD"),
        &conf,
        7,
        &["bare file name"],
    );
    conf["ipam"]["type"] = json!("");
    check(
        "empty IPAM type",
        Cni::bounded("bridge", "ADD"),
        &conf,
        7,
        &["ipam.type"],
    );
    check(
        "CNI_PATH unset",
        Cni::bounded("bridge", "ADD").unset("CNI_PATH"),
        &base,
        4,
        &["CNI_PATH"],
    );
    let bogus: Vec<String> = (0..60)
        .map(|i| format!("{}/no-such-dir-{i}", s.root.display()))
        .collect();
    check(
        "CNI_PATH with 60 entries, none holding the IPAM",
        Cni::bounded("bridge", "ADD").var("CNI_PATH", &bogus.join(":")),
        &base,
        7,
        &["host-local", "no-such-dir-59"],
    );
    // An "IPAM" that answers garbage, one that dies without a reply, one that is not executable.
    let fake = s.root.join("fake-bin");
    std::fs::create_dir_all(&fake).unwrap();
    for (body, mode, code, words) in [
        (
            "#!/bin/sh\necho 'this is not JSON'\n",
            0o755,
            103u64,
            &["not JSON"][..],
        ),
        (
            "#!/bin/sh\nexit 3\n",
            0o755,
            103,
            &["without a CNI error reply"][..],
        ),
        ("not a program", 0o644, 103, &["cannot run"][..]),
    ] {
        let exe = fake.join("host-local");
        std::fs::write(&exe, body).unwrap();
        set_mode(&exe, mode);
        check(
            &format!("IPAM binary {body:?}"),
            Cni::bounded("bridge", "ADD").var("CNI_PATH", &fake.display().to_string()),
            &base,
            code,
            words,
        );
    }
    assert_none_failed(&failures);
}

#[test]
fn long_cni_path_still_finds_the_ipam() {
    let s = Scratch::new();
    // 60 missing directories, empty entries, a directory where a host-local *directory* sits, then
    // the real one.
    let shadow = s.root.join("shadow");
    std::fs::create_dir_all(shadow.join("host-local")).unwrap();
    let mut dirs: Vec<String> = (0..60)
        .map(|i| format!("{}/no-such-dir-{i}", s.root.display()))
        .collect();
    dirs.push(String::new());
    dirs.push(shadow.display().to_string());
    dirs.push(bin_dir().display().to_string());
    let path = dirs.join(":");
    let conf = s.conf("bridge");
    let v = Cni::bounded("bridge", "ADD")
        .var("CNI_PATH", &path)
        .run(&conf)
        .assert_success();
    assert_eq!(first_address(&v), FIRST);
    Cni::bounded("bridge", "DEL")
        .var("CNI_PATH", &path)
        .run(&conf)
        .assert_empty_success();
    // Plugins that delegate nothing accept a long CNI_PATH as well.
    for plugin in crate::harness::PLUGINS.into_iter().filter(|p| *p != "bridge") {
        let d = tempfile::tempdir().unwrap();
        Cni::bounded(plugin, "ADD")
            .var("CNI_PATH", &path)
            .run(&base_conf(plugin, d.path()))
            .assert_success();
    }
}

#[test]
fn resolv_conf_that_is_a_pipe_or_endless_is_refused_in_bounded_time() {
    let s = Scratch::new();
    let fifo = s.root.join("resolv.fifo");
    plant_fifo(&fifo);
    for path in [
        fifo.display().to_string(),
        "/dev/zero".to_owned(),
        s.root.join("missing").display().to_string(),
    ] {
        let mut conf = s.conf("host-local");
        conf["ipam"]["resolvConf"] = json!(path);
        let v = Cni::bounded("host-local", "ADD").run(&conf).assert_error(7);
        assert!(msg_of(&v).contains("resolvConf"), "{path}: {v}");
        assert!(
            !s.net().join(FIRST).exists(),
            "{path}: an address was reserved although ADD failed"
        );
    }
}

#[test]
fn a_damaged_index_never_makes_del_or_check_lie() {
    // The index under .sandbox-cni is a cache: removing it, or one entry of it, by hand (or a cleanup
    // script) must not make DEL report success while the reservation stays (found by fuzz target
    // store_ops, regression input removed-index-entry-makes-del-leak).
    for damage in ["whole owners directory", "one index entry"] {
        let s = Scratch::new().initialised();
        let conf = s.conf("host-local");
        let v = Cni::bounded("host-local", "ADD").run(&conf).assert_success();
        let ip = first_address(&v);
        let owners = s.net().join(".sandbox-cni/owners");
        if damage == "whole owners directory" {
            std::fs::remove_dir_all(&owners).unwrap();
        } else {
            let mut removed = 0;
            // Entries sit in `owners/` (flat layout) or in its buckets `owners/HH/`.
            let mut dirs = vec![owners.clone()];
            while let Some(d) = dirs.pop() {
                for e in std::fs::read_dir(&d).unwrap().flatten() {
                    if e.file_type().unwrap().is_dir() {
                        dirs.push(e.path());
                    } else if e.file_name().to_string_lossy().ends_with(&format!(".{ip}")) {
                        std::fs::remove_file(e.path()).unwrap();
                        removed += 1;
                    }
                }
            }
            assert_eq!(
                removed,
                1,
                "expected one index entry for {ip} under {}",
                owners.display()
            );
        }
        // CHECK must still find the reservation (it exists), and DEL must free it.
        let check = Cni::bounded("host-local", "CHECK").run(&conf);
        check.assert_empty_success();
        let del = Cni::bounded("host-local", "DEL").run(&conf);
        if del.ok() {
            assert!(
                !s.net().join(&ip).exists(),
                "{damage} removed: DEL reported success but {ip} is still reserved"
            );
        } else {
            del.assert_error(5);
        }
    }
}
