//! The pass-through chained plugins (portmap, bandwidth, firewall, tuning): each validates its own keys
//! and returns prevResult unchanged, doing no kernel work.

use cni_core::{CniError, CniResult, NetResult, Plugin, Request};

/// The prevResult a chained plugin needs, or a clear code-7 error naming the plugin.
fn require_prev_result(req: &Request, plugin: &str) -> CniResult<NetResult> {
    req.conf.prev_result()?.ok_or_else(|| {
        CniError::invalid_config(format!(
            "{plugin} must be called as a chained plugin: prevResult is missing"
        ))
        .with_details(format!(
            "list {plugin} after a plugin that creates the interface (such as bridge) in a conflist's \"plugins\"; the runtime then passes that plugin's result as prevResult"
        ))
    })
}

/// A chained plugin that validates its configuration and passes prevResult through unchanged: no kernel
/// work. ADD and CHECK validate and require prevResult; DEL, GC and STATUS always succeed, so teardown
/// never fails on a configuration that has since been edited.
pub struct PassThrough {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    /// Type and value checks of the plugin's own keys and capability arguments.
    pub(crate) validate: fn(&Request) -> CniResult<()>,
}

impl Plugin for PassThrough {
    fn name(&self) -> &'static str {
        self.name
    }

    fn about(&self) -> &'static str {
        self.about
    }

    fn add(&self, req: &Request) -> CniResult<NetResult> {
        (self.validate)(req)?;
        require_prev_result(req, self.name)
    }

    fn del(&self, _req: &Request) -> CniResult<()> {
        Ok(())
    }

    fn check(&self, req: &Request) -> CniResult<()> {
        (self.validate)(req)?;
        require_prev_result(req, self.name).map(|_| ())
    }

    fn gc(&self, _req: &Request) -> CniResult<()> {
        Ok(())
    }

    fn status(&self, _req: &Request) -> CniResult<()> {
        Ok(())
    }
}
