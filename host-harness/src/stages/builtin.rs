//! The host's own stages, enough for enrollment, recovery and email change:
//! identification, prompt, user write, context from prompt, user login.

use plugin_api::address::EmailAddress;
use plugin_api::{HookResult, Message, Outcome, StageError, User};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::storage::{Identity, NewUser, Store, StoreError};

/// A prompt field.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// Key in `prompt_data`.
    pub field_key: String,
    /// Label shown.
    #[serde(default)]
    pub label: String,
    /// `text`, `email`, `username`, `password`.
    #[serde(rename = "type", default = "text")]
    pub kind: String,
    /// Whether a value is required.
    #[serde(default = "yes")]
    pub required: bool,
}

fn text() -> String {
    "text".into()
}
fn yes() -> bool {
    true
}

/// A built-in stage with its configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Builtin {
    /// Asks for a username or email and sets `pending_user`.
    Identification {
        /// Unknown identifiers give a placeholder user (authentik's "pretend user exists").
        pretend_user_exists: bool,
    },
    /// Asks for fields and stores them in `prompt_data`.
    Prompt {
        /// The fields.
        fields: Vec<Field>,
    },
    /// Creates the pending user from `prompt_data`, or updates email / password of an
    /// existing one.
    UserWrite {
        /// New users start inactive.
        create_users_as_inactive: bool,
    },
    /// Copies `prompt_data` keys into context keys (authentik does this with an
    /// expression policy, e.g. `email` for the email stage's override).
    ContextFromPrompt {
        /// `(prompt_data key, context key)` pairs.
        map: Vec<(String, String)>,
    },
    /// Signs the pending user in.
    UserLogin,
}

