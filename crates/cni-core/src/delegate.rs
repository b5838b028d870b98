//! Running another plugin (the IPAM) the way SPEC.md "Delegated plugins" describes: found by type on
//! CNI_PATH, run through the [`crate::exec`] seam with the request's environment (its six CNI_* values,
//! CNI_COMMAND set to the verb) and the same stdin bytes; its stderr flows to ours; its error reply is
//! passed on unchanged.

use crate::env::{Command, Env};
use crate::error::{CniError, CniResult, code};
use crate::exec::{EnvList, Exec, decode_error, plugin_env};
use crate::result::NetResult;
use crate::version::Version;

/// Runs `name` through `exec` (a process for a plugin binary, [`crate::exec::ProcessExec`]) for
/// `command` and, for ADD, returns its result read into the model.
///
/// A reply without `cniVersion` is read as `version`. A failing plugin's error object comes back as it
/// was (its code, message and details), so callers can pass it on.
pub fn delegate(
    exec: &dyn Exec,
    name: &str,
    command: Command,
    env: &Env,
    stdin: &[u8],
    version: Version,
) -> CniResult<Option<NetResult>> {
    let exe = exec.find(name, &env.path)?;
    let out = exec.exec(&exe, &request_env(command, env), stdin).map_err(|e| {
        CniError::new(
            code::DELEGATE_FAILED,
            format!("cannot run plugin {name:?} ({}): {e}", exe.display()),
        )
    })?;
    if !out.success {
        return Err(decode_error(name, command.as_str(), &out));
    }
    if command != Command::Add {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        CniError::new(
            code::DELEGATE_FAILED,
            format!("plugin {name:?} answered ADD with something that is not JSON: {e}"),
        )
    })?;
    NetResult::from_json(&value, version, &format!("the {name} result")).map(Some)
}

/// The delegate's environment, built explicitly: the non-CNI variables of this process, then the six
/// CNI_* variables from the request (the verb replaced by `command`).
fn request_env(command: Command, env: &Env) -> EnvList {
    plugin_env(
        std::env::vars_os().collect(),
        command.as_str(),
        &env.container_id,
        &env.netns,
        &env.ifname,
        &env.args,
        &env.path,
    )
}
