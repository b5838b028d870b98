//! Host checks: what the host offers ([`probe`]), which sandbox it is ([`sandbox`]), the checks of
//! `doctor` built on both ([`doctor`]) and their `--json` lines ([`report`]).

pub mod doctor;
pub mod probe;
pub mod report;
pub mod sandbox;
