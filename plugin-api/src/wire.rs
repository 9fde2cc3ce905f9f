//! How host-service arguments and results cross the boundary, written once per
//! *type* (not per service), and the [`host_services!`] macro that turns one
//! declaration per service into everything else.
//!
//! Guest side (the plugin calls the host): an argument is first *held* in an
//! encoding that lives across the call ([`ToWire`]: a `&str` as itself, a JSON type
//! as its text), then *lent* as its FFI type ([`Lend`]). The FFI result is turned
//! back into the Rust result ([`RetFromWire`]), errors into [`HostError`], a
//! service the host's table lacks into [`HostError::Unsupported`].
//!
//! Host side (the host serves the plugin): an FFI argument is decoded into an
//! owned or borrowed value ([`FromWire`]) and passed to the service as its Rust
//! type ([`Pass`]); the Rust result becomes the FFI result ([`RetToWire`]), a
//! decoding error or a panic becoming an error result, never an unwind.

use abi_stable::std_types::{ROption, RResult, RSlice, RSliceMut, RStr, RString};

use crate::abi::{FfiError, FfiMail, FfiRateLimit};
use crate::convert::{host_err_from_ffi, host_err_to_ffi};
use crate::types::{FlowToken, LogLevel, NewFlowToken, OutgoingMail, RateLimit, User};
use crate::HostError;

/// Types that cross the boundary as JSON text (an [`RStr`] argument, an
/// `ROption<RString>` result).
pub trait JsonWire: serde::Serialize + serde::de::DeserializeOwned {}
impl JsonWire for User {}
impl JsonWire for FlowToken {}
impl JsonWire for NewFlowToken {}
impl JsonWire for serde_json::Value {}

fn rejected(what: &str, e: impl std::fmt::Display) -> HostError {
    HostError::Rejected(format!("malformed {what}: {e}"))
}

// ---- guest side: arguments -------------------------------------------------

/// A Rust argument, held in its wire encoding for the length of one call.
pub trait ToWire {
    /// The encoding kept alive during the call.
    type Held;
    /// Encodes the argument.
    fn hold(self) -> Result<Self::Held, HostError>;
}

/// A held encoding lent as the FFI argument type `F`.
pub trait Lend<'a, F> {
    /// The FFI view of the held encoding.
    fn lend(&'a mut self) -> F;
}

impl<'x> ToWire for &'x str {
    type Held = &'x str;
    fn hold(self) -> Result<&'x str, HostError> {
        Ok(self)
    }
}
impl<'a, 'x: 'a> Lend<'a, RStr<'a>> for &'x str {
    fn lend(&'a mut self) -> RStr<'a> {
        RStr::from(*self)
    }
}

impl<T: JsonWire> ToWire for &T {
    type Held = String;
    fn hold(self) -> Result<String, HostError> {
        serde_json::to_string(self).map_err(|e| rejected("argument", e))
    }
}
impl<'a> Lend<'a, RStr<'a>> for String {
    fn lend(&'a mut self) -> RStr<'a> {
        RStr::from(self.as_str())
    }
}

impl<'x> ToWire for &'x mut [u8] {
    type Held = &'x mut [u8];
    fn hold(self) -> Result<&'x mut [u8], HostError> {
        Ok(self)
    }
}
impl<'a, 'x: 'a> Lend<'a, RSliceMut<'a, u8>> for &'x mut [u8] {
    fn lend(&'a mut self) -> RSliceMut<'a, u8> {
        RSliceMut::from(&mut **self)
    }
}

/// A mail held for the call: its metadata as JSON, its bytes borrowed.
pub struct HeldMail<'x> {
    meta_json: String,
    raw: &'x [u8],
}

/// An [`OutgoingMail`]'s JSON without its bytes, written from borrowed fields so
/// the message is not copied to be left out (`raw` is `[]`, as the host expects).
#[derive(serde::Serialize)]
struct MailMeta<'x> {
    message_id: &'x str,
    envelope_from: &'x str,
    envelope_to: &'x [String],
    to_display: &'x [String],
    subject: &'x str,
    raw: [u8; 0],
    route: &'x crate::MailRoute,
    decoy: bool,
    #[serde(skip_serializing_if = "str::is_empty")]
    locale: &'x str,
}

