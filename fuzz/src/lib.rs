//! Shared pieces of the fuzz targets: the readable input format of the dispatcher target, a probe plugin
//! that touches every configuration accessor of cni-core, and the invariants every reply must keep.
//!
//! Invariants are checked with `assert!`: a failed assertion is a crash for libFuzzer, saved under
//! fuzz/artifacts/<target>/ and replayable with `cargo fuzz run <target> <file>`.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use cni_core::args::CniArgs;
use cni_core::error::code;
use cni_core::output::Outcome;
use cni_core::result::parse_cidr;
use cni_core::version::SUPPORTED;
use cni_core::{CniResult, EnvMap, IpConfig, NetConf, NetResult, Plugin, Request, Version};
use serde_json::Value;

/// Splits a dispatcher input into environment and stdin.
///
/// The format is readable so seeds can be written by hand: `KEY=VALUE` lines (raw bytes, so invalid
/// UTF-8 is possible), then one empty line, then stdin. A line without `=` sets KEY to the empty value.
pub fn split_env_input(data: &[u8]) -> (EnvMap, &[u8]) {
    let (head, stdin) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &data[data.len()..]),
    };
    let mut vars = EnvMap::new();
    for line in head.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let (k, v) = match line.iter().position(|b| *b == b'=') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, &line[line.len()..]),
        };
        vars.insert(OsString::from_vec(k.to_vec()), OsString::from_vec(v.to_vec()));
    }
    (vars, stdin)
}

/// A plugin that reads the request through every accessor cni-core offers, so the dispatcher target
/// covers the typed readers too. ADD returns the prevResult, or one address per `addresses` entry.
pub struct Probe;

impl Probe {
    fn read_everything(req: &Request) -> CniResult<()> {
        let f = req.conf.fields();
        f.bool("isGateway")?;
        f.string("bridge")?;
        f.int("mtu", 0, 65535)?;
        f.strings("tags")?;
        f.cidr("subnet")?;
        f.ip("gateway")?;
        f.deny_unknown(&[
            "cniVersion",
            "name",
            "type",
            "ipam",
            "dns",
            "prevResult",
            "runtimeConfig",
            "args",
            "isGateway",
            "bridge",
            "mtu",
            "tags",
            "subnet",
            "gateway",
            "addresses",
            "cni.dev/valid-attachments",
            "cni.dev/attachments",
        ])?;
        if let Some(ipam) = f.object("ipam")? {
            for set in ipam.array("ranges")?.into_iter().flatten() {
                let _ = set.as_array();
            }
            for r in ipam.objects("routes")? {
                r.cidr("dst")?;
                r.ip("gw")?;
            }
        }
        let rc = req.conf.runtime_config()?;
        for pm in rc.objects_ci("portMappings")? {
            pm.int_ci("hostPort", 1, 65535)?;
            pm.string_ci("protocol")?;
        }
        if let Some(bw) = rc.object_ci("bandwidth")? {
            bw.int_ci("ingressRate", 0, i64::MAX)?;
        }
        req.conf.dns()?;
        req.conf.ipam_type()?;
        req.conf.gc_attachments()?;
        CniArgs::parse(&req.env.args, &["IP", "MAC"])?;
        Ok(())
    }
}

impl Plugin for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }

    fn about(&self) -> &'static str {
        "fuzzing probe"
    }

    fn add(&self, req: &Request) -> CniResult<NetResult> {
        Self::read_everything(req)?;
        if let Some(prev) = req.conf.prev_result()? {
            return Ok(prev);
        }
        let mut res = NetResult::default();
        for s in req.conf.fields().strings("addresses")? {
            let address = parse_cidr(&s).map_err(|e| cni_core::CniError::invalid_config(e.to_string()))?;
            res.ips.push(IpConfig {
                address,
                gateway: None,
                interface: None,
            });
        }
        Ok(res)
    }

    fn del(&self, req: &Request) -> CniResult<()> {
        Self::read_everything(req)
    }

    fn check(&self, req: &Request) -> CniResult<()> {
        Self::read_everything(req)?;
        req.conf.prev_result().map(|_| ())
    }

    fn gc(&self, req: &Request) -> CniResult<()> {
        req.conf.gc_attachments().map(|_| ())
    }

    fn status(&self, req: &Request) -> CniResult<()> {
        Self::read_everything(req)
    }
}

/// Checks a CNI error object as printed on stdout: a code other than the panic hook's, a message, a
/// supported cniVersion. Returns the code.
pub fn check_error_object(v: &Value) -> u64 {
    let code = v["code"].as_u64();
    assert!(code.is_some(), "error reply without a numeric code: {v}");
    let code = code.unwrap_or_default();
    assert_ne!(
        code,
        u64::from(code::INTERNAL),
        "code 999 outside the panic hook: {v}"
    );
    assert!(code != 0, "error code 0: {v}");
    assert!(
        v["msg"].as_str().is_some_and(|m| !m.trim().is_empty()),
        "error reply without a message: {v}"
    );
    let version = v["cniVersion"].as_str().unwrap_or("missing");
    assert!(
        SUPPORTED.contains(&version),
        "error reply with cniVersion {version}: {v}"
    );
    code
}

