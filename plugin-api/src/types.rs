//! Plain Rust types shared by hosts and plugins.
//!
//! These are what plugin logic and host code work with. The FFI layer
//! ([`crate::abi`]) carries them across the boundary, as `#[repr(C)]` values or as
//! JSON text for the composite ones.

use serde::{Deserialize, Serialize};

/// A user record as the host stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct User {
    /// Primary key. `None` for a placeholder user that is not persisted
    /// (authentik's "pretend user exists" identification).
    pub id: Option<String>,
    /// Login name.
    pub username: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// Primary email address; may be empty.
    #[serde(default)]
    pub email: String,
    /// Whether the account may sign in.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// Preferred locale (`attributes.settings.locale` in authentik); empty for the server default.
    #[serde(default)]
    pub locale: String,
    /// Free-form attributes (authentik's `User.attributes`), for policies and
    /// stages that read them; empty when the host keeps none. Added in 0.3.1.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

impl User {
    /// The plan context's `pending_user` (absent or `null` ⇒ `None`), read in place.
    pub fn pending_in(
        ctx: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Option<User>, crate::StageError> {
        match ctx.get("pending_user") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => User::deserialize(v)
                .map(Some)
                .map_err(|e| crate::StageError::BadContext(format!("pending_user: {e}"))),
        }
    }
}

/// The operator's brand, as the host adds it under `brand` to the plan context each
/// hook sees (from its configuration, a flow's override laid over the host's; it is
/// not stored in the plan). Stages pass it to what they render, so no mail names a
/// product the operator did not configure.
/// Added in 0.3.3; absent from a context, [`Brand::in_context`] gives the default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
pub struct Brand {
    /// Product or organisation name shown in subjects and bodies.
    pub name: String,
    /// Absolute `http(s)` URL of a logo image; empty for none.
    pub logo_url: String,
    /// Address people may write to for help; empty for none.
    pub support_email: String,
    /// Accent colour, `#rrggbb` (the host refuses anything else).
    pub primary_color: String,
    /// Footer line of mails; empty for none.
    pub footer: String,
}

impl Default for Brand {
    fn default() -> Self {
        Brand {
            name: "Identity".into(),
            logo_url: String::new(),
            support_email: String::new(),
            primary_color: "#2563eb".into(),
            footer: String::new(),
        }
    }
}

impl Brand {
    /// Whether `color` is the `#rrggbb` form `primary_color` must take (anything
    /// else could break out of a style attribute).
    pub fn color_is_valid(color: &str) -> bool {
        color.len() == 7
            && color.starts_with('#')
            && color[1..].bytes().all(|c| c.is_ascii_hexdigit())
    }

    /// The plan context's `brand`; the default brand when absent or `null`.
    pub fn in_context(
        ctx: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Brand, crate::StageError> {
        match ctx.get("brand") {
            None | Some(serde_json::Value::Null) => Ok(Brand::default()),
            Some(v) => Brand::deserialize(v)
                .map_err(|e| crate::StageError::BadContext(format!("brand: {e}"))),
        }
    }
}

/// A flow token to be created by the host.
///
/// The host stores it together with a snapshot of the *current* plan of the flow the
/// hook runs in. When `confirm_header` is set, the snapshot starts with a confirmation
/// step showing that header; the token is consumed only when the person confirms.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NewFlowToken {
    /// SHA-256 of the key (lowercase hex), see [`crate::token::hash_key`]. The key itself
    /// is never given to the host.
    pub key_hash: String,
    /// Unique, human-readable identifier (`ak-email-stage-<stage>-<uuid>`).
    pub identifier: String,
    /// The user the token is for.
    pub user_id: String,
    /// Name of the stage that issued the token; the host restores into this stage.
    pub stage_name: String,
    /// Expiry instant, Unix milliseconds.
    pub expires_ms: i64,
    /// Purpose, e.g. `verification`.
    pub intent: String,
    /// Delete the token as soon as the executor restores it (no confirmation step).
    pub revoke_on_execution: bool,
    /// Header of the confirmation step inserted at the head of the restored plan.
    pub confirm_header: Option<String>,
    /// A decoy: stored exactly like a real token, so issuing one costs the same, but
    /// never restorable. For answering an unknown user the way a known one is
    /// answered (anti-enumeration). Absent in JSON means `false`.
    #[serde(default)]
    pub decoy: bool,
}

