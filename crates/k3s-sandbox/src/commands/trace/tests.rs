use serde_json::Value;

use super::render::{fmt_time, parents, row};

#[test]
fn trace_times_are_shown_in_utc() {
    assert_eq!(fmt_time(0.0), "1970-01-01 00:00:00.000");
    assert_eq!(fmt_time(951_868_799.999_4), "2000-02-29 23:59:59.999");
    assert_eq!(fmt_time(4_107_542_400.5), "2100-03-01 00:00:00.500");
    assert_eq!(fmt_time(-1.0), "?");
}

#[test]
fn rows_name_the_parent_and_show_errors() {
    let recs: Vec<Value> = [
        r#"{"time":1764630000.123456,"plugin":"host-local","verb":"ADD","network":"n","cniVersion":"1.0.0","containerID":"0123456789abcdef","ifname":"eth0","netns":"/x","reply":{"cniVersion":"1.0.0","code":100,"msg":"no IP addresses available"},"durationUs":1530,"pid":7,"ppid":6}"#,
        r#"{"time":1764630000.2,"plugin":"bridge","verb":"ADD","network":"n","cniVersion":"1.0.0","containerID":"0123456789abcdef","ifname":"eth0","netns":"/x","reply":{"cniVersion":"1.0.0","code":100,"msg":"no IP addresses available"},"durationUs":2600,"pid":6,"ppid":1}"#,
        r#"{"time":1764630001,"plugin":"host-local","verb":"ADD","reply":{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}},"pid":9,"ppid":1}"#,
    ]
    .iter()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let parents = parents(&recs);
    assert_eq!(parents, vec!["bridge", "", ""]);
    let r = row(&recs[0], &parents[0], false);
    assert_eq!(r.time, "2025-12-01 23:00:00.123");
    assert_eq!(r.plugin, "bridge>host-local");
    // 13 characters, as crictl and docker shorten IDs; whole with --no-trunc.
    assert_eq!(r.container, "0123456789abc");
    assert_eq!(row(&recs[0], &parents[0], true).container, "0123456789abcdef");
    assert!(r.error);
    assert_eq!(r.result, "ERROR 100");
    assert_eq!(r.message, "no IP addresses available");
    assert_eq!(r.duration, "1.5");
    assert_eq!(row(&recs[2], "", false).result, "10.0.0.2/24");
}
