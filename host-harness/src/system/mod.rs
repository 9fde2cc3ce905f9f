//! What the host takes from the world outside it: time ([`clock`]), randomness
//! ([`entropy`]), the log filter ([`logging`]); and what it shows the world: its
//! [`metrics`]. Imports nothing of the host.

pub mod clock;
pub mod entropy;
pub mod logging;
pub mod metrics;
