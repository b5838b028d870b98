//! CNI operations: the plugin executables, their list and the ledger of written files
//! ([`plugins`]), the default network config ([`conflist`]), the ADD/CHECK/DEL self-test
//! (`selftest`), the attachments a gc keeps (`valid`) and the runtime's live sandboxes
//! ([`cri`]). The `cni` subcommand itself is [`crate::commands::cni`].

pub mod conflist;
pub mod cri;
pub mod plugins;
pub(crate) mod selftest;
pub(crate) mod valid;
