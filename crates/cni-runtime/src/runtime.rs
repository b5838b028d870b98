//! Running a network list the way libcni does (libcni `AddNetworkList`, `CheckNetworkList`,
//! `DelNetworkList`, `GCNetworkList`, `GetStatusNetworkList`, `GetVersionInfo`):
//!
//! - every plugin gets its object plus the list's `name` and `cniVersion`, a `runtimeConfig` holding the
//!   capability arguments it declares in `capabilities` (left untouched when there are none), and
//!   `prevResult`;
//! - ADD runs in list order, each plugin getting the previous one's result; the first failure stops it;
//!   the final result is cached only when every plugin succeeded;
//! - CHECK needs 0.4.0 (earlier lists are an error without running anything), is a success without
//!   running anything under `disableCheck`, and gives every plugin the cached result;
//! - DEL runs in reverse order, with the cached result as prevResult from 0.4.0 on (an unreadable cache
//!   file is removed and DEL goes on without it), and removes the cache file after success;
//! - GC DELs every cached attachment of the network that is not listed as valid, then, from 1.1.0,
//!   sends GC with the valid attachments to every plugin; all errors are collected;
//! - STATUS runs every plugin in order from 1.1.0 (earlier lists succeed without running anything).
//!
//! The environment of every plugin is built explicitly: `base_env` plus the six CNI_* variables.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use cni_core::config::valid_identifier;
use cni_core::env::validate_ifname;
use cni_core::exec::{Exec, decode_error};
use cni_core::{CniError, NetResult, Version};
use serde_json::{Map, Value};

use crate::cache::{Cache, Entry};
use crate::conf::NetworkList;
use crate::version;

/// One attachment's arguments (libcni `RuntimeConf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS pairs, in order.
    pub args: Vec<(String, String)>,
    /// Capability arguments (portMappings, bandwidth, ...), matched against each plugin's capabilities.
    pub capability_args: Map<String, Value>,
}

/// A failure, with the plugin's own CNI error when a plugin reported one.
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub message: String,
    pub plugin_error: Option<CniError>,
}

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            plugin_error: None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Everything needed to run plugins.
pub struct Runtime<'a> {
    pub exec: &'a dyn Exec,
    /// CNI_PATH.
    pub path: Vec<PathBuf>,
    pub cache: Cache,
    /// Variables every plugin gets besides the six CNI_* ones (libcni passes the runtime's environment).
    pub base_env: Vec<(OsString, OsString)>,
}

/// The config one plugin receives (libcni `buildOneConfig` and `injectRuntimeConfig`).
pub fn plugin_config(
    list: &NetworkList,
    plugin: &Map<String, Value>,
    prev: Option<&Value>,
    rt: &RuntimeConf,
) -> Map<String, Value> {
    let mut conf = plugin.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
    if let Some(p) = prev {
        conf.insert("prevResult".into(), p.clone());
    }
    let mut rc = Map::new();
    if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
        for (cap, on) in caps {
            if on.as_bool() == Some(true)
                && let Some(v) = rt.capability_args.get(cap)
            {
                rc.insert(cap.clone(), v.clone());
            }
        }
    }
    if !rc.is_empty() {
        conf.insert("runtimeConfig".into(), Value::Object(rc));
    }
    conf
}

fn plugin_type(p: &Map<String, Value>) -> &str {
    p.get("type").and_then(Value::as_str).unwrap_or_default()
}

/// A result read at `default` when it has no `cniVersion`, re-laid out in its own version (libcni
/// reads results into its typed model and writes them back out the same way).
fn normalise_result(v: &Value, default: &str, what: &str) -> Result<Value, Error> {
    let own = match v.get("cniVersion") {
        Some(Value::String(s)) => s.as_str(),
        _ => default,
    };
    let ver = Version::parse(own)
        .ok_or_else(|| Error::new(format!("{what} has unsupported cniVersion {own:?}")))?;
    let r = NetResult::from_json(v, ver, what).map_err(|e| Error::new(format!("{what}: {}", e.msg)))?;
    let bytes = r.to_json(ver).map_err(|e| Error::new(e.msg))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::new(e.to_string()))
}

