//! The email stage's hooks: GET (initial send), POST ("Send Email again."), restore.
//!
//! Plain Rust over [`plugin_api::Host`]; the exported module calls the same code.

use plugin_api::address::EmailAddress;
use plugin_api::token::{generate_key, hash_key, sha256_hex};
use plugin_api::{
    Brand, FlowToken, HookResult, Host, HostError, MailRoute, Message, NewFlowToken, Outcome,
    OutgoingMail, RateLimit, Stage, StageError, StageRequest, User,
};
use serde_json::{json, Map, Value};

use crate::compose::{self, ComposeError};
use crate::config::{Config, RateLimitKey};
use crate::i18n::{Catalogs, BUILTIN_CATALOGS, DEFAULT_LOCALE};
use crate::link;
use crate::templates::{RenderContext, RenderError, Templates, BUILTIN_TEMPLATES};

/// Cache-key prefix of the resend rate limit (authentik's `EMAIL_RECOVERY_CACHE_KEY`).
pub const RATE_LIMIT_PREFIX: &str = "goauthentik.io/stages/email/stage/";
/// Success message after the link was confirmed.
pub const MSG_VERIFIED: &str = "Successfully verified Email.";
/// Error message without a pending user.
pub const MSG_NO_PENDING_USER: &str = "No pending user.";
/// Success message after a resend.
pub const MSG_SENT: &str = "Email Successfully sent.";
/// Header of the confirmation step of a restored link.
pub const CONSENT_HEADER: &str = "Continue to confirm this email address.";
/// Message of the `configuration_error` event.
pub const MSG_TEMPLATE_ERROR: &str = "Exception occurred while rendering E-mail template";
/// Challenge component.
pub const COMPONENT: &str = "ak-stage-email";

/// The rate-limit message for `minutes` (always "minutes", as authentik says it).
pub fn too_many_attempts(minutes: u64) -> String {
    too_many_attempts_in("en", minutes)
}

/// The rate-limit message for `minutes` in `locale`.
pub fn too_many_attempts_in(locale: &str, minutes: u64) -> String {
    let mut args = fluent_bundle::FluentArgs::new();
    args.set("minutes", minutes);
    Catalogs::builtin().text(locale, "msg-too-many-attempts", Some(&args))
}

/// Catalog message `id` in `locale`.
fn tr(locale: &str, id: &str) -> String {
    Catalogs::builtin().text(locale, id, None)
}

/// The subject: the configured one, else the catalog's for the template.
pub fn subject_for(
    configured: Option<&str>,
    template: &str,
    locale: &str,
    brand: &Brand,
) -> String {
    if let Some(s) = configured {
        return s.to_string();
    }
    let id = match template {
        "email/password_reset.html" => "subject-password-reset",
        "email/account_confirmation.html" => "subject-account-confirmation",
        _ => "subject-default",
    };
    let mut args = fluent_bundle::FluentArgs::new();
    args.set("brand", brand.name.as_str());
    Catalogs::builtin().text(locale, id, Some(&args))
}

/// The GET challenge.
pub fn challenge() -> Value {
    json!({ "component": COMPONENT })
}

/// The POST challenge: always invalid with `email-sent`.
pub fn post_challenge() -> Value {
    json!({
        "component": COMPONENT,
        "response_errors": {
            "non_field_errors": [{ "string": "email-sent", "code": "email-sent" }]
        }
    })
}

/// One configured email stage.
#[derive(Debug)]
pub struct EmailStage {
    name: String,
    config: Config,
    templates: Templates,
}

enum Sent {
    Queued,
    TemplateInvalid,
    /// The host refused another mail now; retry after this many minutes.
    Limited(u64),
}

fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

/// The `email` override when truthy, as a string.
fn override_address(ctx: &Map<String, Value>) -> Result<Option<String>, StageError> {
    match ctx.get("email") {
        v if !truthy(v) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(StageError::BadContext(format!(
            "email override must be a string, got {other}"
        ))),
        None => Ok(None),
    }
}