impl<'x> ToWire for &'x OutgoingMail {
    type Held = HeldMail<'x>;
    fn hold(self) -> Result<HeldMail<'x>, HostError> {
        let meta = MailMeta {
            message_id: &self.message_id,
            envelope_from: &self.envelope_from,
            envelope_to: &self.envelope_to,
            to_display: &self.to_display,
            subject: &self.subject,
            raw: [],
            route: &self.route,
            decoy: self.decoy,
            locale: &self.locale,
        };
        Ok(HeldMail {
            meta_json: serde_json::to_string(&meta).map_err(|e| rejected("mail", e))?,
            raw: &self.raw,
        })
    }
}
impl<'a, 'x: 'a> Lend<'a, FfiMail<'a>> for HeldMail<'x> {
    fn lend(&'a mut self) -> FfiMail<'a> {
        FfiMail {
            meta_json: self.meta_json.as_str().into(),
            raw: RSlice::from_slice(self.raw),
        }
    }
}

impl ToWire for LogLevel {
    type Held = u8;
    fn hold(self) -> Result<u8, HostError> {
        Ok(self as u8)
    }
}

macro_rules! copy_wire {
    ($($t:ty),*) => {$(
        impl ToWire for $t {
            type Held = $t;
            fn hold(self) -> Result<$t, HostError> {
                Ok(self)
            }
        }
        impl<'a> Lend<'a, $t> for $t {
            fn lend(&'a mut self) -> $t {
                *self
            }
        }
        impl FromWire<$t> for $t {
            type Owned = $t;
            fn unwire(f: $t) -> Result<$t, HostError> {
                Ok(f)
            }
        }
        impl<'b> Pass<'b, $t> for $t {
            fn pass(&'b mut self) -> $t {
                *self
            }
        }
    )*};
}
copy_wire!(bool, u8, u32, u64, i64);

// ---- host side: arguments --------------------------------------------------

/// A Rust argument type decoded from the FFI type `F`.
pub trait FromWire<F>: Sized {
    /// What decoding gives: the value itself, or an owned value it borrows from.
    type Owned;
    /// Decodes the FFI argument.
    fn unwire(f: F) -> Result<Self::Owned, HostError>;
}

/// A decoded argument passed to the service as the Rust type `A`.
pub trait Pass<'b, A> {
    /// The argument as the service takes it.
    fn pass(&'b mut self) -> A;
}

impl<'a> FromWire<RStr<'a>> for &'a str {
    type Owned = &'a str;
    fn unwire(f: RStr<'a>) -> Result<&'a str, HostError> {
        Ok(f.as_str())
    }
}
impl<'b, 'a: 'b> Pass<'b, &'a str> for &'a str {
    fn pass(&'b mut self) -> &'a str {
        self
    }
}

impl<'a, T: JsonWire> FromWire<RStr<'a>> for &T {
    type Owned = T;
    fn unwire(f: RStr<'a>) -> Result<T, HostError> {
        serde_json::from_str(f.as_str()).map_err(|e| rejected("argument", e))
    }
}
impl<'b, T: JsonWire> Pass<'b, &'b T> for T {
    fn pass(&'b mut self) -> &'b T {
        self
    }
}

impl<'a> FromWire<RSliceMut<'a, u8>> for &mut [u8] {
    type Owned = RSliceMut<'a, u8>;
    fn unwire(f: RSliceMut<'a, u8>) -> Result<RSliceMut<'a, u8>, HostError> {
        Ok(f)
    }
}
impl<'b> Pass<'b, &'b mut [u8]> for RSliceMut<'_, u8> {
    fn pass(&'b mut self) -> &'b mut [u8] {
        self.as_mut_slice()
    }
}

impl<'a> FromWire<FfiMail<'a>> for &OutgoingMail {
    type Owned = OutgoingMail;
    fn unwire(f: FfiMail<'a>) -> Result<OutgoingMail, HostError> {
        let mut mail: OutgoingMail =
            serde_json::from_str(f.meta_json.as_str()).map_err(|e| rejected("mail", e))?;
        mail.raw = f.raw.as_slice().to_vec();
        Ok(mail)
    }
}
impl<'b> Pass<'b, &'b OutgoingMail> for OutgoingMail {
    fn pass(&'b mut self) -> &'b OutgoingMail {
        self
    }
}

impl FromWire<u8> for LogLevel {
    type Owned = LogLevel;
    fn unwire(f: u8) -> Result<LogLevel, HostError> {
        Ok(LogLevel::from_u8(f))
    }
}
impl<'b> Pass<'b, LogLevel> for LogLevel {
    fn pass(&'b mut self) -> LogLevel {
        *self
    }
}

// ---- results ---------------------------------------------------------------

/// A successful value and its FFI form `V`.
pub trait ValWire<V>: Sized {
    /// Host side: encodes the value.
    fn to_wire(self) -> Result<V, HostError>;
    /// Guest side: decodes the value.
    fn from_wire(v: V) -> Result<Self, HostError>;
}

impl<T: JsonWire> ValWire<ROption<RString>> for Option<T> {
    fn to_wire(self) -> Result<ROption<RString>, HostError> {
        self.map(|v| serde_json::to_string(&v).map(RString::from))
            .transpose()
            .map(ROption::from)
            .map_err(|e| rejected("reply", e))
    }
    fn from_wire(v: ROption<RString>) -> Result<Self, HostError> {
        v.into_option()
            .map(|s| serde_json::from_str(&s).map_err(|e| rejected("host reply", e)))
            .transpose()
    }
}

impl ValWire<ROption<RString>> for Option<String> {
    fn to_wire(self) -> Result<ROption<RString>, HostError> {
        Ok(self.map(RString::from).into())
    }
    fn from_wire(v: ROption<RString>) -> Result<Self, HostError> {
        Ok(v.into_option().map(RString::into_string))
    }
}

impl ValWire<RString> for String {
    fn to_wire(self) -> Result<RString, HostError> {
        Ok(self.into())
    }
    fn from_wire(v: RString) -> Result<Self, HostError> {
        Ok(v.into_string())
    }
}

impl ValWire<FfiRateLimit> for RateLimit {
    fn to_wire(self) -> Result<FfiRateLimit, HostError> {
        Ok(match self {
            RateLimit::Allowed => FfiRateLimit {
                limited: false,
                retry_after_ms: 0,
            },
            RateLimit::Limited { retry_after_ms } => FfiRateLimit {
                limited: true,
                retry_after_ms,
            },
        })
    }
    fn from_wire(v: FfiRateLimit) -> Result<Self, HostError> {
        Ok(if v.limited {
            RateLimit::Limited {
                retry_after_ms: v.retry_after_ms,
            }
        } else {
            RateLimit::Allowed
        })
    }
}

macro_rules! copy_val {
    ($($t:ty),*) => {$(
        impl ValWire<$t> for $t {
            fn to_wire(self) -> Result<$t, HostError> {
                Ok(self)
            }
            fn from_wire(v: $t) -> Result<$t, HostError> {
                Ok(v)
            }
        }
    )*};
}
copy_val!((), bool, u64);

/// Host side: a service's Rust result and its FFI form `W`.
pub trait RetToWire<W> {
    /// Encodes a result.
    fn to_wire(self) -> W;
    /// What the plugin gets when decoding an argument failed or the service
    /// panicked: the error for a fallible service, a neutral value otherwise.
    fn failed(e: HostError) -> W;
}

/// Guest side: a service's FFI result turned back into its Rust result.
pub trait RetFromWire<W>: Sized {
    /// Decodes a result.
    fn from_wire(w: W) -> Self;
    /// The result when encoding an argument failed or the host lacks the service.
    fn failed(e: HostError) -> Self;
}

impl<T: ValWire<V>, V> RetToWire<RResult<V, FfiError>> for Result<T, HostError> {
    fn to_wire(self) -> RResult<V, FfiError> {
        match self.and_then(ValWire::to_wire) {
            Ok(v) => RResult::ROk(v),
            Err(e) => RResult::RErr(host_err_to_ffi(&e)),
        }
    }
    fn failed(e: HostError) -> RResult<V, FfiError> {
        RResult::RErr(host_err_to_ffi(&e))
    }
}

impl<T: ValWire<V>, V> RetFromWire<RResult<V, FfiError>> for Result<T, HostError> {
    fn from_wire(w: RResult<V, FfiError>) -> Self {
        w.into_result()
            .map_err(host_err_from_ffi)
            .and_then(ValWire::from_wire)
    }
    fn failed(e: HostError) -> Self {
        Err(e)
    }
}

impl RetToWire<RString> for String {
    fn to_wire(self) -> RString {
        self.into()
    }
    fn failed(_: HostError) -> RString {
        RString::new()
    }
}
impl RetFromWire<RString> for String {
    fn from_wire(w: RString) -> Self {
        w.into_string()
    }
    fn failed(_: HostError) -> Self {
        String::new()
    }
}

macro_rules! infallible_ret {
    ($($t:ty => $neutral:expr),*) => {$(
        impl RetToWire<$t> for $t {
            fn to_wire(self) -> $t {
                self
            }
            fn failed(_: HostError) -> $t {
                $neutral
            }
        }
        impl RetFromWire<$t> for $t {
            fn from_wire(w: $t) -> $t {
                w
            }
            fn failed(_: HostError) -> $t {
                $neutral
            }
        }
    )*};
}
infallible_ret!(() => (), i64 => 0);

/// The host-service interface, declared once.
///
/// From one declaration per service this writes: the [`crate::Host`] trait method,
/// the `#[repr(C)]` [`crate::abi::HostVTable`] field, the guest-side client that
/// calls through the table, the host-side `extern "C"` wrapper that calls a
/// `T: Host` (panics caught), the forwarding `impl Host for &T`, and the test
/// kit's call recorder (`testing::Recording`). Conversions
/// come from the traits of this module, written once per type.
///
/// Each service reads
/// `MODE fn name(arg: RustType => FfiType, …) -> RustResult => FfiResult;`
/// where `MODE` is `prefix` (in the table of every host of this minor version;
/// mark the last one `#[sabi(last_prefix_field)]`) or `appended` (after the
/// prefix: a plugin calling it on a host whose table lacks it gets
/// [`HostError::Unsupported`], or the neutral value for an infallible service).
///
/// Why a declarative macro rather than abi_stable's `#[sabi_trait]`: a sabi trait
/// carries FFI types in its signatures, so a plain `Host` trait and its conversions
/// would still be written by hand beside it; here the wire types are named next to
/// the Rust ones and checked by abi_stable field by field, so a changed service is
/// refused at load time with the field's name, and the plain trait stays the only
/// thing plugin and host authors see.
macro_rules! host_services {
    ($(
        $(#[doc = $doc:literal])*
        $(#[sabi($($sabi:tt)*)])?
        $mode:ident fn $name:ident($($arg:ident: $t:ty => $w:ty),* $(,)?) -> $ret:ty => $wret:ty;
    )*) => {
        /// Host services available to a stage hook.
        ///
        /// A host implements this trait once per request (it knows the running flow
        /// and plan) and lends it to the hook as `&dyn Host`. Plugins never keep it
        /// past the call. Across the FFI boundary the same trait is reached through
        /// [`crate::abi::HostVTable`]; plugin code cannot tell the difference. The
        /// services are declared once, in `plugin-api/src/host.rs`.
        #[allow(clippy::unused_unit)]
        pub trait Host {
            $(
                $(#[doc = $doc])*
                fn $name(&self, $($arg: $t),*) -> $ret;
            )*
        }

        /// The host-services function table (see [`Host`] for the semantics of each).
        ///
        /// Every function receives the `this` pointer of the [`crate::abi::FfiHost`]
        /// it came with. Composite values cross as JSON text. Generated from the
        /// declaration in `plugin-api/src/host.rs`; fields are only ever appended.
        #[repr(C)]
        #[derive(abi_stable::StableAbi)]
        #[sabi(kind(Prefix(prefix_ref = HostVTableRef)))]
        #[sabi(missing_field(option))]
        pub struct HostVTable {
            $(
                $(#[doc = $doc])*
                $(#[sabi($($sabi)*)])?
                pub $name: unsafe extern "C" fn(*const ::std::ffi::c_void, $($w),*) -> $wret,
            )*
        }

        #[allow(clippy::unused_unit)]
        impl<H: Host + ?Sized> Host for &H {
            $(
                fn $name(&self, $($arg: $t),*) -> $ret {
                    (**self).$name($($arg),*)
                }
            )*
        }

        #[cfg(feature = "testing")]
        #[allow(clippy::unused_unit)]
        impl<H: Host> Host for $crate::testing::Recording<H> {
            $(
                fn $name(&self, $($arg: $t),*) -> $ret {
                    self.record(stringify!($name)).$name($($arg),*)
                }
            )*
        }

        /// A [`Host`] backed by a host's function table (the plugin side).
        #[cfg(feature = "guest")]
        pub(crate) struct HostClient<'a> {
            pub(crate) ffi: $crate::abi::FfiHost<'a>,
        }

        #[cfg(feature = "guest")]
        #[allow(clippy::unused_unit)]
        impl Host for HostClient<'_> {
            $(
                fn $name(&self, $($arg: $t),*) -> $ret {
                    #[allow(unused_imports)]
                    use $crate::wire::{Lend, RetFromWire, ToWire};
                    let Some(f) = host_services!(@field $mode, self.ffi.vtable, $name) else {
                        return <$ret as RetFromWire<$wret>>::failed(HostError::Unsupported(
                            concat!("this host has no '", stringify!($name), "' service").into(),
                        ));
                    };
                    $(
                        let mut $arg = match ToWire::hold($arg) {
                            Ok(h) => h,
                            Err(e) => return <$ret as RetFromWire<$wret>>::failed(e),
                        };
                    )*
                    // SAFETY: `this` and the table come together from the host for
                    // this call, and every argument outlives it.
                    let w = unsafe { f(self.ffi.this, $(Lend::lend(&mut $arg)),*) };
                    <$ret as RetFromWire<$wret>>::from_wire(w)
                }
            )*
        }

        /// The host-side wrappers of a `T: Host` (the loader side).
        #[cfg(feature = "host")]
        pub(crate) struct VTableFor<T>(::std::marker::PhantomData<T>);

        #[cfg(feature = "host")]
        impl<T: Host> VTableFor<T> {
            $(
                #[allow(clippy::unused_unit)]
                unsafe extern "C" fn $name(p: *const ::std::ffi::c_void, $($arg: $w),*) -> $wret {
                    #[allow(unused_imports)]
                    use $crate::wire::{FromWire, Pass, RetToWire};
                    let call = ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(
                        || -> Result<$ret, HostError> {
                            $(let mut $arg = <$t as FromWire<$w>>::unwire($arg)?;)*
                            // SAFETY: `p` comes from FfiHost::new::<T> and lives
                            // for the call.
                            let host = unsafe { &*(p as *const T) };
                            Ok(host.$name($(Pass::pass(&mut $arg)),*))
                        },
                    ));
                    match call {
                        Ok(Ok(r)) => <$ret as RetToWire<$wret>>::to_wire(r),
                        Ok(Err(e)) => <$ret as RetToWire<$wret>>::failed(e),
                        Err(p) => <$ret as RetToWire<$wret>>::failed(HostError::Panicked(
                            $crate::convert::panic_text(&*p),
                        )),
                    }
                }
            )*

            const WM: &'static abi_stable::prefix_type::WithMetadata<HostVTable> =
                &abi_stable::prefix_type::WithMetadata::new(HostVTable {
                    $($name: Self::$name,)*
                });
            /// The table lent with every `T` host.
            pub(crate) const VTABLE: HostVTableRef = HostVTableRef(Self::WM.static_as_prefix());
        }
    };
    (@field prefix, $vt:expr, $name:ident) => {
        Some($vt.$name())
    };
    (@field appended, $vt:expr, $name:ident) => {
        $vt.$name()
    };
}

pub(crate) use host_services;

#[cfg(test)]
mod tests {
    use super::ToWire;
    use crate::{MailRoute, OutgoingMail};

    #[test]
    fn mail_meta_is_the_mail_without_its_bytes() {
        let mail = OutgoingMail {
            message_id: "<1@x>".into(),
            envelope_from: "a@b.c".into(),
            envelope_to: vec!["d@e.f".into()],
            to_display: vec!["D <d@e.f>".into()],
            subject: "s".into(),
            raw: b"the message".to_vec(),
            route: MailRoute::Global,
            decoy: true,
            locale: "de".into(),
        };
        let held = (&mail).hold().unwrap();
        let owned = OutgoingMail {
            raw: Vec::new(),
            ..mail.clone()
        };
        assert_eq!(held.meta_json, serde_json::to_string(&owned).unwrap());
    }
}
