//! Checks for people who write a storage or cache backend (behind the `testing`
//! feature): [`conformance`] runs the behaviour every backend must have.

pub mod conformance;
