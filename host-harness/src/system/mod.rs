//! What the host takes from the world outside it: time ([`clock`]), randomness
//! ([`entropy`]) and the log filter ([`logging`]). Imports nothing of the host.

pub mod clock;
pub mod entropy;
pub mod logging;
