//! Error types of the API.

use thiserror::Error;

/// An error a host service reports to a plugin.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum HostError {
    /// The backing store is unreachable or failed; retrying later may work.
    #[error("host backend unavailable: {0}")]
    Unavailable(String),
    /// The request was refused (bad argument, constraint violation, …).
    #[error("host refused the request: {0}")]
    Rejected(String),
    /// The host does not offer this service (an older host).
    #[error("host service not supported: {0}")]
    Unsupported(String),
    /// A host callback panicked; the panic was caught on the host side.
    #[error("host service panicked: {0}")]
    Panicked(String),
    /// A limit the host keeps was reached (e.g. mails per browser session); retrying
    /// later may work. Plugins built before this variant see it as `Panicked`.
    #[error("host limit reached: {0}")]
    Limited(String),
    /// The host failed in a way retrying will not fix (corrupt stored data). Added
    /// in 0.2.
    #[error("host internal error: {0}")]
    Internal(String),
}

impl HostError {
    /// Stable numeric code used on the wire.
    pub(crate) fn code(&self) -> u8 {
        match self {
            Self::Unavailable(_) => 1,
            Self::Rejected(_) => 2,
            Self::Unsupported(_) => 3,
            Self::Panicked(_) => 4,
            Self::Limited(_) => 5,
            Self::Internal(_) => 6,
        }
    }
    pub(crate) fn detail(&self) -> &str {
        match self {
            Self::Unavailable(s)
            | Self::Rejected(s)
            | Self::Unsupported(s)
            | Self::Panicked(s)
            | Self::Limited(s)
            | Self::Internal(s) => s,
        }
    }
    pub(crate) fn from_code(code: u8, detail: String) -> Self {
        match code {
            1 => Self::Unavailable(detail),
            2 => Self::Rejected(detail),
            3 => Self::Unsupported(detail),
            5 => Self::Limited(detail),
            6 => Self::Internal(detail),
            _ => Self::Panicked(detail),
        }
    }
}

/// An error from a stage hook or stage construction.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StageError {
    /// The stage configuration is invalid; the message says which field and why.
    #[error("invalid stage configuration: {0}")]
    Config(String),
    /// The plan context is malformed.
    #[error("malformed plan context: {0}")]
    BadContext(String),
    /// A host service failed.
    #[error(transparent)]
    Host(#[from] HostError),
    /// The stage kind is not provided by this plugin.
    #[error("unknown stage kind '{0}'")]
    UnknownKind(String),
    /// An unexpected failure inside the stage (authentik's flow-error challenge).
    #[error("stage failed: {0}")]
    Internal(String),
    /// The hook panicked; the panic was caught at the boundary.
    #[error("stage hook panicked: {0}")]
    Panicked(String),
}

impl StageError {
    pub(crate) fn code(&self) -> u8 {
        match self {
            Self::Config(_) => 1,
            Self::BadContext(_) => 2,
            // 0x30 | the host error's own code, so its kind survives the trip.
            Self::Host(h) => 0x30 | h.code(),
            Self::UnknownKind(_) => 4,
            Self::Internal(_) => 5,
            Self::Panicked(_) => 6,
        }
    }
    pub(crate) fn from_code(code: u8, detail: String) -> Self {
        match code {
            1 => Self::Config(detail),
            2 => Self::BadContext(detail),
            3 => Self::Host(HostError::Unavailable(detail)),
            0x31..=0x3f => Self::Host(HostError::from_code(code & 0x0f, detail)),
            4 => Self::UnknownKind(detail),
            6 => Self::Panicked(detail),
            _ => Self::Internal(detail),
        }
    }
    pub(crate) fn detail(&self) -> String {
        match self {
            Self::Host(h) => h.detail().to_string(),
            Self::Config(s)
            | Self::BadContext(s)
            | Self::UnknownKind(s)
            | Self::Internal(s)
            | Self::Panicked(s) => s.clone(),
        }
    }
}

/// Why a plugin library could not be loaded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be opened as a dynamic library or has no root module.
    #[error("cannot open plugin {path}: {detail}")]
    Open {
        /// Library path.
        path: String,
        /// Short reason.
        detail: String,
    },
    /// The plugin was built against an incompatible `plugin-api`.
    #[error("plugin {path} is incompatible: host plugin-api {host_version}, plugin plugin-api {plugin_version}: {detail}")]
    Incompatible {
        /// Library path.
        path: String,
        /// `plugin-api` version of the host.
        host_version: String,
        /// `plugin-api` version the plugin declares.
        plugin_version: String,
        /// The decisive line of abi_stable's report.
        detail: String,
        /// abi_stable's full layout report (long); show it only when debugging.
        full_report: String,
    },
    /// The plugin was built with `panic = "abort"`: one panic would kill the host.
    #[error("plugin {path} was built with panic = \"abort\"; rebuild it with panic = \"unwind\"")]
    PanicAbort {
        /// Library path.
        path: String,
    },
    /// The plugin's manifest is unreadable.
    #[error("plugin {path} has a malformed manifest: {detail}")]
    Manifest {
        /// Library path.
        path: String,
        /// Parse error.
        detail: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_errors_keep_their_kind_across_the_wire() {
        for e in [
            StageError::Config("c".into()),
            StageError::BadContext("b".into()),
            StageError::Host(HostError::Panicked("p".into())),
            StageError::Host(HostError::Rejected("r".into())),
            StageError::Host(HostError::Unsupported("u".into())),
            StageError::Host(HostError::Unavailable("a".into())),
            StageError::UnknownKind("k".into()),
            StageError::Internal("i".into()),
            StageError::Panicked("x".into()),
        ] {
            assert_eq!(StageError::from_code(e.code(), e.detail()), e);
        }
    }
}
