use super::*;
use clap::CommandFactory;

/// Every help text of a command and its subcommands, by path.
fn helps(cmd: &mut clap::Command, path: &str, out: &mut Vec<(String, String)>) {
    out.push((path.to_string(), cmd.render_long_help().to_string()));
    out.push((format!("{path} -h"), cmd.render_help().to_string()));
    for sub in cmd.get_subcommands_mut() {
        let p = format!("{path} {}", sub.get_name());
        helps(sub, &p, out);
    }
}

#[test]
fn the_cni_parser_is_the_full_parsers_cni_subtree() {
    let mut full = Cli::command();
    full.build();
    let mut fast = CniCli::command();
    fast.build();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    helps(full.find_subcommand_mut("cni").expect("cni"), "cni", &mut a);
    helps(fast.find_subcommand_mut("cni").expect("cni"), "cni", &mut b);
    assert!(a.len() > 10, "{}", a.len());
    assert_eq!(a, b);
    assert_eq!(full.get_name(), fast.get_name());
    assert_eq!(full.get_version(), fast.get_version());
    assert_eq!(
        full.get_about().map(ToString::to_string),
        fast.get_about().map(ToString::to_string)
    );
    let globals = |c: &clap::Command| c.get_arguments().map(|a| format!("{a:?}")).collect::<Vec<_>>();
    assert_eq!(globals(&full), globals(&fast));
}

#[test]
fn cni_command_lines_parse_the_same_way() {
    for argv in [
        &["k3s-sandbox", "cni", "add", "net", "/run/netns/x"][..],
        &[
            "k3s-sandbox",
            "cni",
            "gc",
            "net",
            "--json",
            "--valid",
            "a/eth1",
            "--apply",
        ],
        &["k3s-sandbox", "cni", "version"],
        &["k3s-sandbox", "cni", "ls", "--cni-conf-dir", "/c"],
    ] {
        let a = Cli::try_parse_from(argv).expect("full");
        let b = parse(argv).expect("fast");
        assert_eq!(format!("{:?}", a.command), format!("{:?}", b.command));
    }
    for argv in [
        &["k3s-sandbox", "cni"][..],
        &["k3s-sandbox", "cni", "ad", "net", "ns"],
        &["k3s-sandbox", "cni", "add", "net"],
        &["k3s-sandbox", "cni", "--version"],
        &["k3s-sandbox", "cni", "--help"],
        &["k3s-sandbox", "cni", "gc", "--bogus"],
        &["k3s-sandbox", "cni", "ls", "--timeout", "5"],
    ] {
        let a = Cli::try_parse_from(argv).expect_err("full");
        let b = CniCli::try_parse_from(argv).expect_err("fast");
        assert_eq!(a.kind(), b.kind(), "{argv:?}");
        assert_eq!(a.render().to_string(), b.render().to_string(), "{argv:?}");
    }
}

fn refused(argv: &[&str]) -> clap::Error {
    match parse(argv) {
        Ok(c) => panic!("{argv:?} parsed: {:?}", c.command),
        Err(e) => e,
    }
}

#[test]
fn options_apply_only_where_they_work() {
    use clap::error::ErrorKind;
    // A directory option is not global: given where it cannot apply, it is refused (issue 20).
    for argv in [
        &["k3s-sandbox", "--cni-conf-dir", "/tmp/net.d", "cni", "ls"][..],
        &["k3s-sandbox", "cni", "--cni-conf-dir", "/tmp/net.d", "ls"],
        &["k3s-sandbox", "cni", "gc", "n", "--data-dir", "/d"],
        &["k3s-sandbox", "ipam", "ls", "n", "--data-dir", "/tmp/store"],
        &["k3s-sandbox", "trace", "--data-dir", "/d"],
        &["k3s-sandbox", "env", "--cni-conf-dir", "/c"],
        &["k3s-sandbox", "cni", "ls", "--cache-dir", "/c"],
        &["k3s-sandbox", "cni", "version", "--cni-conf-dir", "/c"],
    ] {
        assert_eq!(refused(argv).kind(), ErrorKind::UnknownArgument, "{argv:?}");
    }
    // `--valid` takes one value: `ipam gc --valid ID NET` does not read NET as an ID.
    let c = parse(["k3s-sandbox", "ipam", "gc", "--valid", "abc", "net"]).expect("parses");
    let Command::Ipam(ipam::IpamArgs {
        command: ipam::IpamCommand::Gc(g),
    }) = c.command
    else {
        panic!("not ipam gc")
    };
    assert_eq!((g.network.as_str(), g.valid.len()), ("net", 1));
    // Malformed --valid values are usage errors in both gc commands.
    for v in ["cnitool-46d052794837c3ef56a0/", "", "/eth0", "a/b/c"] {
        for cmd in [
            ["k3s-sandbox", "cni", "gc", "n", "--valid", v],
            ["k3s-sandbox", "ipam", "gc", "n", "--valid", v],
        ] {
            assert_eq!(refused(&cmd).kind(), ErrorKind::ValueValidation, "{cmd:?}");
        }
    }
    // A plugin time limit of 0 is refused, not turned into 1 s.
    assert_eq!(
        refused(&["k3s-sandbox", "cni", "add", "n", "/x", "--timeout", "0"]).kind(),
        ErrorKind::ValueValidation
    );
}

#[test]
fn misplaced_options_get_a_hint() {
    let argv = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    let hint = |s: &str| usage_hint(&argv(s), &refused(&s.split(' ').collect::<Vec<_>>()));
    assert!(
        hint("k3s-sandbox ipam ls n --data-dir /tmp/store")
            .unwrap()
            .contains("--ipam-dir")
    );
    assert!(
        hint("k3s-sandbox --data-dir /d up")
            .unwrap()
            .contains("k3s-sandbox up --data-dir")
    );
    assert!(
        hint("k3s-sandbox cni ls --cache-dir /c")
            .unwrap()
            .contains("`cni ls` has no use")
    );
    assert!(
        hint("k3s-sandbox cni --json gc n")
            .unwrap()
            .contains("`k3s-sandbox cni gc --json ...`")
    );
    assert_eq!(hint("k3s-sandbox up --bogus"), None);
}

#[test]
fn json_errors_are_objects() {
    let v = output::error_json("no network \"x\"", 1);
    assert_eq!(v["error"]["message"], "no network \"x\"");
    assert_eq!(v["error"]["exitCode"], 1);
}