/// The contract of every dispatcher outcome: exit status 0 or 1; stdout is nothing or exactly one JSON
/// object; an error object iff exit status 1. Returns the parsed stdout, if any.
pub fn check_outcome(out: &Outcome) -> Option<Value> {
    assert!(out.exit <= 1, "exit status {}", out.exit);
    if out.stdout.is_empty() {
        assert_eq!(out.exit, 0, "failure without an error object");
        return None;
    }
    let v: Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!(
            "stdout is not one JSON document ({e}): {:?}",
            String::from_utf8_lossy(&out.stdout)
        ),
    };
    assert!(v.is_object(), "stdout is JSON but not an object: {v}");
    let is_error = v.get("code").is_some();
    assert_eq!(is_error, out.exit == 1, "error object iff exit status 1: {v}");
    if is_error {
        check_error_object(&v);
    }
    Some(v)
}

/// Checks a successful ADD reply: labelled with the request's version and readable back as that
/// version's result.
pub fn check_add_reply(v: &Value, version: Version) {
    assert_eq!(
        v["cniVersion"].as_str(),
        Some(version.as_str()),
        "reply version: {v}"
    );
    if let Err(e) = NetResult::from_json(v, version, "reply") {
        panic!("our own {version} reply does not read back ({}): {v}", e.msg);
    }
}

/// The layout conversion invariants for one result:
/// - every version's output reads back, and converting that again gives the same bytes (a fixed point);
/// - 1.1.0 output reads back to exactly the same model;
/// - 1.0.0 and 0.3.x/0.4.0 output keep everything but the 1.1.0-only fields;
/// - 0.1.0/0.2.0 output fails only when there is no address at all, and then with code 1.
pub fn check_conversions(r: &NetResult) {
    for version in Version::ALL {
        let bytes = match r.to_json(version) {
            Ok(b) => b,
            Err(e) => {
                assert_eq!(
                    e.code,
                    code::INCOMPATIBLE_VERSION,
                    "conversion to {version}: {}",
                    e.msg
                );
                assert!(
                    r.ips.is_empty(),
                    "conversion to {version} failed with addresses present: {}",
                    e.msg
                );
                assert!(
                    version < Version::V0_3_0,
                    "conversion to {version} failed: {}",
                    e.msg
                );
                continue;
            }
        };
        let v: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => panic!("{version} output is not JSON ({e})"),
        };
        assert_eq!(v["cniVersion"].as_str(), Some(version.as_str()));
        let back = match NetResult::from_json(&v, Version::V0_1_0, "converted") {
            Ok(b) => b,
            Err(e) => panic!("{version} output does not read back ({}): {v}", e.msg),
        };
        let again = back.to_json(version).map_err(|e| e.msg);
        assert_eq!(
            again.as_deref().ok(),
            Some(bytes.as_slice()),
            "{version} conversion is not a fixed point: {v}"
        );
        match version {
            Version::V1_1_0 => assert_eq!(&back, r, "1.1.0 round trip changed the result: {v}"),
            Version::V1_0_0 | Version::V0_4_0 | Version::V0_3_1 | Version::V0_3_0 => {
                assert_eq!(
                    back,
                    without_1_1_fields(r),
                    "{version} round trip lost more than 1.1.0 fields: {v}"
                )
            }
            Version::V0_1_0 | Version::V0_2_0 => {
                let firsts: Vec<IpConfig> = [true, false]
                    .iter()
                    .filter_map(|v4| r.ips.iter().find(|ip| ip.address.is_ipv4() == *v4))
                    .map(|ip| IpConfig {
                        interface: None,
                        ..ip.clone()
                    })
                    .collect();
                assert_eq!(
                    back.ips, firsts,
                    "legacy output must hold the first address of each family: {v}"
                );
                assert!(back.interfaces.is_empty(), "legacy shape has no interfaces: {v}");
                assert_eq!(back.dns, r.dns, "legacy conversion lost dns: {v}");
            }
        }
    }
}

fn without_1_1_fields(r: &NetResult) -> NetResult {
    let mut r = r.clone();
    for i in &mut r.interfaces {
        i.mtu = None;
        i.socket_path = None;
        i.pci_id = None;
    }
    for route in &mut r.routes {
        route.mtu = None;
        route.advmss = None;
        route.priority = None;
        route.table = None;
        route.scope = None;
    }
    r
}

/// Errors from parsing untrusted configuration must carry one of these codes.
pub const PARSE_CODES: [u32; 4] = [
    code::INCOMPATIBLE_VERSION,
    code::UNSUPPORTED_FIELD,
    code::DECODE_FAILURE,
    code::INVALID_CONFIG,
];

/// Asserts an error from parsing input has a parse code and a message.
pub fn check_parse_error(e: &cni_core::CniError, allowed: &[u32]) {
    assert!(
        allowed.contains(&e.code),
        "unexpected code {} for a parse error: {}",
        e.code,
        e.msg
    );
    assert!(
        !e.msg.trim().is_empty(),
        "error without a message (code {})",
        e.code
    );
}

/// The reply of a request that names a network configuration: the config as parsed independently.
pub fn request_version(stdin: &[u8]) -> Option<Version> {
    NetConf::parse(stdin).ok().map(|c| c.version)
}