/// A stored flow token as the host reports it: never the key, never its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FlowToken {
    /// Unique identifier given at creation.
    pub identifier: String,
    /// The user the token is for.
    pub user_id: String,
    /// Slug of the flow whose plan the token holds.
    pub flow_slug: String,
    /// Name of the stage that issued it.
    pub stage_name: String,
    /// Expiry instant, Unix milliseconds.
    pub expires_ms: i64,
    /// Purpose, e.g. `verification`.
    pub intent: String,
}

/// Outcome of the host's atomic sliding-window rate-limit primitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// The attempt was allowed and recorded.
    Allowed,
    /// Limited; nothing was recorded. The oldest recorded attempt leaves the window
    /// after this many milliseconds.
    Limited {
        /// Milliseconds until the next attempt can be allowed.
        retry_after_ms: u64,
    },
}

/// How the host should deliver a mail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MailRoute {
    /// The host's global SMTP settings (authentik's `use_global_settings`).
    Global,
    /// The stage's own SMTP settings.
    Smtp(SmtpSettings),
}

/// SMTP connection settings of a stage.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SmtpSettings {
    /// Server host name or address.
    pub host: String,
    /// Server port.
    pub port: u16,
    /// AUTH user; AUTH is used only when both user and password are non-empty.
    pub username: String,
    /// AUTH password. Never logged (see the `Debug` impl).
    pub password: String,
    /// STARTTLS after EHLO.
    pub use_tls: bool,
    /// Implicit TLS (SMTPS).
    pub use_ssl: bool,
    /// Socket timeout, seconds.
    pub timeout_secs: u64,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_empty() { "" } else { "***" },
            )
            .field("use_tls", &self.use_tls)
            .field("use_ssl", &self.use_ssl)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

/// A composed mail handed to the host for delivery outside the request.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct OutgoingMail {
    /// The `Message-ID` header value, `<…@…>`; also the idempotency key.
    pub message_id: String,
    /// Envelope sender.
    pub envelope_from: String,
    /// Envelope recipients.
    pub envelope_to: Vec<String>,
    /// Recipient strings as in the `To` header, for the `email_sent` event.
    pub to_display: Vec<String>,
    /// Subject, for the `email_sent` event.
    pub subject: String,
    /// The whole RFC 5322 message. Contains the link: never log it.
    pub raw: Vec<u8>,
    /// Which SMTP settings to use.
    pub route: MailRoute,
    /// A decoy: queued exactly like a real mail, so it costs the same, but never
    /// delivered (see [`NewFlowToken::decoy`]). Absent in JSON means `false`.
    #[serde(default)]
    pub decoy: bool,
    /// The locale the mail was written in (a BCP 47 tag such as `de`), recorded in
    /// the host's `email_sent` event; empty when unknown. Added in 0.3.3.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub locale: String,
}

impl std::fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("message_id", &self.message_id)
            .field("envelope_to", &self.envelope_to)
            .field("subject", &self.subject)
            .field("raw", &format_args!("<{} bytes>", self.raw.len()))
            .field("route", &self.route)
            .field("decoy", &self.decoy)
            .finish()
    }
}

/// Level of a flash message shown to the person running the flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageLevel {
    /// Something worked.
    Success,
    /// Something is wrong.
    Error,
    /// Neutral information.
    Info,
    /// A warning.
    Warning,
}

/// A flash message (Django's `messages`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Level.
    pub level: MessageLevel,
    /// Text shown as is.
    pub message: String,
}

impl Message {
    /// A success message.
    pub fn success(text: impl Into<String>) -> Self {
        Self {
            level: MessageLevel::Success,
            message: text.into(),
        }
    }
    /// An error message.
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            level: MessageLevel::Error,
            message: text.into(),
        }
    }
}

/// Log levels forwarded from a plugin to the host's `tracing` subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum LogLevel {
    /// `TRACE`
    Trace = 0,
    /// `DEBUG`
    Debug = 1,
    /// `INFO`
    Info = 2,
    /// `WARN`
    Warn = 3,
    /// `ERROR`
    Error = 4,
}

