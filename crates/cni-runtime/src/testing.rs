//! A fake [`Exec`] for tests: plugins in memory, every call recorded. Enabled by the `testing`
//! feature (and in this crate's own tests); never part of a release binary.
//!
//! ```ignore
//! let fake = FakeExec::new(|call| match call.command() {
//!     Some(Command::Add) => serde_json::to_vec(&call.conf["prevResult"]).unwrap_or_default(),
//!     _ => Vec::new(),
//! })
//! .failing("portmap", Command::Del);
//! // ... run a Runtime with `exec: &fake` ...
//! assert_eq!(fake.calls()[0].plugin, "loopback");
//! ```

#![allow(clippy::unwrap_used)] // a fake fed something that is not JSON is a broken test

use std::cell::{Ref, RefCell};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use cni_core::Command;
use cni_core::exec::{Exec, ExecOutput};
use serde_json::Value;

/// One plugin call as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The plugin type (the fake finds every plugin under its own name).
    pub plugin: String,
    /// The whole environment the plugin was given.
    pub env: BTreeMap<String, String>,
    /// The configuration on stdin.
    pub conf: Value,
}

impl Call {
    /// `CNI_COMMAND`, when it names a verb.
    pub fn command(&self) -> Option<Command> {
        Command::parse(self.var("CNI_COMMAND"))
    }

    /// A variable of the environment, empty when unset.
    pub fn var(&self, name: &str) -> &str {
        self.env.get(name).map_or("", String::as_str)
    }
}

type Answer = Box<dyn Fn(&Call) -> Vec<u8>>;

/// Plugins in memory: each call is recorded, then answered by the closure given to
/// [`FakeExec::new`] (its stdout, exit status 0), unless it is the one [`FakeExec::failing`] names:
/// that one fails with CNI error 11, "no luck" (details "really").
pub struct FakeExec {
    /// Every call so far, in order (clear it between phases of a test).
    pub(crate) calls: RefCell<Vec<Call>>,
    fail: Option<(String, Command)>,
    answer: Answer,
}

impl FakeExec {
    pub fn new(answer: impl Fn(&Call) -> Vec<u8> + 'static) -> FakeExec {
        FakeExec {
            calls: RefCell::new(Vec::new()),
            fail: None,
            answer: Box::new(answer),
        }
    }

    /// Makes `plugin` fail `command`.
    pub fn failing(mut self, plugin: &str, command: Command) -> FakeExec {
        self.fail = Some((plugin.to_owned(), command));
        self
    }

    /// The calls so far.
    pub fn calls(&self) -> Ref<'_, Vec<Call>> {
        self.calls.borrow()
    }

    /// The calls so far as `"COMMAND plugin"`.
    #[cfg(test)]
    pub(crate) fn verbs(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| format!("{} {}", c.var("CNI_COMMAND"), c.plugin))
            .collect()
    }
}

impl Exec for FakeExec {
    fn find(&self, name: &str, _: &[PathBuf]) -> cni_core::CniResult<PathBuf> {
        Ok(PathBuf::from(name))
    }

    fn exec(&self, exe: &Path, env: &[(OsString, OsString)], stdin: &[u8]) -> std::io::Result<ExecOutput> {
        let call = Call {
            plugin: exe.to_string_lossy().into_owned(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string_lossy().into_owned(), v.to_string_lossy().into_owned()))
                .collect(),
            conf: serde_json::from_slice(stdin).unwrap(),
        };
        self.calls.borrow_mut().push(call.clone());
        if self
            .fail
            .as_ref()
            .is_some_and(|(p, c)| *p == call.plugin && Some(*c) == call.command())
        {
            return Ok(ExecOutput {
                success: false,
                status: "exit status: 1".into(),
                stdout: br#"{"cniVersion":"1.0.0","code":11,"msg":"no luck","details":"really"}"#.to_vec(),
                stderr: vec![],
            });
        }
        Ok(ExecOutput {
            success: true,
            status: "exit status: 0".into(),
            stdout: (self.answer)(&call),
            stderr: vec![],
        })
    }
}
