//! The brokers themselves: the embedded development broker, connecting (bootstrap, probes) and
//! topic administration.

pub(crate) mod connect;
pub(crate) mod embedded;
pub(crate) mod topics;
