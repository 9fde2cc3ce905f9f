//! Conversions between the plain types and their wire forms.

use abi_stable::std_types::{ROption, RStr, RString, Tuple2};

use crate::abi::{FfiError, FfiHookResult, FfiMessage, FfiOutcomeKind, FfiRequest};
use crate::types::{HookResult, Message, MessageLevel, Outcome, StageRequest};
use crate::{HostError, StageError};

pub(crate) fn stage_err_to_ffi(e: &StageError) -> FfiError {
    FfiError {
        code: e.code(),
        detail: e.detail().into(),
    }
}

pub(crate) fn stage_err_from_ffi(e: FfiError) -> StageError {
    StageError::from_code(e.code, e.detail.into_string())
}

pub(crate) fn host_err_to_ffi(e: &HostError) -> FfiError {
    FfiError {
        code: e.code(),
        detail: e.detail().into(),
    }
}

pub(crate) fn host_err_from_ffi(e: FfiError) -> HostError {
    HostError::from_code(e.code, e.detail.into_string())
}

pub(crate) fn request_to_ffi<'a>(r: &StageRequest<'a>) -> FfiRequest<'a> {
    FfiRequest {
        flow_slug: r.flow_slug.into(),
        flow_designation: r.flow_designation.into(),
        stage_name: r.stage_name.into(),
        query: r.query.into(),
        base_url: r.base_url.into(),
        locale: r.locale.into(),
        requester_id: r.requester_id.map(RStr::from).into(),
        context_json: r.context_json.into(),
    }
}

pub(crate) fn request_from_ffi<'a>(r: &FfiRequest<'a>) -> StageRequest<'a> {
    StageRequest {
        flow_slug: r.flow_slug.as_str(),
        flow_designation: r.flow_designation.as_str(),
        stage_name: r.stage_name.as_str(),
        query: r.query.as_str(),
        base_url: r.base_url.as_str(),
        locale: r.locale.as_str(),
        requester_id: r.requester_id.map(|s| s.as_str()).into_option(),
        context_json: r.context_json.as_str(),
    }
}

fn level_to_u8(l: MessageLevel) -> u8 {
    match l {
        MessageLevel::Success => 0,
        MessageLevel::Error => 1,
        MessageLevel::Info => 2,
        MessageLevel::Warning => 3,
    }
}

fn level_from_u8(l: u8) -> MessageLevel {
    match l {
        0 => MessageLevel::Success,
        1 => MessageLevel::Error,
        3 => MessageLevel::Warning,
        _ => MessageLevel::Info,
    }
}

/// A JSON value as text, written straight into a byte buffer: `Value`'s `Display`
/// goes through `fmt::Formatter` per fragment, which made serialising a hook's
/// challenge a fifth of the crossing's cost (BENCHMARKS.md, "Instructions per
/// crossing"). A `Value` always serialises (its keys are strings).
pub(crate) fn json_text(v: &serde_json::Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

pub(crate) fn result_to_ffi(r: HookResult) -> FfiHookResult {
    let (kind, challenge_json, invalid_message) = match r.outcome {
        Outcome::Challenge(v) => (FfiOutcomeKind::Challenge, json_text(&v), ROption::RNone),
        Outcome::StageOk => (FfiOutcomeKind::StageOk, String::new(), ROption::RNone),
        Outcome::StageInvalid(m) => (
            FfiOutcomeKind::StageInvalid,
            String::new(),
            m.map(RString::from).into(),
        ),
    };
    FfiHookResult {
        kind,
        challenge_json: challenge_json.into(),
        invalid_message,
        context_set: r
            .context_set
            .into_iter()
            .map(|(k, v)| Tuple2(RString::from(k), RString::from(json_text(&v))))
            .collect(),
        messages: r
            .messages
            .into_iter()
            .map(|m| FfiMessage {
                level: level_to_u8(m.level),
                message: m.message.into(),
            })
            .collect(),
    }
}

fn parse_json(text: &str, what: &str) -> Result<serde_json::Value, StageError> {
    serde_json::from_str(text)
        .map_err(|e| StageError::Internal(format!("plugin returned malformed {what}: {e}")))
}

pub(crate) fn result_from_ffi(r: FfiHookResult) -> Result<HookResult, StageError> {
    let outcome = match r.kind {
        FfiOutcomeKind::Challenge => {
            Outcome::Challenge(parse_json(&r.challenge_json, "challenge")?)
        }
        FfiOutcomeKind::StageOk => Outcome::StageOk,
        FfiOutcomeKind::StageInvalid => {
            Outcome::StageInvalid(r.invalid_message.map(RString::into_string).into_option())
        }
    };
    let mut context_set = Vec::with_capacity(r.context_set.len());
    for Tuple2(k, v) in r.context_set {
        context_set.push((k.into_string(), parse_json(&v, "context value")?));
    }
    Ok(HookResult {
        outcome,
        context_set,
        messages: r
            .messages
            .into_iter()
            .map(|m| Message {
                level: level_from_u8(m.level),
                message: m.message.into_string(),
            })
            .collect(),
    })
}

/// Best-effort text of a caught panic payload.
pub(crate) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
