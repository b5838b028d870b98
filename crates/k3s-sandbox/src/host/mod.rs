//! Host checks: what the host offers ([`probe`]), which sandbox it is ([`sandbox`]), the checks of
//! `doctor` built on both ([`doctor`]) and their `--json` lines ([`report`]).

pub(crate) mod doctor;
pub(crate) mod probe;
pub(crate) mod report;
pub(crate) mod sandbox;
