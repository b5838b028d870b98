use super::*;

#[test]
fn argv_changes_are_spelled_out() {
    let a: Vec<String> = ["k3s", "server", "--disable-agent", "--x=1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let b: Vec<String> = ["k3s", "server", "--x=2"].iter().map(|s| s.to_string()).collect();
    let d = describe_argv_change(&a, &b);
    assert!(
        d.contains("running now, not requested: --disable-agent --x=1"),
        "{d}"
    );
    assert!(d.contains("requested, not running:     --x=2"), "{d}");
    let c: Vec<String> = ["k3s", "--x=1", "server", "--disable-agent"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert!(describe_argv_change(&a, &c).contains("different order"));
}
