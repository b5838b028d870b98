//! Running another plugin (the IPAM) the way SPEC.md "Delegated plugins" describes: found by type on
//! CNI_PATH, run through the [`crate::exec`] seam with the request's environment (its six CNI_* values,
//! CNI_COMMAND set to the verb) and the same stdin bytes; its stderr flows to ours; its error reply is
//! passed on unchanged.
//!
//! Delegation is a function of the [`Request`] alone: the environment it passes on is the one the
//! request carries, never the process environment.

use crate::env::Command;
use crate::error::{CniError, CniResult, code};
use crate::exec::{EnvList, Exec, decode_error, plugin_env};
use crate::result::NetResult;
use crate::skel::Request;

/// Runs `name` through `exec` (a process for a plugin binary, [`crate::exec::ProcessExec`]) for
/// `command` with `req`'s environment and stdin and, for ADD, returns its result read into the model.
///
/// A reply without `cniVersion` is read as the request's version. A failing plugin's error object comes
/// back as it was (its code, message and details), so callers can pass it on.
pub fn delegate(
    exec: &dyn Exec,
    name: &str,
    command: Command,
    req: &Request,
) -> CniResult<Option<NetResult>> {
    let exe = exec.find(name, &req.env.path)?;
    let out = exec
        .exec(&exe, &request_env(command, req), req.stdin)
        .map_err(|e| {
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
    NetResult::from_json(&value, req.conf.version, &format!("the {name} result")).map(Some)
}

/// The delegate's environment, built explicitly: the request's variables other than the six CNI_*
/// ones (what the plugin was called with), then the six from the request (the verb replaced by
/// `command`).
fn request_env(command: Command, req: &Request) -> EnvList {
    let env = &req.env;
    plugin_env(
        req.vars.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        command.as_str(),
        &env.container_id,
        &env.netns,
        &env.ifname,
        &env.args,
        &env.path,
    )
}
