//! The `email-code` stage: its hooks and the code's life (issued, checked, spent).

use plugin_api::form::{Field, FieldKind, Form};
use plugin_api::token::{constant_time_eq, sha256_hex};
use plugin_api::{
    HookResult, Host, Message, Outcome, OutgoingMail, RateLimit, Stage, StageError, StageRequest,
    User,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::CodeConfig;

/// Shown after a code was mailed on request.
pub const MSG_SENT: &str = "A new code is on its way.";
/// Under the field for a wrong code.
pub const MSG_WRONG: &str = "That code is not valid.";
/// Under the field for a code past its time.
pub const MSG_EXPIRED: &str = "That code has expired. Ask for a new one.";
/// When the address had its codes for the hour.
pub const MSG_TOO_MANY_CODES: &str = "Too many codes were asked for. Please try again later.";
/// Access denied after too many wrong codes.
pub const MSG_LOCKED: &str = "Too many wrong codes.";
/// Access denied without a pending user.
pub const MSG_NO_USER: &str = "No pending user.";

/// Flow-state key of the code in force.
const STATE_KEY: &str = "code";
/// Where a decoy for an unknown user is addressed (never delivered).
const DECOY_TO: &str = "decoy@example.invalid";

/// The code in force, as kept in the flow's state: its hash, never the code.
#[derive(Debug, Serialize, Deserialize)]
struct Issued {
    hash: String,
    expires_ms: i64,
    wrong: u32,
}

/// One configured `email-code` stage.
pub struct CodeStage {
    config: CodeConfig,
}

impl CodeStage {
    /// A stage with this configuration.
    pub fn new(config: CodeConfig) -> Self {
        Self { config }
    }

    fn form(&self) -> Form {
        let text = format!(
            "We sent a 6-digit code to your email address. It is valid for {} minutes.",
            self.config.valid_minutes
        );
        Form::new("Enter your code")
            .text(&text)
            .field(Field::new("code", "Code", FieldKind::Code).required())
            .button("Sign in")
            .action("Send a new code", "action", "resend")
    }

    fn answer(form: Form) -> HookResult {
        HookResult::new(Outcome::Challenge(form.challenge()))
    }

    /// Mails a fresh code (a decoy for an unknown user) and keeps its hash; `false`
    /// when the address had its codes for the hour.
    fn issue(&self, user: &User, host: &dyn Host) -> Result<bool, StageError> {
        let key = format!("codes/{}", sha256_hex(&user.email.to_lowercase()));
        let limit = host.rate_limit(&key, 3_600_000, self.config.codes_per_hour, host.now_ms())?;
        if matches!(limit, RateLimit::Limited { .. }) {
            return Ok(false);
        }
        let code = six_digits(host)?;
        let issued = Issued {
            hash: sha256_hex(&code),
            expires_ms: host.now_ms() + i64::from(self.config.valid_minutes) * 60_000,
            wrong: 0,
        };
        save(host, &issued)?;
        let decoy = user.id.is_none();
        let to = if decoy { DECOY_TO } else { user.email.as_str() };
        let text = format!(
            "Your sign-in code is {code}. It is valid for {} minutes.",
            self.config.valid_minutes
        );
        let mail = OutgoingMail::builder()
            .to(&user.name, to)
            .subject(&self.config.subject)
            .text(&text)
            .html(&format!("<p>Your sign-in code is <b>{code}</b>.</p>"))
            .decoy(decoy)
            .build(host)?;
        host.enqueue_mail(&mail)?;
        Ok(true)
    }

    fn check(
        &self,
        user: &User,
        submitted: &str,
        host: &dyn Host,
    ) -> Result<HookResult, StageError> {
        let Some(mut issued) = load(host)? else {
            return Ok(Self::answer(self.form().error("code", MSG_EXPIRED)));
        };
        if host.now_ms() >= issued.expires_ms {
            return Ok(Self::answer(self.form().error("code", MSG_EXPIRED)));
        }
        // An unknown user's code was never mailed: nothing it types is right.
        let right =
            user.id.is_some() && constant_time_eq(&sha256_hex(submitted.trim()), &issued.hash);
        if right {
            host.flow_state_set(STATE_KEY, "")?;
            return Ok(HookResult::new(Outcome::StageOk));
        }
        issued.wrong += 1;
        save(host, &issued)?;
        if issued.wrong >= self.config.max_wrong {
            return Ok(HookResult::new(Outcome::StageInvalid(Some(
                MSG_LOCKED.into(),
            ))));
        }
        Ok(Self::answer(self.form().error("code", MSG_WRONG)))
    }
}

/// A uniform 6-digit code from the host's randomness (rejection sampling).
fn six_digits(host: &dyn Host) -> Result<String, StageError> {
    loop {
        let mut b = [0u8; 4];
        host.fill_random(&mut b)?;
        let n = u32::from_le_bytes(b);
        if n < u32::MAX - u32::MAX % 1_000_000 {
            return Ok(format!("{:06}", n % 1_000_000));
        }
    }
}

fn load(host: &dyn Host) -> Result<Option<Issued>, StageError> {
    let Some(text) = host.flow_state_get(STATE_KEY)? else {
        return Ok(None);
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| StageError::BadContext(e.to_string()))
}

fn save(host: &dyn Host, issued: &Issued) -> Result<(), StageError> {
    let text = serde_json::to_string(issued).map_err(|e| StageError::Internal(e.to_string()))?;
    Ok(host.flow_state_set(STATE_KEY, &text)?)
}

/// The pending user from the plan context, if any.
fn pending_user(req: &StageRequest<'_>) -> Result<Option<User>, StageError> {
    match req.context()?.get("pending_user") {
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| StageError::BadContext(format!("pending_user: {e}"))),
        None => Ok(None),
    }
}

fn no_user() -> HookResult {
    HookResult::new(Outcome::StageInvalid(Some(MSG_NO_USER.into())))
}

impl Stage for CodeStage {
    fn get(&self, req: &StageRequest<'_>, host: &dyn Host) -> Result<HookResult, StageError> {
        let Some(user) = pending_user(req)? else {
            return Ok(no_user());
        };
        // A reload shows the page again; only a missing code is issued.
        if load(host)?.is_some() || self.issue(&user, host)? {
            return Ok(Self::answer(self.form()));
        }
        Ok(Self::answer(
            self.form().error("non_field_errors", MSG_TOO_MANY_CODES),
        ))
    }

    fn challenge_invalid(
        &self,
        req: &StageRequest<'_>,
        response: &Value,
        host: &dyn Host,
    ) -> Result<HookResult, StageError> {
        let Some(user) = pending_user(req)? else {
            return Ok(no_user());
        };
        if response["action"] == "resend" {
            if self.issue(&user, host)? {
                return Ok(Self::answer(self.form()).with_message(Message::success(MSG_SENT)));
            }
            return Ok(Self::answer(
                self.form().error("non_field_errors", MSG_TOO_MANY_CODES),
            ));
        }
        let submitted = response["code"].as_str().unwrap_or("");
        self.check(&user, submitted, host)
    }
}
