//! cnitool 1.3's `gc` and `status` through `libcni-driver` built with `-tags libcni12` (libcni 1.2 or
//! later: `GCNetworkList`, `GetStatusNetworkList`), over every shipped conflist as shipped (libcni
//! picks 1.1.0 from `cniVersions`) and at every older version it knows.
//!
//! What cnitool 1.3's `gc NETWORK` does: `GCNetworkList` without `GCArgs`, so libcni first DELs every
//! attachment of the network in its cache, then sends GC to every plugin with no
//! `cni.dev/valid-attachments` at all. host-local then releases nothing (docs/protocol.md): a
//! reservation libcni does not know about (its cache file lost) survives, and only a GC with an
//! explicit list releases it.
//!
//! Built against libcni 1.1.2 (the host's Go sources) the driver has no `gc`/`status`; the test then
//! checks that it says so. The test command runs this module with the drivers built inside the test
//! root (`SANDBOX_CNI_INTEROP_DRIVERS`).

use super::*;

/// Runs cnitool's add/check/status/gc/del sequence on one network; see the module comment.
fn cnitool_lifecycle(net: &Net) -> Result<(), String> {
    let v = net.version.clone();
    let bins = plugin_dir();
    let order = net.plugin_types();
    let reverse: Vec<String> = order.iter().rev().cloned().collect();
    let cnitool = |args: &[&str], env: &[(&str, &str)]| -> Result<Out, String> {
        let out = net.libcni_env(&bins, args, env)?;
        ensure(out.ok(), || {
            format!("cnitool {args:?} (env {env:?}) failed:\n{}", out.describe())
        })?;
        Ok(out)
    };
    let (ns_a, ns_b) = (net.netns("pod-a"), net.netns("pod-b"));
    let (id_a, id_b) = (cnitool_container_id(&ns_a), cnitool_container_id(&ns_b));
    let mut owned = BTreeMap::new();
    for (ns, id) in [(&ns_a, &id_a), (&ns_b, &id_b)] {
        let out = cnitool(&["add", &net.name, ns], &[])?;
        for ip in check_result(net, &v, &out.json()?, ns, "eth0")? {
            owned.insert(ip, (id.clone(), "eth0".to_owned()));
        }
    }
    check_reservations(net, &owned)?;
    if version_at_least(&v, "0.4.0") {
        cnitool(&["check", &net.name, &ns_a], &[])?;
    }

    // status: STATUS to every plugin in list order from 1.1.0 on; nothing below.
    let mark = net.trace()?.len();
    cnitool(&["status", &net.name], &[])?;
    let trace = since(net.trace(), mark)?;
    let statuses: Vec<&str> = records(&trace, "STATUS").iter().map(|r| plugin_of(r)).collect();
    let want: Vec<&str> = if version_at_least(&v, "1.1.0") {
        order.iter().map(String::as_str).collect()
    } else {
        Vec::new()
    };
    ensure(statuses == want && trace.len() == want.len(), || {
        format!("status at {v} ran {trace:?}, want STATUS of {want:?}")
    })?;

    // pod-b's cache file is lost (a crash): libcni no longer knows that attachment.
    let lost = net
        .cache_dir
        .join("results")
        .join(format!("{}-{id_b}-eth0", net.name));
    fs::remove_file(&lost).map_err(|e| format!("removing {}: {e}", lost.display()))?;

    // gc as cnitool 1.3 does it: DEL of pod-a (cached, not listed), then GC without a list.
    let mark = net.trace()?.len();
    cnitool(&["gc", &net.name], &[])?;
    let trace = since(net.trace(), mark)?;
    let prev = Some(version_at_least(&v, "0.4.0"));
    check_calls(net, &records(&trace, "DEL"), &reverse, &id_a, "eth0", prev)?;
    let gcs = records(&trace, "GC");
    check_gc_calls(net, &gcs, &order, None)?;
    let b_only: BTreeMap<IpAddr, (String, String)> = owned
        .iter()
        .filter(|(_, (id, _))| *id == id_b)
        .map(|(ip, o)| (*ip, o.clone()))
        .collect();
    ensure(!b_only.is_empty(), || "pod-b got no address".to_owned())?;
    check_reservations(net, &b_only)
        .map_err(|e| format!("after a GC without a list only pod-b's addresses may be left: {e}"))?;
    ensure(net.cached_results()?.is_empty(), || {
        "libcni cache not empty after gc".to_owned()
    })?;

    // gc with an explicit empty list: every reservation goes (from 1.1.0 on, where GC reaches the
    // plugins); below 1.1.0 libcni sends no GC and pod-b's addresses stay.
    let mark = net.trace()?.len();
    cnitool(&["gc", &net.name], &[("GC_VALID", "")])?;
    let trace = since(net.trace(), mark)?;
    check_gc_calls(net, &records(&trace, "GC"), &order, Some(&json!([])))?;
    if version_at_least(&v, "1.1.0") {
        check_reservations(net, &BTreeMap::new())?;
    } else {
        check_reservations(net, &b_only)?;
        cnitool(&["del", &net.name, &ns_b], &[])?;
        check_reservations(net, &BTreeMap::new())?;
    }

    // gc listing a live attachment keeps it (no DEL, no release); del then frees it.
    let out = cnitool(&["add", &net.name, &ns_a], &[])?;
    let addrs = check_result(net, &v, &out.json()?, &ns_a, "eth0")?;
    let a_owned: BTreeMap<IpAddr, (String, String)> = addrs
        .iter()
        .map(|ip| (*ip, (id_a.clone(), "eth0".to_owned())))
        .collect();
    let mark = net.trace()?.len();
    let valid = format!("{id_a}/eth0");
    cnitool(&["gc", &net.name], &[("GC_VALID", &valid)])?;
    let trace = since(net.trace(), mark)?;
    ensure(records(&trace, "DEL").is_empty(), || {
        format!("gc DELed a listed attachment: {trace:?}")
    })?;
    check_gc_calls(
        net,
        &records(&trace, "GC"),
        &order,
        Some(&json!([{"containerID": id_a, "ifname": "eth0"}])),
    )?;
    check_reservations(net, &a_owned)?;
    cnitool(&["del", &net.name, &ns_a], &[])?;
    check_reservations(net, &BTreeMap::new())?;
    cnitool(&["status", &net.name], &[])?;
    ensure(net.cached_results()?.is_empty(), || {
        "libcni cache not empty at the end".to_owned()
    })
}