/// A result converted to `version` (libcni `GetAsVersion`), e.g. the cached result for DEL and CHECK.
pub fn convert_result(v: &Value, version: &str) -> Result<Value, String> {
    let ver = Version::parse(version).ok_or_else(|| format!("unsupported cniVersion {version:?}"))?;
    let r = NetResult::from_json(v, ver, "the cached result").map_err(|e| e.msg)?;
    let bytes = r.to_json(ver).map_err(|e| e.msg)?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

impl Runtime<'_> {
    fn env(&self, command: &str, rt: &RuntimeConf) -> Vec<(OsString, OsString)> {
        let args = rt
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        cni_core::exec::plugin_env(
            self.base_env.clone(),
            command,
            &rt.container_id,
            &rt.netns,
            &rt.ifname,
            &args,
            &self.path,
        )
    }

    /// Runs one plugin; returns its stdout on success.
    fn run(
        &self,
        verb: &str,
        ptype: &str,
        conf: &Map<String, Value>,
        rt: &RuntimeConf,
    ) -> Result<Vec<u8>, Error> {
        let what = format!("plugin type=\"{ptype}\" failed ({})", verb.to_lowercase());
        let exe = self.exec.find(ptype, &self.path).map_err(|e| Error {
            message: format!("{what}: {}", e.msg),
            plugin_error: None,
        })?;
        let stdin = serde_json::to_vec(conf).map_err(|e| Error::new(format!("{what}: {e}")))?;
        let out = self
            .exec
            .exec(&exe, &self.env(verb, rt), &stdin)
            .map_err(|e| Error::new(format!("{what}: cannot run {}: {e}", exe.display())))?;
        if !out.success {
            let e = decode_error(ptype, verb, &out);
            let details = e.details.as_deref().map(|d| format!("; {d}")).unwrap_or_default();
            return Err(Error {
                message: format!("{what}: {}{details}", e.msg),
                plugin_error: Some(e),
            });
        }
        Ok(out.stdout)
    }

    /// ADD: returns the final result (in the last plugin's version), and caches it.
    pub fn add(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<Option<Value>, Error> {
        self.add_raw(list, rt).map(|(result, _)| result)
    }

    /// ADD, returning the final result and also the last plugin's reply exactly as it printed it (for
    /// checks that must see the raw JSON, as go-cni's result rules).
    pub fn add_raw(
        &self,
        list: &NetworkList,
        rt: &RuntimeConf,
    ) -> Result<(Option<Value>, Option<Value>), Error> {
        if !valid_identifier(&rt.container_id) {
            return Err(Error::new(format!(
                "invalid characters in containerID {:?}: it must start with a letter or digit and contain only letters, digits, '_', '.' and '-'",
                rt.container_id
            )));
        }
        if !valid_identifier(&list.name) {
            return Err(Error::new(format!("invalid network name {:?}", list.name)));
        }
        validate_ifname(&rt.ifname).map_err(Error::new)?;
        let mut prev: Option<Value> = None;
        let mut raw: Option<Value> = None;
        for plugin in &list.plugins {
            let ptype = plugin_type(plugin);
            let conf = plugin_config(list, plugin, prev.as_ref(), rt);
            let stdout = self.run("ADD", ptype, &conf, rt)?;
            let fail = |m: String| Error::new(format!("plugin type=\"{ptype}\" failed (add): {m}"));
            let v: Value = serde_json::from_slice(&stdout).map_err(|e| {
                fail(format!(
                    "its result is not JSON ({e}): {}",
                    String::from_utf8_lossy(&stdout).trim()
                ))
            })?;
            prev = match &v {
                Value::Null => None,
                v => Some(normalise_result(v, &list.cni_version, "the result").map_err(|e| fail(e.message))?),
            };
            raw = Some(v).filter(|v| !v.is_null());
        }
        if let Some(r) = &prev {
            let entry = Entry {
                container_id: rt.container_id.clone(),
                config: list.bytes.clone(),
                ifname: rt.ifname.clone(),
                network: list.name.clone(),
                netns: rt.netns.clone(),
                cni_args: rt.args.clone(),
                capability_args: rt.capability_args.clone(),
                result: Some(r.clone()),
            };
            self.cache.write(&entry).map_err(|e| {
                Error::new(format!(
                    "failed to set network {:?} cached result: {e}",
                    list.name
                ))
            })?;
        }
        Ok((prev, raw))
    }

    fn cached_result(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<Option<Value>, String> {
        let Some(entry) = self.cache.read(&list.name, &rt.container_id, &rt.ifname)? else {
            return Ok(None);
        };
        entry
            .result
            .as_ref()
            .map(|r| convert_result(r, &list.cni_version))
            .transpose()
    }

    /// CHECK.
    pub fn check(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), Error> {
        if !version::at_least(&list.cni_version, "0.4.0").map_err(Error::new)? {
            return Err(Error::new(format!(
                "configuration version {:?} does not support the CHECK command",
                list.cni_version
            )));
        }
        if list.disable_check {
            return Ok(());
        }
        let cached = self.cached_result(list, rt).map_err(|e| {
            Error::new(format!(
                "failed to get network {:?} cached result: {e}",
                list.name
            ))
        })?;
        for plugin in &list.plugins {
            let conf = plugin_config(list, plugin, cached.as_ref(), rt);
            self.run("CHECK", plugin_type(plugin), &conf, rt)?;
        }
        Ok(())
    }

    /// DEL.
    pub fn del(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), Error> {
        let mut cached = None;
        if version::at_least(&list.cni_version, "0.4.0").map_err(Error::new)? {
            cached = match self.cached_result(list, rt) {
                Ok(c) => c,
                Err(_) => {
                    let _ = self.cache.remove(&list.name, &rt.container_id, &rt.ifname);
                    None
                }
            };
        }
        for plugin in list.plugins.iter().rev() {
            let conf = plugin_config(list, plugin, cached.as_ref(), rt);
            self.run("DEL", plugin_type(plugin), &conf, rt)?;
        }
        let _ = self.cache.remove(&list.name, &rt.container_id, &rt.ifname);
        Ok(())
    }

    /// GC: `valid` lists the attachments (container ID, ifname) to keep. Returns every error.
    pub fn gc(&self, list: &NetworkList, valid: &[(String, String)]) -> Result<(), Vec<Error>> {
        if list.disable_gc {
            return Ok(());
        }
        let mut errs = Vec::new();
        for e in self.cache.entries(&list.name) {
            if valid
                .iter()
                .any(|(id, ifname)| *id == e.container_id && *ifname == e.ifname)
            {
                continue;
            }
            let rt = RuntimeConf {
                container_id: e.container_id.clone(),
                netns: e.netns.clone(),
                ifname: e.ifname.clone(),
                args: e.cni_args.clone(),
                capability_args: e.capability_args.clone(),
            };
            if let Err(err) = self.del(list, &rt) {
                errs.push(Error {
                    message: format!(
                        "failed to delete stale attachment {} {}: {}",
                        rt.container_id, rt.ifname, err.message
                    ),
                    plugin_error: err.plugin_error,
                });
            }
        }
        if version::at_least(&list.cni_version, "1.1.0").unwrap_or(false) {
            let attachments: Vec<Value> = valid
                .iter()
                .map(|(id, ifname)| serde_json::json!({"containerID": id, "ifname": ifname}))
                .collect();
            for plugin in &list.plugins {
                let mut conf = plugin.clone();
                conf.insert("name".into(), Value::String(list.name.clone()));
                conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
                conf.insert(
                    "cni.dev/valid-attachments".into(),
                    Value::Array(attachments.clone()),
                );
                // The spec's first text used this name; libcni sends both.
                conf.insert("cni.dev/attachments".into(), Value::Array(attachments.clone()));
                if let Err(e) = self.run("GC", plugin_type(plugin), &conf, &RuntimeConf::default()) {
                    errs.push(e);
                }
            }
        }
        if errs.is_empty() { Ok(()) } else { Err(errs) }
    }

    /// STATUS. `Ok(false)` when the list is older than 1.1.0 and nothing ran.
    pub fn status(&self, list: &NetworkList) -> Result<bool, Error> {
        if !version::at_least(&list.cni_version, "1.1.0").map_err(Error::new)? {
            return Ok(false);
        }
        for plugin in &list.plugins {
            let mut conf = plugin.clone();
            conf.insert("name".into(), Value::String(list.name.clone()));
            conf.insert("cniVersion".into(), Value::String(list.cni_version.clone()));
            self.run("STATUS", plugin_type(plugin), &conf, &RuntimeConf::default())?;
        }
        Ok(true)
    }

    /// VERSION of one plugin type: its answer (`cniVersion`, `supportedVersions`).
    pub fn version(&self, plugin: &str) -> Result<Value, Error> {
        let mut conf = Map::new();
        conf.insert("cniVersion".into(), Value::String(version::CURRENT.into()));
        let stdout = self.run("VERSION", plugin, &conf, &RuntimeConf::default())?;
        let v: Value = serde_json::from_slice(&stdout).map_err(|e| {
            Error::new(format!(
                "plugin {plugin:?} answered VERSION with something that is not JSON: {e}"
            ))
        })?;
        match v.get("supportedVersions").and_then(Value::as_array) {
            Some(list) if list.iter().all(Value::is_string) => Ok(v),
            _ => Err(Error::new(format!(
                "plugin {plugin:?} answered VERSION without a supportedVersions list: {v}"
            ))),
        }
    }
}

/// `supportedVersions` of a VERSION answer.
pub fn supported_versions(answer: &Value) -> Vec<String> {
    answer
        .get("supportedVersions")
        .and_then(Value::as_array)
        .map(|l| l.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_core::exec::ExecOutput;
    use serde_json::json;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::path::Path;

    /// (plugin type, CNI_* environment, stdin config)
    type Call = (String, BTreeMap<String, String>, Value);

    /// Plugins in memory: ADD answers with prevResult plus one interface named after the plugin, or a
    /// fresh result for the first plugin; `fail` makes one type fail one verb.
    #[derive(Default)]
    struct Fake {
        calls: RefCell<Vec<Call>>,
        fail: Option<(&'static str, &'static str)>,
    }

    impl Exec for Fake {
        fn find(&self, name: &str, _: &[PathBuf]) -> cni_core::CniResult<PathBuf> {
            Ok(PathBuf::from(name))
        }
        fn exec(
            &self,
            exe: &Path,
            env: &[(OsString, OsString)],
            stdin: &[u8],
        ) -> std::io::Result<ExecOutput> {
            let t = exe.to_string_lossy().to_string();
            let env: BTreeMap<String, String> = env
                .iter()
                .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
                .collect();
            let conf: Value = serde_json::from_slice(stdin).unwrap();
            self.calls
                .borrow_mut()
                .push((t.clone(), env.clone(), conf.clone()));
            let verb = env["CNI_COMMAND"].clone();
            if self.fail.is_some_and(|(ft, fv)| ft == t && fv == verb) {
                return Ok(ExecOutput {
                    success: false,
                    status: "exit status: 1".into(),
                    stdout: br#"{"code":11,"msg":"no luck","details":"really"}"#.to_vec(),
                    stderr: vec![],
                });
            }
            let stdout = match verb.as_str() {
                "ADD" => {
                    let mut r = conf.get("prevResult").cloned().unwrap_or_else(
                        || json!({"cniVersion": conf["cniVersion"], "ips":[{"address":"10.0.0.2/24"}]}),
                    );
                    r["interfaces"] = json!([{"name": t}]);
                    serde_json::to_vec(&r).unwrap()
                }
                "VERSION" => br#"{"cniVersion":"1.1.0","supportedVersions":["0.3.1","1.0.0"]}"#.to_vec(),
                _ => vec![],
            };
            Ok(ExecOutput {
                success: true,
                status: "exit status: 0".into(),
                stdout,
                stderr: vec![],
            })
        }
    }

    fn list(version: &str) -> NetworkList {
        NetworkList::from_list_bytes(
            format!(
                r#"{{"cniVersion":"{version}","name":"net","plugins":[{{"type":"a"}},{{"type":"b","capabilities":{{"portMappings":true,"bandwidth":false}}}}]}}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn rt() -> RuntimeConf {
        let mut caps = Map::new();
        caps.insert(
            "portMappings".into(),
            json!([{"hostPort":80,"containerPort":8080,"protocol":"tcp"}]),
        );
        caps.insert("bandwidth".into(), json!({"ingressRate":1}));
        RuntimeConf {
            container_id: "c1".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            args: vec![
                ("K8S_POD_NAME".into(), "p".into()),
                ("IgnoreUnknown".into(), "1".into()),
            ],
            capability_args: caps,
        }
    }

    fn runtime<'a>(fake: &'a Fake, dir: &Path) -> Runtime<'a> {
        Runtime {
            exec: fake,
            path: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            cache: Cache::new(dir),
            base_env: vec![
                ("HOME".into(), "/root".into()),
                ("CNI_COMMAND".into(), "stale".into()),
            ],
        }
    }

    fn verbs(f: &Fake) -> Vec<String> {
        f.calls
            .borrow()
            .iter()
            .map(|(t, e, _)| format!("{} {t}", e["CNI_COMMAND"]))
            .collect()
    }

    #[test]
    fn add_chains_results_and_caches_the_last() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let r = runtime(&fake, tmp.path());
        let l = list("1.0.0");
        let result = r.add(&l, &rt()).unwrap().unwrap();
        assert_eq!(result["interfaces"][0]["name"], "b");
        assert_eq!(verbs(&fake), ["ADD a", "ADD b"]);
        let calls = fake.calls.borrow();
        let (_, env, a) = &calls[0];
        assert_eq!(env["CNI_ARGS"], "K8S_POD_NAME=p;IgnoreUnknown=1");
        assert_eq!(env["CNI_PATH"], "/opt/cni/bin:/usr/lib/cni");
        assert_eq!(env["CNI_COMMAND"], "ADD");
        assert_eq!(env["HOME"], "/root");
        assert_eq!(env.len(), 7);
        assert_eq!(a["name"], "net");
        assert_eq!(a["cniVersion"], "1.0.0");
        assert!(a.get("prevResult").is_none() && a.get("runtimeConfig").is_none());
        let b = &calls[1].2;
        assert_eq!(b["prevResult"]["interfaces"][0]["name"], "a");
        // Only the capabilities the plugin declares as true.
        assert_eq!(
            b["runtimeConfig"],
            json!({"portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"tcp"}]})
        );
        let e = r.cache.read("net", "c1", "eth0").unwrap().unwrap();
        assert_eq!(e.result.as_ref(), Some(&result));
        assert_eq!(e.config, l.bytes);
        assert_eq!(e.cni_args, rt().args);
        assert_eq!(e.netns, "/run/netns/x");
    }

    #[test]
    fn a_failing_add_stops_and_caches_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = Fake {
            fail: Some(("a", "ADD")),
            ..Default::default()
        };
        let r = runtime(&fake, tmp.path());
        let e = r.add(&list("1.0.0"), &rt()).unwrap_err();
        assert_eq!(e.message, "plugin type=\"a\" failed (add): no luck; really");
        assert_eq!(e.plugin_error.unwrap().code, 11);
        assert_eq!(verbs(&fake), ["ADD a"]);
        assert_eq!(r.cache.read("net", "c1", "eth0").unwrap(), None);
        let bad = RuntimeConf {
            ifname: "a/b".into(),
            ..rt()
        };
        assert!(r.add(&list("1.0.0"), &bad).is_err());
        let bad = RuntimeConf {
            container_id: "-x".into(),
            ..rt()
        };
        assert!(r.add(&list("1.0.0"), &bad).is_err());
        assert_eq!(verbs(&fake).len(), 1);
    }

    #[test]
    fn del_is_reversed_with_the_cached_result_from_0_4_0() {
        for (version, with_prev) in [("0.3.1", false), ("0.4.0", true), ("1.1.0", true)] {
            let tmp = tempfile::tempdir().unwrap();
            let fake = Fake::default();
            let r = runtime(&fake, tmp.path());
            let l = list(version);
            r.add(&l, &rt()).unwrap();
            r.del(&l, &rt()).unwrap();
            assert_eq!(verbs(&fake), ["ADD a", "ADD b", "DEL b", "DEL a"], "{version}");
            for (_, _, conf) in &fake.calls.borrow()[2..] {
                assert_eq!(conf.get("prevResult").is_some(), with_prev, "{version}");
                if with_prev {
                    assert_eq!(conf["prevResult"]["cniVersion"], version);
                }
            }
            assert_eq!(r.cache.read("net", "c1", "eth0").unwrap(), None);
        }
    }

    #[test]
    fn del_without_a_readable_cache_goes_on() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let r = runtime(&fake, tmp.path());
        std::fs::create_dir_all(r.cache.results_dir()).unwrap();
        std::fs::write(r.cache.path("net", "c1", "eth0"), "garbage").unwrap();
        r.del(&list("1.0.0"), &rt()).unwrap();
        assert!(
            fake.calls
                .borrow()
                .iter()
                .all(|(_, _, c)| c.get("prevResult").is_none())
        );
        assert!(!r.cache.path("net", "c1", "eth0").exists());
        // A failing DEL keeps the cache and stops.
        let fake = Fake {
            fail: Some(("b", "DEL")),
            ..Default::default()
        };
        let r = runtime(&fake, tmp.path());
        r.add(&list("1.0.0"), &rt()).unwrap();
        assert!(
            r.del(&list("1.0.0"), &rt())
                .unwrap_err()
                .message
                .contains("failed (del)")
        );
        assert_eq!(verbs(&fake), ["ADD a", "ADD b", "DEL b"]);
        assert!(r.cache.path("net", "c1", "eth0").exists());
    }

    #[test]
    fn check_floors_and_disable_check() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let r = runtime(&fake, tmp.path());
        let e = r.check(&list("0.3.1"), &rt()).unwrap_err();
        assert!(e.message.contains("does not support the CHECK command"), "{e}");
        // "1.0" is not older than 0.4.0 (the version ordering drift bug).
        let mut l = list("1.0.0");
        l.cni_version = "1.0".into();
        r.check(&l, &rt()).unwrap();
        let mut l = list("1.0.0");
        l.disable_check = true;
        r.check(&l, &rt()).unwrap();
        assert_eq!(verbs(&fake), ["CHECK a", "CHECK b"]);
    }

    #[test]
    fn missing_version_is_passed_as_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let r = runtime(&fake, tmp.path());
        let l = NetworkList::from_list_bytes(br#"{"name":"net","plugins":[{"type":"a"}]}"#).unwrap();
        let _ = r.add(&l, &rt());
        assert_eq!(fake.calls.borrow()[0].2["cniVersion"], "");
    }

    #[test]
    fn gc_deletes_unlisted_attachments_then_sends_gc() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = Fake::default();
        let r = runtime(&fake, tmp.path());
        let l = list("1.1.0");
        for id in ["keep", "drop"] {
            r.add(
                &l,
                &RuntimeConf {
                    container_id: id.into(),
                    ..rt()
                },
            )
            .unwrap();
        }
        fake.calls.borrow_mut().clear();
        r.gc(&l, &[("keep".into(), "eth0".into())]).unwrap();
        assert_eq!(verbs(&fake), ["DEL b", "DEL a", "GC a", "GC b"]);
        let calls = fake.calls.borrow();
        assert_eq!(calls[0].1["CNI_CONTAINERID"], "drop");
        assert_eq!(calls[0].2["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
        let gc = &calls[2].2;
        assert_eq!(
            gc["cni.dev/valid-attachments"],
            json!([{"containerID":"keep","ifname":"eth0"}])
        );
        assert_eq!(gc["cni.dev/attachments"], gc["cni.dev/valid-attachments"]);
        assert_eq!(calls[2].1["CNI_CONTAINERID"], "");
        assert!(r.cache.read("net", "keep", "eth0").unwrap().is_some());
        assert!(r.cache.read("net", "drop", "eth0").unwrap().is_none());
        drop(calls);
        // Before 1.1.0 only the DELs happen; disableGC does nothing.
        fake.calls.borrow_mut().clear();
        r.gc(&list("1.0.0"), &[]).unwrap();
        assert_eq!(verbs(&fake), ["DEL b", "DEL a"]);
        let mut l = list("1.1.0");
        l.disable_gc = true;
        fake.calls.borrow_mut().clear();
        r.gc(&l, &[]).unwrap();
        assert!(verbs(&fake).is_empty());
    }

    #[test]
    fn status_and_version() {
        let tmp = tempfile::tempdir().unwrap();
        let fake = Fake {
            fail: Some(("a", "STATUS")),
            ..Default::default()
        };
        let r = runtime(&fake, tmp.path());
        assert!(!r.status(&list("1.0.0")).unwrap());
        assert!(verbs(&fake).is_empty());
        let e = r.status(&list("1.1.0")).unwrap_err();
        assert!(e.message.contains("failed (status)"), "{e}");
        assert_eq!(verbs(&fake), ["STATUS a"]);
        let v = r.version("a").unwrap();
        assert_eq!(supported_versions(&v), ["0.3.1", "1.0.0"]);
        assert_eq!(fake.calls.borrow()[1].2["cniVersion"], "1.1.0");
    }
}
