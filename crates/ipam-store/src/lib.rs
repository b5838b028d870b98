//! The host-local address store (work in progress).
