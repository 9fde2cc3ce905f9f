//! Running flows: the executor with its plans per session, link restore and the
//! confirmation step ([`executor`]), and an in-process client that drives a flow
//! as the flow page does ([`client`], used by `demo`). Imports stages, storage,
//! cache, mail, system and the plan; imported by http and config.

pub mod client;
pub mod executor;

pub use executor::*;
