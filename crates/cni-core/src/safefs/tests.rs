use super::*;
use std::os::unix::fs::{DirBuilderExt, symlink};

fn mkfifo(path: &Path) {
    let st = std::process::Command::new("mkfifo").arg(path).status().unwrap();
    assert!(st.success());
}

#[test]
fn reads_refuse_symlinks_fifos_and_oversized_files() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    fs::write(p.join("ok"), b"hello").unwrap();
    assert_eq!(read_file(&p.join("ok"), 5).unwrap().unwrap(), b"hello");
    assert_eq!(read_file(&p.join("missing"), 5).unwrap(), None);
    let big = read_file(&p.join("ok"), 4).unwrap_err();
    assert!(big.to_string().contains("larger than 4 bytes"), "{big}");
    symlink("/dev/zero", p.join("zero")).unwrap();
    let e = read_file(&p.join("zero"), 1 << 20).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    mkfifo(&p.join("fifo"));
    // Returns at once (O_NONBLOCK) and refuses the pipe.
    let e = read_file(&p.join("fifo"), 1 << 20).unwrap_err();
    assert!(e.to_string().contains("not a regular file"), "{e}");
    fs::create_dir(p.join("dir")).unwrap();
    assert!(read_file(&p.join("dir"), 10).is_err());
}

#[test]
fn replace_never_writes_through_a_planted_temp_name() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let victim = p.join("victim");
    fs::write(&victim, b"secret").unwrap();
    // Plant symlinks under the temporary names the next writes could use.
    for n in 0..3 {
        symlink(&victim, p.join(format!(".entry.{}.{n}.tmp", std::process::id()))).unwrap();
    }
    replace(p, "entry", b"new", 0o600).unwrap();
    assert_eq!(fs::read(&victim).unwrap(), b"secret");
    assert_eq!(fs::read(p.join("entry")).unwrap(), b"new");
    assert_eq!(
        fs::metadata(p.join("entry")).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(replace(p, "../x", b"", 0o600).is_err());
    assert!(replace(p, "..", b"", 0o600).is_err());
}

#[test]
fn private_dirs_are_checked_like_ssh() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("t");
    fs::DirBuilder::new().mode(0o700).create(&p).unwrap();
    let md = |p: &Path| fs::symlink_metadata(p).unwrap();
    let me = md(&p).uid();
    check_private_dir(&p, &md(&p), me).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o777)).unwrap();
    let e = check_private_dir(&p, &md(&p), me).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "bad modes for {0}: 0777 lets other users write into it; fix with `chmod 700 {0}`",
            p.display()
        )
    );
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    check_private_dir(&p, &md(&p), me).unwrap();
    if me == 0 {
        // Root's checks refuse a directory another user owns.
        std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
        let e = check_private_dir(&p, &md(&p), 0).unwrap_err().to_string();
        assert!(e.contains("bad ownership") && e.contains("65534"), "{e}");
        check_private_dir(&p, &md(&p), 65534).unwrap();
    } else {
        let e = check_private_dir(&p, &md(&p), me + 1).unwrap_err().to_string();
        assert!(e.contains("bad ownership"), "{e}");
    }
    symlink(&p, d.path().join("l")).unwrap();
    let e = check_private_dir(&d.path().join("l"), &md(&d.path().join("l")), me)
        .unwrap_err()
        .to_string();
    assert!(e.contains("symbolic link"), "{e}");
}

#[test]
fn names_and_text() {
    for bad in ["", ".", "..", "a/b", "a\0b"] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
    check_name("net-c1-eth0").unwrap();
    assert_eq!(printable("a\x1b[31mb\r\n"), "a?[31mb??");
    assert_eq!(printable("plain"), "plain");
}
