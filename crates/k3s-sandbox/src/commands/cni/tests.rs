use std::path::{Path, PathBuf};

use super::env::{absolute, container_id, parse_cap_args, parse_cni_args};

#[test]
fn container_id_is_cnitools() {
    // `printf /var/run/netns/test | sha512sum | cut -c1-20`
    assert_eq!(
        container_id(Path::new("/var/run/netns/test")),
        "cnitool-7b8a61d5d8e94d07cbe4"
    );
}

#[test]
fn paths_are_made_absolute_lexically() {
    assert_eq!(absolute(Path::new("/a/./b/../c")).unwrap(), PathBuf::from("/a/c"));
    assert!(absolute(Path::new("x")).unwrap().is_absolute());
}

#[test]
fn cni_args_follow_cnitool() {
    assert_eq!(
        parse_cni_args("A=1;B=2").unwrap(),
        vec![("A".into(), "1".into()), ("B".into(), "2".into())]
    );
    assert!(parse_cni_args("").unwrap().is_empty());
    for bad in ["A", "A=", "=1", "A=1=2", "A=1;"] {
        assert!(parse_cni_args(bad).is_err(), "{bad}");
    }
    assert!(parse_cap_args("[]").is_err());
    assert!(parse_cap_args("{").is_err());
    assert_eq!(parse_cap_args(r#"{"a":1}"#).unwrap()["a"], 1);
}

#[test]
fn cnitool_gc_lists_no_apply_since_it_always_applies() {
    let mut tool = super::cnitool_command();
    let gc = tool.find_subcommand_mut("gc").expect("cnitool has gc");
    let help = gc.render_help().to_string();
    assert!(
        !help.contains("--apply"),
        "cnitool gc --help lists --apply:\n{help}"
    );
    let mut ours = <super::CnitoolCli as clap::CommandFactory>::command();
    let gc = ours.find_subcommand_mut("gc").expect("cni has gc");
    assert!(
        gc.render_help().to_string().contains("--apply"),
        "k3s-sandbox cni gc lost --apply"
    );
}
