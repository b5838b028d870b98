//! The dispatcher (SPEC.md "CNI operations"; modelled on the behaviour of libcni's pkg/skel).
//!
//! [`dispatch`] maps (environment map, stdin) to an [`Outcome`] (stdout bytes, stderr text, exit status)
//! with no global state, so it is tested in-process: the map is the plugin's whole environment, and the
//! request carries it on to delegation. [`run`] is what a plugin's `main` calls; it alone reads the
//! process environment, once.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use crate::config::NetConf;
use crate::env::{self, Command, Env, EnvMap};
use crate::error::{CniError, CniResult};
use crate::output::{self, Outcome};
use crate::result::NetResult;
use crate::trace::{self, Note};
use crate::version::{SUPPORTED, Version};

/// Stdin larger than this is refused (code 6): real configurations are kilobytes.
pub const MAX_STDIN: u64 = 16 << 20;

/// One invocation, validated.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub env: Env,
    pub conf: NetConf,
    /// The exact bytes received, for delegation.
    pub stdin: &'a [u8],
    /// The whole environment the plugin was called with (the map [`dispatch`] was given; for a binary,
    /// the process environment [`run`] read). Delegation passes its variables other than the six CNI_*
    /// ones on unchanged ([`crate::delegate`]); nothing else reads it.
    pub vars: &'a EnvMap,
}

/// What a plugin implements. Version handling, environment checks and output are the dispatcher's.
pub trait Plugin {
    /// The binary's name, e.g. `"loopback"`.
    fn name(&self) -> &'static str;
    /// One sentence on what the plugin does, shown when it is run by hand.
    fn about(&self) -> &'static str;
    fn add(&self, req: &Request) -> CniResult<NetResult>;
    fn del(&self, req: &Request) -> CniResult<()>;
    fn check(&self, req: &Request) -> CniResult<()>;
    fn gc(&self, req: &Request) -> CniResult<()>;
    fn status(&self, req: &Request) -> CniResult<()>;
}

/// The plugin's answer to being run with no CNI_COMMAND.
pub(crate) fn about_text(plugin: &dyn Plugin) -> String {
    format!(
        "{} (sandbox-cni {}): {}\nCNI protocol versions supported: {}\nThis is a CNI plugin: container runtimes run it with CNI_COMMAND and the network configuration on stdin.\n",
        plugin.name(),
        env!("CARGO_PKG_VERSION"),
        plugin.about(),
        SUPPORTED.join(", ")
    )
}

fn read_stdin(mut stdin: impl Read) -> CniResult<Vec<u8>> {
    let mut buf = Vec::new();
    (&mut stdin)
        .take(MAX_STDIN + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CniError::io(format!("cannot read the network configuration from stdin: {e}")))?;
    if buf.len() as u64 > MAX_STDIN {
        return Err(CniError::decode(format!(
            "the network configuration on stdin is larger than {} MiB",
            MAX_STDIN >> 20
        )));
    }
    Ok(buf)
}

/// The supported `cniVersion` a configuration asks for, if it is readable at all.
fn requested_version(stdin: &[u8]) -> Option<Version> {
    let v: serde_json::Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().and_then(Version::parse)
}

/// Runs one invocation. Never panics on any input; stdout holds exactly one JSON document or nothing.
pub fn dispatch(plugin: &dyn Plugin, vars: &EnvMap, stdin: impl Read) -> Outcome {
    dispatch_noting(plugin, vars, stdin, &mut Note::default())
}

/// [`dispatch`], also noting what the call was about and how it ended (for the trace).
pub(crate) fn dispatch_noting(
    plugin: &dyn Plugin,
    vars: &EnvMap,
    stdin: impl Read,
    note: &mut Note,
) -> Outcome {
    let command = match env::command(vars) {
        Ok(Some(c)) => c,
        Ok(None) => return Outcome::about(about_text(plugin)),
        Err(e) => return Outcome::error(&e, None),
    };
    let stdin = read_stdin(stdin);
    if command == Command::Version {
        // Accept any stdin, as libcni's probe and the Go skel do; echo a supported request version.
        let requested = stdin.as_deref().ok().and_then(requested_version);
        return Outcome::version(requested.unwrap_or(Version::V1_1_0));
    }
    let env = match Env::from_vars(command, vars) {
        Ok(env) => env,
        // Label the error with the request's version when the configuration states a supported one.
        Err(e) => return Outcome::error(&e, stdin.as_deref().ok().and_then(requested_version)),
    };
    let stdin = match stdin {
        Ok(b) => b,
        Err(e) => return Outcome::error(&e, None),
    };
    let conf = match NetConf::parse(&stdin) {
        Ok(c) => c,
        Err(e) => return Outcome::error(&e, None),
    };
    let version = conf.version;
    note.network = conf.name.clone();
    note.version = version.as_str();
    let floor = match command {
        Command::Check if !version.has_check() => Some("CHECK needs cniVersion 0.4.0 or later"),
        Command::Gc if !version.has_gc_status() => Some("GC needs cniVersion 1.1.0 or later"),
        Command::Status if !version.has_gc_status() => Some("STATUS needs cniVersion 1.1.0 or later"),
        _ => None,
    };
    if let Some(why) = floor {
        let e = CniError::incompatible_version(format!("config version does not allow {}", command.as_str()))
            .with_details(format!("{why}; the configuration says {version}"));
        return Outcome::error(&e, Some(version));
    }
    let req = Request {
        env,
        conf,
        stdin: &stdin,
        vars,
    };
    let done = match command {
        Command::Add => plugin.add(&req).and_then(|r| r.to_json(version)).map(Some),
        Command::Del => plugin.del(&req).map(|()| None),
        Command::Check => plugin.check(&req).map(|()| None),
        Command::Gc => plugin.gc(&req).map(|()| None),
        Command::Status => plugin.status(&req).map(|()| None),
        Command::Version => Ok(None),
    };
    match done {
        Ok(Some(json)) => Outcome::result(json),
        Ok(None) => Outcome::nothing(),
        Err(e) => Outcome::error(&e, Some(version)),
    }
}

/// A plugin's whole `main`: reads the real environment (once: the dispatcher, the request and so
/// delegation see this map, never the process environment) and stdin, dispatches, writes the reply.
pub fn run(plugin: &dyn Plugin) -> ExitCode {
    output::install_panic_hook();
    // Inserted one by one: collecting would sort a vector first, which costs kilobytes of code.
    let mut vars = EnvMap::new();
    for (k, v) in std::env::vars_os() {
        vars.insert(k, v);
    }
    let trace = trace::start(&vars);
    let mut note = Note::default();
    let stdin = std::io::stdin();
    // VERSION ignores its input: do not wait for end-of-file from someone's terminal.
    let asks_version = vars
        .get(std::ffi::OsStr::new(env::CNI_COMMAND))
        .is_some_and(|c| c == "VERSION");
    // A VERSION with nothing to read is answered as the dispatcher answers an empty stdin. (Not by
    // calling it with another reader: a second copy of the dispatcher would cost kilobytes.)
    let outcome = if asks_version && stdin.is_terminal() {
        Outcome::version(Version::V1_1_0)
    } else {
        dispatch_noting(plugin, &vars, stdin.lock(), &mut note)
    };
    let exit = output::emit(&outcome);
    // After the reply: the trace never holds it up.
    if let Some(t) = trace {
        t.finish(plugin.name(), &vars, &note, &outcome);
    }
    exit
}
