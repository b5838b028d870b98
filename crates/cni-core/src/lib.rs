//! CNI protocol core (work in progress).