/// Names of the built-in kinds.
pub const KINDS: &[&str] = &[
    "identification",
    "prompt",
    "user_write",
    "context_from_prompt",
    "user_login",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentCfg {
    #[serde(default = "yes")]
    pretend_user_exists: bool,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptCfg {
    fields: Vec<Field>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteCfg {
    #[serde(default)]
    create_users_as_inactive: bool,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapCfg {
    map: std::collections::BTreeMap<String, String>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

fn cfg<T: serde::de::DeserializeOwned>(kind: &str, v: &Value) -> Result<T, StageError> {
    let v = if v.is_null() { json!({}) } else { v.clone() };
    serde_json::from_value(v).map_err(|e| StageError::Config(format!("{kind}: {e}")))
}

impl Builtin {
    /// Builds a built-in stage; `None` if `kind` is not built in.
    pub fn from_config(kind: &str, config: &Value) -> Option<Result<Self, StageError>> {
        Some(match kind {
            "identification" => cfg::<IdentCfg>(kind, config).map(|c| Self::Identification {
                pretend_user_exists: c.pretend_user_exists,
            }),
            "prompt" => cfg::<PromptCfg>(kind, config).and_then(|c| {
                if c.fields.iter().any(|f| f.field_key == PASSWORD_HASH_KEY) {
                    return Err(StageError::Config(format!(
                        "prompt: field_key '{PASSWORD_HASH_KEY}' is reserved"
                    )));
                }
                Ok(Self::Prompt { fields: c.fields })
            }),
            "user_write" => cfg::<WriteCfg>(kind, config).map(|c| Self::UserWrite {
                create_users_as_inactive: c.create_users_as_inactive,
            }),
            "context_from_prompt" => cfg::<MapCfg>(kind, config).map(|c| Self::ContextFromPrompt {
                map: c.map.into_iter().collect(),
            }),
            "user_login" => cfg::<Empty>(kind, config).map(|_| Self::UserLogin),
            _ => return None,
        })
    }

    /// The challenge of a GET, or the result of stages that need no input.
    pub fn get(
        &self,
        ctx: &mut Map<String, Value>,
        store: &dyn Store,
        login: &mut Option<String>,
    ) -> Result<HookResult, StageError> {
        match self {
            Self::Identification { .. } => Ok(challenge(json!({
                "component": "ak-stage-identification",
                "user_fields": ["username", "email"],
                "primary_action": "Continue",
            }))),
            Self::Prompt { fields } => Ok(challenge(prompt_challenge(fields))),
            Self::UserWrite {
                create_users_as_inactive,
            } => user_write(ctx, store, *create_users_as_inactive),
            Self::ContextFromPrompt { map } => {
                let data = ctx.get("prompt_data").cloned().unwrap_or(json!({}));
                for (from, to) in map {
                    if let Some(v) = data.get(from) {
                        ctx.insert(to.clone(), v.clone());
                    }
                }
                Ok(HookResult::new(Outcome::StageOk))
            }
            Self::UserLogin => {
                let id = User::pending_in(ctx)?.and_then(|u| u.id);
                let user = match id {
                    Some(id) => store.user(&id).map_err(host)?,
                    None => None,
                };
                match user {
                    Some(u) if u.is_active => {
                        *login = u.id;
                        Ok(HookResult::new(Outcome::StageOk)
                            .with_message(Message::success("Successfully logged in!")))
                    }
                    Some(_) => Ok(HookResult::new(Outcome::StageInvalid(Some(
                        "User is not active.".into(),
                    )))),
                    None => Ok(HookResult::new(Outcome::StageInvalid(None))),
                }
            }
        }
    }

    /// A challenge response.
    pub fn post(
        &self,
        body: &Value,
        ctx: &mut Map<String, Value>,
        store: &dyn Store,
        login: &mut Option<String>,
    ) -> Result<HookResult, StageError> {
        match self {
            Self::Identification {
                pretend_user_exists,
            } => identify(body, ctx, store, *pretend_user_exists),
            Self::Prompt { fields } => prompt(fields, body, ctx),
            // Stages without input treat a POST like a GET.
            other => other.get(ctx, store, login),
        }
    }
}

/// Identification: finds the user by username or email (or pretends, when
/// configured, so an unknown address looks the same).
fn identify(
    body: &Value,
    ctx: &mut Map<String, Value>,
    store: &dyn Store,
    pretend_user_exists: bool,
) -> Result<HookResult, StageError> {
    let uid = body
        .get("uid_field")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    if uid.is_empty() || uid.len() > 254 {
        return Ok(invalid(
            json!({"component": "ak-stage-identification", "user_fields": ["username", "email"]}),
            "uid_field",
            "This field is required.",
        ));
    }
    let user = match store.find_user(uid).map_err(host)? {
        Some(u) => u,
        None if pretend_user_exists => User {
            id: None,
            username: uid.to_string(),
            email: uid.to_string(),
            ..Default::default()
        },
        None => {
            return Ok(invalid(
                json!({"component": "ak-stage-identification", "user_fields": ["username", "email"]}),
                "non_field_errors",
                "Failed to authenticate.",
            ))
        }
    };
    ctx.insert("pending_user_identifier".into(), json!(uid));
    ctx.insert("pending_user".into(), to_json(&user));
    Ok(HookResult::new(Outcome::StageOk))
}

/// Prompt: checks every field, keeps the answers (a password only as its hash).
fn prompt(
    fields: &[Field],
    body: &Value,
    ctx: &mut Map<String, Value>,
) -> Result<HookResult, StageError> {
    let mut data = prompt_data(ctx);
    let mut errors = Map::new();
    for f in fields {
        let v = body.get(&f.field_key).and_then(Value::as_str).unwrap_or("");
        let err = field_error(f, v);
        match err {
            Some(e) => {
                errors.insert(
                    f.field_key.clone(),
                    json!([{"string": e, "code": "invalid"}]),
                );
            }
            None => {
                data.insert(f.field_key.clone(), json!(v));
            }
        }
    }
    if errors.is_empty()
        && data.contains_key("password_repeat")
        && data.get("password") != data.get("password_repeat")
    {
        errors.insert(
            "password_repeat".into(),
            json!([{"string": "Passwords don't match.", "code": "invalid"}]),
        );
    }
    if !errors.is_empty() {
        let mut c = prompt_challenge(fields);
        c["response_errors"] = Value::Object(errors);
        return Ok(challenge(c));
    }
    seal_password(&mut data)?;
    ctx.insert("prompt_data".into(), Value::Object(data));
    Ok(HookResult::new(Outcome::StageOk))
}

/// The answers prompts have collected so far in this flow.
fn prompt_data(ctx: &Map<String, Value>) -> Map<String, Value> {
    ctx.get("prompt_data")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Where a prompt keeps the Argon2id hash of the password it asked for.
const PASSWORD_HASH_KEY: &str = "password_hash";

/// Replaces a prompted password by its hash at once: the plaintext never reaches
/// the plan context, so never a stored session or a token's plan snapshot.
fn seal_password(data: &mut Map<String, Value>) -> Result<(), StageError> {
    let password = data.get("password").and_then(Value::as_str).unwrap_or("");
    if !password.is_empty() {
        let hash = hash_password(password)?;
        data.insert(PASSWORD_HASH_KEY.into(), Value::String(hash));
    }
    data.retain(|k, _| k == PASSWORD_HASH_KEY || !k.starts_with("password"));
    Ok(())
}

/// Longest username accepted (Django's limit).
const MAX_USERNAME: usize = 150;

/// Why a prompt value is refused, if it is: the checks run before anything is
/// written, and an email field follows the mailer's own rules
/// ([`plugin_api::address`]), so no account is created that can never be mailed.
fn field_error(f: &Field, v: &str) -> Option<&'static str> {
    if v.len() > 1024 {
        return Some("Ensure this field has no more than 1024 characters.");
    }
    if f.required && v.trim().is_empty() {
        return Some("This field is required.");
    }
    // A password may hold anything printable; nothing else may hold control
    // characters (NUL, line breaks).
    if f.kind != "password" && v.chars().any(char::is_control) {
        return Some("Enter a value without control characters.");
    }
    match f.kind.as_str() {
        "email" if !v.is_empty() && EmailAddress::parse(v).is_err() => {
            Some("Enter a valid email address.")
        }
        "username" if v.chars().any(char::is_whitespace) || v.chars().count() > MAX_USERNAME => {
            Some("Enter a valid username.")
        }
        _ => None,
    }
}

fn challenge(v: Value) -> HookResult {
    HookResult::new(Outcome::Challenge(v))
}

fn invalid(mut c: Value, field: &str, msg: &str) -> HookResult {
    c["response_errors"] = json!({ field: [{"string": msg, "code": "invalid"}] });
    challenge(c)
}

fn prompt_challenge(fields: &[Field]) -> Value {
    let fields: Vec<Value> = fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            json!({"field_key": f.field_key, "label": f.label, "type": f.kind, "required": f.required, "order": i})
        })
        .collect();
    json!({"component": "ak-stage-prompt", "fields": fields})
}

fn host(e: StoreError) -> StageError {
    StageError::Host(super::host::store_error(e))
}

fn to_json(u: &User) -> Value {
    serde_json::to_value(u).unwrap_or(Value::Null)
}

/// A username or email that would shadow another account's email or username.
fn identity_taken(field: Identity) -> HookResult {
    let message = match field {
        Identity::Username => "This username cannot be used.",
        Identity::Email => "This email address cannot be used.",
    };
    HookResult::new(Outcome::StageInvalid(Some(message.into())))
}

/// Hashes a password with Argon2id (PHC string).
pub fn hash_password(password: &str) -> Result<String, StageError> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| StageError::Internal(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| StageError::Internal(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| StageError::Internal(e.to_string()))
}

/// Checks a password against a PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A user written, or the answer the stage gives instead (a clash, a vanished user).
type Written = Result<User, HookResult>;

/// Updates the pending user's email (when given) and password hash (when given).
fn update_user(
    store: &dyn Store,
    id: &str,
    email: &str,
    hash: Option<&str>,
) -> Result<Written, StageError> {
    if !email.is_empty() {
        match store.set_email(id, email) {
            Ok(_) => {}
            Err(StoreError::IdentityClash { field, .. }) => return Ok(Err(identity_taken(field))),
            Err(e) => return Err(host(e)),
        }
    }
    if let Some(h) = hash {
        store.set_password_hash(id, h).map_err(host)?;
    }
    Ok(store
        .user(id)
        .map_err(host)?
        .ok_or_else(|| HookResult::new(Outcome::StageInvalid(None))))
}

/// Creates the user the prompt described.
fn create_user(store: &dyn Store, new: NewUser) -> Result<Written, StageError> {
    if new.username.is_empty() {
        return Ok(Err(HookResult::new(Outcome::StageInvalid(Some(
            "No user data to write.".into(),
        )))));
    }
    match store.create_user(&new) {
        Ok(u) => Ok(Ok(u)),
        Err(StoreError::Conflict(_)) => Ok(Err(HookResult::new(Outcome::StageInvalid(Some(
            "Username is already taken.".into(),
        ))))),
        Err(StoreError::IdentityClash { field, .. }) => Ok(Err(identity_taken(field))),
        Err(e) => Err(host(e)),
    }
}

fn user_write(
    ctx: &mut Map<String, Value>,
    store: &dyn Store,
    inactive: bool,
) -> Result<HookResult, StageError> {
    let mut data = prompt_data(ctx);
    let get = |k: &str| {
        data.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    // The prompt stored a hash; a plaintext value (a context from elsewhere) is
    // hashed here.
    let hash = match (get(PASSWORD_HASH_KEY), get("password")) {
        (h, _) if h.starts_with("$argon2") => Some(h),
        (_, p) if !p.is_empty() => Some(hash_password(&p)?),
        _ => None,
    };
    let user = match User::pending_in(ctx)?.and_then(|u| u.id) {
        Some(id) => update_user(store, &id, &get("email"), hash.as_deref())?,
        None => create_user(
            store,
            NewUser {
                username: get("username"),
                name: get("name"),
                email: get("email"),
                is_active: !inactive,
                password_hash: hash,
                // A prompt field `locale` (as authentik's `settings.locale`), if valid.
                locale: Some(get("locale"))
                    .filter(|l| crate::i18n::valid_tag(l))
                    .unwrap_or_default(),
            },
        )?,
    };
    let user = match user {
        Ok(u) => u,
        Err(answer) => return Ok(answer),
    };
    // Written secrets leave the plan, so later token snapshots never carry them.
    data.retain(|k, _| !k.starts_with("password"));
    ctx.insert("prompt_data".into(), Value::Object(data));
    ctx.insert("pending_user".into(), to_json(&user));
    Ok(HookResult::new(Outcome::StageOk))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::MemoryStore;

    #[test]
    fn prompt_validates_and_user_write_creates_inactive_users() {
        let store = MemoryStore::new();
        let p = Builtin::from_config(
            "prompt",
            &json!({"fields": [
                {"field_key": "username", "type": "username"},
                {"field_key": "email", "type": "email"},
                {"field_key": "password", "type": "password"},
                {"field_key": "password_repeat", "type": "password"}
            ]}),
        )
        .unwrap()
        .unwrap();
        let mut ctx = Map::new();
        let mut login = None;
        let r = p
            .post(
                &json!({"username": "a b", "email": "x", "password": "p", "password_repeat": "p"}),
                &mut ctx,
                &store,
                &mut login,
            )
            .unwrap();
        let Outcome::Challenge(c) = r.outcome else {
            panic!()
        };
        assert!(c["response_errors"]["username"].is_array());
        assert!(c["response_errors"]["email"].is_array());
        let r = p
            .post(&json!({"username": "ab", "email": "a@b.c", "password": "p", "password_repeat": "q"}), &mut ctx, &store, &mut login)
            .unwrap();
        let Outcome::Challenge(c) = r.outcome else {
            panic!()
        };
        assert!(c["response_errors"]["password_repeat"].is_array());
        let r = p
            .post(&json!({"username": "ab", "email": "a@b.c", "password": "p", "password_repeat": "p"}), &mut ctx, &store, &mut login)
            .unwrap();
        assert_eq!(r.outcome, Outcome::StageOk);

        let w = Builtin::from_config("user_write", &json!({"create_users_as_inactive": true}))
            .unwrap()
            .unwrap();
        assert_eq!(
            w.get(&mut ctx, &store, &mut login).unwrap().outcome,
            Outcome::StageOk
        );
        let u = store.find_user("ab").unwrap().unwrap();
        assert!(!u.is_active);
        assert!(verify_password(
            "p",
            &store
                .password_hash(u.id.as_deref().unwrap())
                .unwrap()
                .unwrap()
        ));
        assert!(
            ctx["prompt_data"].get("password").is_none(),
            "secrets leave the plan"
        );

        let l = Builtin::from_config("user_login", &Value::Null)
            .unwrap()
            .unwrap();
        assert_eq!(
            l.get(&mut ctx, &store, &mut login).unwrap().outcome,
            Outcome::StageInvalid(Some("User is not active.".into()))
        );
        assert!(Builtin::from_config("prompt", &json!({"feilds": []}))
            .unwrap()
            .is_err());
        assert!(Builtin::from_config("nope", &Value::Null).is_none());
    }
}