/// Django's `slugify` for ASCII: lower-case, whitespace to `-`, drop the rest.
fn slugify(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.trim().chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c.to_ascii_lowercase());
        } else if c.is_whitespace() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out
}

fn host_of(base_url: &str) -> &str {
    let rest = base_url.split_once("://").map_or(base_url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split(':').next().unwrap_or("");
    if host.is_empty() {
        "localhost"
    } else {
        host
    }
}

/// The catalog locale a hook writes in: the user's own locale when set (authentik's
/// `settings.locale`), else the request's (the host's negotiated one), resolved
/// along the catalog chain (`de-AT` → `de` → `en`).
fn locale_of(user: Option<&User>, req: &StageRequest<'_>) -> &'static str {
    let wanted = match user {
        Some(u) if !u.locale.is_empty() => u.locale.as_str(),
        _ => req.locale,
    };
    Catalogs::builtin().resolve(wanted)
}

fn random_uuid(host: &dyn Host) -> Result<uuid::Uuid, StageError> {
    let mut b = [0u8; 16];
    host.fill_random(&mut b)?;
    Ok(uuid::Builder::from_random_bytes(b).into_uuid())
}

/// Renders a custom `template` (and its text twin) in every shipped locale with a
/// sample user, unknown variables as errors: a template that would fail or render
/// blanks is refused when the stage is built (`check`, `serve`), naming file and line.
/// Built-in templates are checked by unit tests instead.
fn check_template(stage: &str, templates: &Templates, template: &str) -> Result<(), StageError> {
    if BUILTIN_TEMPLATES.iter().any(|(n, _)| *n == template) {
        return Ok(());
    }
    let user = User {
        id: Some("1".into()),
        username: "sample".into(),
        name: "Sample User".into(),
        email: "sample@example.com".into(),
        is_active: true,
        locale: String::new(),
        attributes: Default::default(),
    };
    let brand = Brand::default();
    for (locale, _) in BUILTIN_CATALOGS {
        let ctx = RenderContext {
            url: "https://id.example.com/if/flow/sample/?flow_token=sample",
            user: &user,
            expires_ms: 31 * 60_000,
            now_ms: 0,
            token: "sample",
            subject: "sample",
            brand: &brand,
            locale,
        };
        let has_twin = templates
            .check(template, &ctx)
            .map_err(|e| StageError::Config(format!("template: {e}")))?;
        if !has_twin && *locale == DEFAULT_LOCALE {
            tracing::warn!(target: "email_stage", stage, template, "custom HTML template has no text twin: its mails have no text/plain part");
        }
    }
    Ok(())
}

impl EmailStage {
    /// Validates `config_json` and builds the stage.
    pub fn new(name: &str, config_json: &str) -> Result<Self, StageError> {
        if name.is_empty() {
            return Err(StageError::Config("name: must not be empty".into()));
        }
        let config = Config::from_json(config_json)?;
        let templates = Templates::new(config.custom_templates_dir.clone());
        check_template(name, &templates, &config.template)?;
        Ok(Self {
            name: name.to_string(),
            config,
            templates,
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The user a hook acts for: `pending_user`, else the signed-in requester.
    fn pending_or_requester(
        &self,
        pending: Option<User>,
        req: &StageRequest<'_>,
        host: &dyn Host,
    ) -> Result<Option<User>, StageError> {
        match (pending, req.requester_id) {
            (Some(u), _) => Ok(Some(u)),
            (None, Some(id)) => Ok(host.user(id)?),
            (None, None) => Ok(None),
        }
    }

    /// Checks and records one send against the per-address limit, then the per-user
    /// one. `Some(minutes)` when either refuses.
    ///
    /// The address key is canonical ([`EmailAddress::limit_key`]: IDN as punycode,
    /// lower case, quotes removed, `+tag` folded unless switched off), so spelling
    /// variants of one mailbox share a limit. The per-user limit is keyed on the
    /// user's id; a placeholder user, who has none, is keyed on the address, so both
    /// paths make the same calls.
    fn rate_limited(
        &self,
        user: &User,
        ctx: &Map<String, Value>,
        host: &dyn Host,
    ) -> Result<Option<u64>, StageError> {
        // authentik: a window under one second becomes a TTL of 0 and is never limited;
        // a zero or negative window never holds anything.
        if self.config.window.whole_seconds() < 1 {
            return Ok(None);
        }
        let address = match self.config.rate_limit_key {
            RateLimitKey::Recipient => override_address(ctx)?.unwrap_or_else(|| user.email.clone()),
            RateLimitKey::PendingUserEmail => user.email.clone(),
        };
        let canonical = match EmailAddress::parse(&address) {
            Ok(a) => a.limit_key(self.config.rate_limit_fold_plus_tag),
            Err(_) => address.to_lowercase(),
        };
        let window_ms = self.config.window.as_millis() as u64;
        let now = host.now_ms();
        let key = format!("{RATE_LIMIT_PREFIX}{}", sha256_hex(&canonical));
        let mut decision = host.rate_limit(&key, window_ms, self.config.max_attempts, now)?;
        if let (RateLimit::Allowed, Some(per_user)) = (decision, self.config.per_user_max) {
            let subject = match &user.id {
                Some(id) => format!("id:{id}"),
                None => format!("address:{canonical}"),
            };
            let key = format!("{RATE_LIMIT_PREFIX}user/{}", sha256_hex(&subject));
            decision = host.rate_limit(&key, window_ms, per_user, now)?;
        }
        Ok(match decision {
            RateLimit::Allowed => None,
            RateLimit::Limited { retry_after_ms } => Some(retry_after_ms.div_ceil(60_000).max(1)),
        })
    }

    /// The rate-limit window in whole minutes, at least one.
    fn window_minutes(&self) -> u64 {
        (self.config.window.as_millis().max(0) as u64)
            .div_ceil(60_000)
            .max(1)
    }

    /// Issues a token and queues the mail (authentik's `send_email`).
    fn send_email(
        &self,
        req: &StageRequest<'_>,
        ctx: &Map<String, Value>,
        pending: &User,
        method: &str,
        host: &dyn Host,
    ) -> Result<Sent, StageError> {
        let placeholder = pending.id.is_none();
        if placeholder && req.flow_designation != "recovery" {
            return Err(StageError::Internal(
                "cannot issue a verification link for a user that is not persisted".into(),
            ));
        }
        let address = override_address(ctx)?.unwrap_or_else(|| pending.email.clone());
        let to = match compose::recipient(&pending.name, &address) {
            Ok(to) => to,
            // A placeholder's "address" is whatever was typed; do the same work with a
            // stand-in so the answer does not depend on it.
            Err(_) if placeholder => compose::recipient("", "placeholder@invalid.invalid")
                .map_err(|e| StageError::Internal(e.to_string()))?,
            Err(e) => return Err(StageError::Internal(e.to_string())),
        };
        let now = host.now_ms();
        let key = generate_key(self.config.token_length, |b| host.fill_random(b))?;
        let key_hash = hash_key(&key);
        let expires_ms = now
            .saturating_add(self.config.token_expiry.as_millis())
            .saturating_add(60_000);
        let url = link::build(req.base_url, req.flow_slug, req.query, Some(&key));
        let locale = locale_of(Some(pending), req);
        let brand = Brand::in_context(ctx)?;
        let subject = subject_for(
            self.config.subject.as_deref(),
            &self.config.template,
            locale,
            &brand,
        );
        let rendered = self.templates.render(
            &self.config.template,
            &RenderContext {
                url: &url,
                user: pending,
                expires_ms,
                now_ms: now,
                token: &key,
                subject: &subject,
                brand: &brand,
                locale,
            },
        );
        let (html, text) = match rendered {
            Ok(r) => r,
            Err(e) => {
                self.template_error_event(req, method, &e, host)?;
                return Ok(Sent::TemplateInvalid);
            }
        };
        let from = match &self.config.from_address {
            Some(a) => lettre::message::Mailbox::new(None, a.clone()),
            None => host
                .default_from_address()
                .parse()
                .map_err(|e| StageError::Internal(format!("global from address: {e}")))?,
        };
        let message_id = format!(
            "<{}@{}>",
            random_uuid(host)?.simple(),
            host_of(req.base_url)
        );
        let composed = compose::compose(from, to, &subject, &message_id, html, text)
            .map_err(|e: ComposeError| StageError::Internal(e.to_string()))?;
        // Anti-enumeration: a placeholder user gets the same token and mail, stored
        // the same way, as decoys the host never restores or delivers.
        let user_id = pending.id.clone().unwrap_or_default();
        let mut identifier = slugify(&format!("ak-email-stage-{}-", self.name));
        identifier.truncate(255 - 36);
        identifier.push_str(&random_uuid(host)?.hyphenated().to_string());
        host.create_flow_token(&NewFlowToken {
            key_hash,
            identifier,
            user_id,
            stage_name: self.name.clone(),
            expires_ms,
            intent: "verification".into(),
            revoke_on_execution: false,
            confirm_header: Some(tr(locale, "consent-header")),
            decoy: placeholder,
        })?;
        let queued = host.enqueue_mail(&OutgoingMail {
            message_id: message_id.clone(),
            envelope_from: composed.envelope_from,
            envelope_to: vec![composed.envelope_to],
            to_display: vec![composed.to_display],
            subject,
            raw: composed.raw,
            route: self.config.route.clone(),
            decoy: placeholder,
            locale: locale.to_string(),
        });
        match queued {
            Ok(()) => {}
            // The host's own limit (mails per browser session): the token just stored
            // is inert, since its key went nowhere.
            Err(HostError::Limited(why)) => {
                tracing::info!(target: "email_stage", stage = %self.name, %why, "host refused the mail");
                return Ok(Sent::Limited(self.window_minutes()));
            }
            Err(e) => return Err(e.into()),
        }
        if !placeholder {
            tracing::info!(target: "email_stage", stage = %self.name, %message_id, "verification mail queued");
        }
        Ok(Sent::Queued)
    }

    fn template_error_event(
        &self,
        req: &StageRequest<'_>,
        method: &str,
        error: &RenderError,
        host: &dyn Host,
    ) -> Result<(), StageError> {
        let mut args = Map::new();
        for (k, v) in form_urlencoded::parse(req.query.as_bytes()) {
            let masked = ["api", "token", "key", "secret", "pass", "signature"]
                .iter()
                .any(|s| k.to_lowercase().contains(s));
            let v = if masked {
                "********".into()
            } else {
                v.into_owned()
            };
            args.insert(k.into_owned(), Value::String(v));
        }
        let template = error.template.as_deref().unwrap_or(&self.config.template);
        tracing::warn!(target: "email_stage", template, line = error.line, kind = error.type_name(), "template error");
        host.emit_event(
            "configuration_error",
            &json!({
                "message": MSG_TEMPLATE_ERROR,
                "template": template,
                "line": error.line,
                "exception": { "type": error.type_name(), "message": error.to_string() },
                "http_request": {
                    "path": format!("/api/v3/flows/executor/{}/", req.flow_slug),
                    "method": method,
                    "args": args,
                },
            }),
        )?;
        Ok(())
    }
}

impl Stage for EmailStage {
    fn get(&self, req: &StageRequest<'_>, host: &dyn Host) -> Result<HookResult, StageError> {
        let ctx = req.context()?;
        let Some(pending) = User::pending_in(&ctx)? else {
            tracing::debug!(target: "email_stage", "No pending user");
            return Ok(
                HookResult::new(Outcome::StageInvalid(None)).with_message(Message::error(tr(
                    locale_of(None, req),
                    "msg-no-pending-user",
                ))),
            );
        };
        let locale = locale_of(Some(&pending), req);
        if truthy(ctx.get("email_sent")) {
            return Ok(HookResult::new(Outcome::Challenge(challenge())));
        }
        if self.config.rate_limit_initial_send {
            if let Some(minutes) = self.rate_limited(&pending, &ctx, host)? {
                return Ok(HookResult::new(Outcome::Challenge(challenge()))
                    .with_context("email_sent", Value::Bool(true))
                    .with_message(Message::error(too_many_attempts_in(locale, minutes))));
            }
        }
        match self.send_email(req, &ctx, &pending, "GET", host)? {
            Sent::Queued => Ok(HookResult::new(Outcome::Challenge(challenge()))
                .with_context("email_sent", Value::Bool(true))),
            Sent::Limited(minutes) => Ok(HookResult::new(Outcome::Challenge(challenge()))
                .with_context("email_sent", Value::Bool(true))
                .with_message(Message::error(too_many_attempts_in(locale, minutes)))),
            Sent::TemplateInvalid => Ok(HookResult::new(Outcome::StageInvalid(None))),
        }
    }

    fn challenge_invalid(
        &self,
        req: &StageRequest<'_>,
        _response: &Value,
        host: &dyn Host,
    ) -> Result<HookResult, StageError> {
        let ctx = req.context()?;
        let pending = User::pending_in(&ctx)?;
        // authentik checks the rate limit before the pending user, on the pending user
        // or else the signed-in requester; an anonymous requester has no email.
        let Some(subject_user) = self.pending_or_requester(pending.clone(), req, host)? else {
            return Err(StageError::Internal(
                "no pending user and the requester is anonymous".into(),
            ));
        };
        let locale = locale_of(Some(&subject_user), req);
        if let Some(minutes) = self.rate_limited(&subject_user, &ctx, host)? {
            return Ok(HookResult::new(Outcome::Challenge(post_challenge()))
                .with_message(Message::error(too_many_attempts_in(locale, minutes))));
        }
        let Some(pending) = pending else {
            return Ok(HookResult::new(Outcome::Challenge(post_challenge()))
                .with_message(Message::error(tr(locale, "msg-no-pending-user"))));
        };
        match self.send_email(req, &ctx, &pending, "POST", host)? {
            Sent::Queued => Ok(HookResult::new(Outcome::Challenge(post_challenge()))
                .with_message(Message::success(tr(locale, "msg-sent")))),
            Sent::Limited(minutes) => Ok(HookResult::new(Outcome::Challenge(post_challenge()))
                .with_message(Message::error(too_many_attempts_in(locale, minutes)))),
            Sent::TemplateInvalid => Err(StageError::Internal(
                "template error while rendering the email".into(),
            )),
        }
    }

    fn restore(
        &self,
        req: &StageRequest<'_>,
        token: &FlowToken,
        host: &dyn Host,
    ) -> Result<HookResult, StageError> {
        if !self.config.restore_any_stage && token.stage_name != self.name {
            // Another stage issued this link: this stage still has to verify on its own.
            return self.get(req, host);
        }
        let ctx = req.context()?;
        let user = self.pending_or_requester(User::pending_in(&ctx)?, req, host)?;
        let locale = locale_of(user.as_ref(), req);
        let Some(user_id) = user.and_then(|u| u.id).filter(|id| *id == token.user_id) else {
            tracing::warn!(target: "email_stage", "Flow token for non-matching user, denying request");
            return Ok(HookResult::new(Outcome::StageInvalid(None)));
        };
        if self.config.activate_user_on_success && !host.set_user_active(&user_id, true)? {
            return Err(StageError::Internal(
                "the user of this link no longer exists".into(),
            ));
        }
        if self.config.revoke_previous_tokens {
            let n = host.revoke_flow_tokens(&user_id, &token.stage_name)?;
            tracing::debug!(target: "email_stage", revoked = n, "older links revoked");
        }
        Ok(HookResult::new(Outcome::StageOk)
            .with_message(Message::success(tr(locale, "msg-verified"))))
    }

    fn mail_route(&self) -> Option<MailRoute> {
        Some(self.config.route.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_api::testing::FakeHost;
    use plugin_api::HostError;

    fn jane() -> User {
        User {
            id: Some("7".into()),
            username: "jane".into(),
            name: "Jane Doe".into(),
            email: "jane@example.com".into(),
            is_active: false,
            locale: String::new(),
            attributes: Default::default(),
        }
    }

    fn req(ctx: &str) -> StageRequest<'_> {
        StageRequest {
            flow_slug: "recover",
            flow_designation: "recovery",
            stage_name: "reset",
            query: "next=%2Fapp&flow_token=old",
            base_url: "https://id.example.test",
            locale: "",
            requester_id: None,
            context_json: ctx,
        }
    }

    #[test]
    fn first_send_stores_only_the_hash_and_queues_the_link() {
        let host = FakeHost::new().with_user(jane());
        let stage = EmailStage::new("reset", "{}").unwrap();
        let ctx = json!({"pending_user": jane()}).to_string();
        let r = stage.get(&req(&ctx), &host).unwrap();
        assert_eq!(r.outcome, Outcome::Challenge(challenge()));
        assert_eq!(r.context_set, vec![("email_sent".to_string(), json!(true))]);
        let (tokens, mails) = (host.tokens(), host.mails());
        assert_eq!((tokens.len(), mails.len()), (1, 1));
        // Undo quoted-printable soft breaks and `=3D` to read the link.
        let raw = String::from_utf8(mails[0].raw.clone())
            .unwrap()
            .replace("=\r\n", "")
            .replace("=3D", "=");
        let key: String = raw
            .split("flow_token=")
            .nth(1)
            .unwrap()
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        assert_eq!(key.len(), 60);
        let t = &tokens[0];
        assert_eq!(t.key_hash, hash_key(&key));
        assert_eq!(t.expires_ms, host.now_ms() + 31 * 60_000);
        assert!(t.identifier.starts_with("ak-email-stage-reset-") && t.identifier.len() == 21 + 36);
        assert_eq!(t.confirm_header.as_deref(), Some(CONSENT_HEADER));
        assert!(!t.revoke_on_execution);
        assert_eq!(mails[0].envelope_to, vec!["jane@example.com".to_string()]);
        assert!(
            raw.contains("https://id.example.test/if/flow/recover/?next=%2Fapp&flow_token="),
            "{raw}"
        );
        assert!(
            !format!("{:?}", mails[0]).contains(&key),
            "Debug of a mail hides the body"
        );
    }

    #[test]
    fn restore_checks_the_user_then_activates_and_revokes() {
        let host = FakeHost::new().with_user(jane());
        let stage = EmailStage::new("reset", r#"{"activate_user_on_success": true}"#).unwrap();
        let ctx = json!({"pending_user": jane()}).to_string();
        stage.get(&req(&ctx), &host).unwrap();
        let mut token = FlowToken {
            identifier: "x".into(),
            user_id: "8".into(),
            flow_slug: "recover".into(),
            stage_name: "reset".into(),
            expires_ms: i64::MAX,
            intent: "verification".into(),
        };
        let r = stage.restore(&req(&ctx), &token, &host).unwrap();
        assert_eq!(r.outcome, Outcome::StageInvalid(None));
        assert!(!host.stored_user("7").unwrap().is_active);
        token.user_id = "7".into();
        let r = stage.restore(&req(&ctx), &token, &host).unwrap();
        assert_eq!(r.outcome, Outcome::StageOk);
        assert_eq!(r.messages, vec![Message::success(MSG_VERIFIED)]);
        assert!(host.stored_user("7").unwrap().is_active);
        assert!(host.tokens().is_empty(), "older links revoked");
    }

    #[test]
    fn host_failures_surface_as_host_errors() {
        let host = FakeHost::new();
        host.fail_with(Some(HostError::Unavailable("db down".into())));
        let stage = EmailStage::new("reset", "{}").unwrap();
        let ctx = json!({"pending_user": jane()}).to_string();
        let e = stage.get(&req(&ctx), &host).unwrap_err();
        assert_eq!(
            e,
            StageError::Host(HostError::Unavailable("db down".into()))
        );
    }

    #[test]
    fn slugify_like_django() {
        assert_eq!(
            slugify("ak-email-stage-My Stage!-"),
            "ak-email-stage-my-stage-"
        );
        assert_eq!(slugify("Ünïcode stage"), "ncode-stage");
    }

    #[test]
    fn host_of_base_url() {
        assert_eq!(
            host_of("https://id.example.com:8443/auth"),
            "id.example.com"
        );
        assert_eq!(host_of("http://u@h"), "h");
        assert_eq!(host_of(""), "localhost");
    }

    #[test]
    fn minutes_message() {
        assert_eq!(
            too_many_attempts(1),
            "Too many account verification attempts. Please try again after 1 minutes."
        );
    }

    #[test]
    fn english_catalog_keeps_the_specified_wording() {
        assert_eq!(tr("en", "msg-sent"), MSG_SENT);
        assert_eq!(tr("en", "msg-verified"), MSG_VERIFIED);
        assert_eq!(tr("en", "msg-no-pending-user"), MSG_NO_PENDING_USER);
        assert_eq!(tr("en", "consent-header"), CONSENT_HEADER);
        assert_eq!(
            too_many_attempts_in("de", 1),
            "Zu viele Bestätigungsversuche. Bitte versuchen Sie es in einer Minute erneut."
        );
    }

    #[test]
    fn user_locale_beats_the_request_and_picks_subject_body_and_messages() {
        let de = User {
            locale: "de_AT".into(),
            ..jane()
        };
        let host = FakeHost::new().with_user(de.clone());
        let stage = EmailStage::new("reset", "{}").unwrap();
        let ctx = json!({"pending_user": de, "brand": {"name": "Acme ID"}}).to_string();
        let mut r = req(&ctx);
        r.locale = "fr";
        let got = stage.challenge_invalid(&r, &json!({}), &host).unwrap();
        assert_eq!(got.messages[0].message, "E-Mail erfolgreich gesendet.");
        let mail = &host.mails()[0];
        assert_eq!(mail.subject, "Ihr Acme ID-Passwort zurücksetzen");
        assert_eq!(mail.locale, "de");
        let raw = String::from_utf8(mail.raw.clone()).unwrap();
        assert!(raw.contains("Hallo jane,"), "{raw}");
        // No user locale: the request's; a configured subject is sent as written.
        let stage = EmailStage::new("reset", r#"{"subject": "Fixed"}"#).unwrap();
        let ctx = json!({"pending_user": jane()}).to_string();
        let mut r = req(&ctx);
        r.locale = "fr-CH";
        let got = stage.challenge_invalid(&r, &json!({}), &host).unwrap();
        assert_eq!(got.messages[0].message, "E-mail envoyé avec succès.");
        let mail = &host.mails()[1];
        assert_eq!(
            (mail.subject.as_str(), mail.locale.as_str()),
            ("Fixed", "fr")
        );
    }

    #[test]
    fn truthiness_matches_python() {
        assert!(!truthy(Some(&json!(""))));
        assert!(!truthy(Some(&json!(false))));
        assert!(!truthy(Some(&json!(0))));
        assert!(truthy(Some(&json!("x"))));
        assert!(truthy(Some(&json!(true))));
    }
}