impl LogLevel {
    /// Converts from the wire value; unknown values become `Error`.
    pub fn from_u8(v: u8) -> Self {
        match v {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            _ => Self::Error,
        }
    }
}

/// What the executor does after a hook.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Show this challenge. A JSON object with at least `component`; the host adds
    /// `flow_info`.
    Challenge(serde_json::Value),
    /// The stage is done; advance the plan.
    StageOk,
    /// The stage failed: access denied with this message (`None` ⇒ "Unknown error"),
    /// and the flow is cancelled.
    StageInvalid(Option<String>),
}

/// Everything a hook returns.
#[derive(Debug, Clone, PartialEq)]
pub struct HookResult {
    /// What the executor does next.
    pub outcome: Outcome,
    /// Plan-context keys to set (value as JSON).
    pub context_set: Vec<(String, serde_json::Value)>,
    /// Flash messages for the person running the flow.
    pub messages: Vec<Message>,
}

impl HookResult {
    /// A result with this outcome, no context change and no message.
    pub fn new(outcome: Outcome) -> Self {
        Self {
            outcome,
            context_set: Vec::new(),
            messages: Vec::new(),
        }
    }
    /// Adds a flash message.
    pub fn with_message(mut self, m: Message) -> Self {
        self.messages.push(m);
        self
    }
    /// Sets a plan-context key.
    pub fn with_context(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.context_set.push((key.into(), value));
        self
    }
}

/// The request a hook runs for: borrowed views of host-owned data.
#[derive(Debug, Clone, Copy)]
pub struct StageRequest<'a> {
    /// Slug of the running flow.
    pub flow_slug: &'a str,
    /// Designation of the flow (`recovery`, `enrollment`, `authentication`,
    /// `stage_configuration`, …).
    pub flow_designation: &'a str,
    /// Name of the stage binding being executed.
    pub stage_name: &'a str,
    /// The executor's `query` parameter: the flow page's own query string, undecoded.
    pub query: &'a str,
    /// The host's configured public base URL (scheme + host [+ path]), without a
    /// trailing slash. Links are built from it, never from request headers.
    pub base_url: &'a str,
    /// Negotiated request locale (may be empty).
    pub locale: &'a str,
    /// Id of the signed-in requester, if any.
    pub requester_id: Option<&'a str>,
    /// The plan context as a JSON object text.
    pub context_json: &'a str,
}

impl StageRequest<'_> {
    /// Parses the plan context.
    pub fn context(&self) -> Result<serde_json::Map<String, serde_json::Value>, crate::StageError> {
        match serde_json::from_str::<serde_json::Value>(self.context_json) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(_) => Err(crate::StageError::BadContext(
                "plan context is not a JSON object".into(),
            )),
            Err(e) => Err(crate::StageError::BadContext(e.to_string())),
        }
    }
}

/// Description of one stage kind a plugin provides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StageKind {
    /// Kind name used in host configuration (`email`).
    pub kind: String,
    /// Challenge component the stage renders (`ak-stage-email`).
    pub component: String,
    /// JSON Schema of the stage configuration.
    pub config_schema: serde_json::Value,
}

/// What a plugin says about itself. Built with [`crate::manifest!`] (or
/// [`Manifest::new`]); for a loaded library, the host takes the name, version and
/// `plugin-api` version from the build, not from this value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[non_exhaustive]
pub struct Manifest {
    /// Plugin name (the crate name).
    pub name: String,
    /// Plugin version (the crate version).
    pub version: String,
    /// Version of `plugin-api` the plugin was built against.
    #[serde(default)]
    pub api_version: String,
    /// Stage kinds provided.
    pub stages: Vec<StageKind>,
}

impl Manifest {
    /// A manifest for `stages`, built against this `plugin-api` ([`crate::API_VERSION`]).
    pub fn new(name: &str, version: &str, stages: Vec<StageKind>) -> Self {
        Manifest {
            name: name.into(),
            version: version.into(),
            api_version: crate::API_VERSION.into(),
            stages,
        }
    }
}