/// GC records: one per list plugin in order from 1.1.0 on (none below), with empty per-attachment
/// parameters and `cni.dev/valid-attachments` (and the older key) equal to `valid`, or absent.
fn check_gc_calls(net: &Net, gcs: &[&Value], order: &[String], valid: Option<&Value>) -> Result<(), String> {
    if !version_at_least(&net.version, "1.1.0") {
        return ensure(gcs.is_empty(), || format!("GC sent at {}: {gcs:?}", net.version));
    }
    let got: Vec<&str> = gcs.iter().map(|r| plugin_of(r)).collect();
    ensure(
        got == order.iter().map(String::as_str).collect::<Vec<_>>(),
        || format!("GC ran {got:?}, want {order:?}"),
    )?;
    for r in gcs {
        let stdin = r
            .get("stdin")
            .ok_or_else(|| format!("GC without JSON stdin: {r}"))?;
        ensure(stdin.get("cniVersion") == Some(&json!(net.version)), || {
            format!("GC stdin version: {stdin}")
        })?;
        ensure(r.get("containerId") == Some(&json!("")), || {
            format!("GC container ID: {r}")
        })?;
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            ensure(stdin.get(key) == valid, || {
                format!("GC {key} = {:?}, want {valid:?}: {stdin}", stdin.get(key))
            })?;
        }
    }
    Ok(())
}

#[test]
fn cnitool_gc_and_status_every_conflist() {
    let c = client();
    if !c.gc_and_status {
        // The host's libcni (before 1.2) has no GC/STATUS API: the driver must say so, not pretend.
        let net = Net::prepare(&conflist("10-sandbox-cni.conflist"), None).expect("conf dir");
        for cmd in ["gc", "status"] {
            let out = net.libcni(&[cmd, &net.name]).expect("driver");
            assert!(
                !out.ok() && out.stderr.contains("needs libcni 1.2 or later"),
                "{} has no {cmd}: the driver must refuse it:\n{}",
                c.libcni,
                out.describe()
            );
        }
        eprintln!(
            "{} has no GC/STATUS API: cnitool 1.3's gc and status run in the test root \
             (tests/run.sh, ${DRIVERS_ENV})",
            c.libcni
        );
        return;
    }
    let (mut passed, mut failures) = (Vec::new(), Vec::new());
    let mut cases: Vec<(PathBuf, Option<String>)> = Vec::new();
    for file in conflists() {
        cases.push((file.clone(), None));
        for v in lifecycle_versions() {
            cases.push((file.clone(), Some(v)));
        }
    }
    for (file, v) in cases {
        let case = format!("{} {}", file_name(&file), v.as_deref().unwrap_or("as shipped"));
        let result = Net::prepare(&file, v.as_deref()).and_then(|net| {
            require_plugins(net.binaries().iter().map(String::as_str));
            cnitool_lifecycle(&net).map(|()| net.version.clone())
        });
        match result {
            Ok(at) => passed.push(format!("{case} (ran at {at})")),
            Err(e) => failures.push(format!("{case}: {e}")),
        }
    }
    report(
        &format!("{} cnitool add/check/status/gc/del", c.libcni),
        &passed,
        &failures,
    );
}
