//! Typed payloads (spec/payloads.md): one payload decodes to the same values whether it
//! came as MessagePack or as JSON, and in whichever SDK reads it — or fails with
//! [`PayloadError`], which a handler's `?` reports as a permanent `invalid_argument`.
//!
//! Declare payloads as plain serde structs:
//!
//! ```
//! use std::collections::HashMap;
//! use serde::{Deserialize, Serialize};
//! use crosswire::payload::{self, Timestamp};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Order {
//!     order_id: i64,                            // required; the type gives the range
//!     note: Option<String>,                     // optional: absent or null -> None
//!     #[serde(default)]
//!     tags: HashMap<String, String>,            // defaulted: absent -> empty (null refused)
//!     paid_at: Option<Timestamp>,               // MessagePack timestamp / RFC 3339
//!     #[serde(default, with = "crosswire::payload::bytes")]
//!     blob: Vec<u8>,                            // MessagePack bin / base64 in JSON
//! }
//!
//! let json = br#"{"order_id": 7, "paid_at": "2026-11-28T10:00:00+02:00", "blob": "AP8=", "new_field": 1}"#;
//! let order: Order = payload::from_json(json)?;
//! assert_eq!(order.paid_at.unwrap().to_string(), "2026-11-28T08:00:00Z");
//! assert_eq!(order.blob, vec![0x00, 0xff]);
//!
//! let again: Order = payload::from_msgpack(&payload::to_msgpack(&order)?)?;
//! assert_eq!((again.order_id, again.blob), (7, vec![0x00, 0xff]));
//! # Ok::<(), crosswire::PayloadError>(())
//! ```
//!
//! Both decoders apply the same rules beyond serde's defaults: a struct must be a map
//! (serde alone also takes a list of its fields in order), map keys that name fields
//! must be strings, and nothing may follow the value. Unknown fields are ignored;
//! a missing required field, a wrong type (also `2.0` for an integer) and an integer
//! outside the field's range are errors. Nesting is limited to [`MAX_NESTING`] levels.
//! [`Event::decode`](crate::Event::decode) picks the decoder by `datacontenttype`.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::PayloadError;

/// Deepest nesting of a payload, in both formats (serde_json's own default).
pub const MAX_NESTING: usize = 128;

/// Decode MessagePack `data` into `T` under the rules of spec/payloads.md.
///
/// # Errors
/// [`PayloadError::Msgpack`] when the bytes are not a `T`,
/// [`PayloadError::TrailingBytes`] when something follows it.
pub fn from_msgpack<T: DeserializeOwned>(data: &[u8]) -> Result<T, PayloadError> {
    let mut rest = data;
    let mut de = rmp_serde::Deserializer::new(&mut rest);
    de.set_max_depth(MAX_NESTING);
    let value = T::deserialize(Strict::new(&mut de))?;
    if !rest.is_empty() {
        return Err(PayloadError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Decode UTF-8 JSON `data` into `T` under the rules of spec/payloads.md.
///
/// # Errors
/// [`PayloadError::Json`] when the text is not JSON, not a `T`, or has trailing text.
pub fn from_json<T: DeserializeOwned>(data: &[u8]) -> Result<T, PayloadError> {
    let mut de = serde_json::Deserializer::from_slice(data);
    let value = T::deserialize(Strict::new(&mut de))?;
    de.end()?;
    Ok(value)
}

/// `value` as MessagePack, structs as maps of their field names (what
/// [`Event::new`](crate::Event::new) writes).
///
/// # Errors
/// [`PayloadError::MsgpackEncode`] when `value` cannot be serialised.
pub fn to_msgpack<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, PayloadError> {
    Ok(rmp_serde::to_vec_named(value)?)
}

/// `value` as compact JSON.
///
/// # Errors
/// [`PayloadError::JsonEncode`] when `value` cannot be serialised.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, PayloadError> {
    serde_json::to_vec(value).map_err(PayloadError::JsonEncode)
}

// ---------------------------------------------------------------------------------------
// The stricter deserializer: forwards everything to the format's deserializer, wrapping
// every nested deserializer, visitor and access, and refuses what serde accepts beyond
// spec/payloads.md (a sequence for a struct, a non-string key naming a field).

/// What the wrapped visitor expects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Any,
    /// A struct: a map only.
    Struct,
    /// A field or variant name: a string only.
    Name,
}

struct Strict<D> {
    inner: D,
}

impl<D> Strict<D> {
    fn new(inner: D) -> Self {
        Strict { inner }
    }
}

struct Visit<V> {
    inner: V,
    mode: Mode,
}

fn visit<V>(inner: V) -> Visit<V> {
    Visit {
        inner,
        mode: Mode::Any,
    }
}

struct Access<A>(A);

struct Seed<S>(S);

macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
                self.inner.$method($($arg,)* visit(visitor))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any();
        deserialize_bool();
        deserialize_i8();
        deserialize_i16();
        deserialize_i32();
        deserialize_i64();
        deserialize_i128();
        deserialize_u8();
        deserialize_u16();
        deserialize_u32();
        deserialize_u64();
        deserialize_u128();
        deserialize_f32();
        deserialize_f64();
        deserialize_char();
        deserialize_str();
        deserialize_string();
        deserialize_bytes();
        deserialize_byte_buf();
        deserialize_option();
        deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_ignored_any();
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        let visitor = Visit {
            inner: visitor,
            mode: Mode::Struct,
        };
        self.inner.deserialize_struct(name, fields, visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        let visitor = Visit {
            inner: visitor,
            mode: Mode::Name,
        };
        self.inner.deserialize_identifier(visitor)
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

macro_rules! name_refuses {
    ($($method:ident($ty:ty) => $unexpected:expr;)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<V::Value, E> {
                if self.mode == Mode::Name {
                    #[allow(clippy::redundant_closure_call)]
                    return Err(E::invalid_type(($unexpected)(v), &"a string key"));
                }
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Visit<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i128(i128);
        visit_u128(u128);
        visit_f32(f32);
        visit_f64(f64);
        visit_char(char);
        visit_str(&str);
        visit_borrowed_str(&'de str);
        visit_string(String);
    }

    name_refuses! {
        visit_i8(i8) => |v: i8| Unexpected::Signed(v.into());
        visit_i16(i16) => |v: i16| Unexpected::Signed(v.into());
        visit_i32(i32) => |v: i32| Unexpected::Signed(v.into());
        visit_i64(i64) => Unexpected::Signed;
        visit_u8(u8) => |v: u8| Unexpected::Unsigned(v.into());
        visit_u16(u16) => |v: u16| Unexpected::Unsigned(v.into());
        visit_u32(u32) => |v: u32| Unexpected::Unsigned(v.into());
        visit_u64(u64) => Unexpected::Unsigned;
        visit_bytes(&[u8]) => Unexpected::Bytes;
        visit_borrowed_bytes(&'de [u8]) => Unexpected::Bytes;
        visit_byte_buf(Vec<u8>) => |v: Vec<u8>| { let _ = v; Unexpected::Other("bytes") };
    }

    fn visit_none<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<V::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        self.inner.visit_some(Strict::new(d))
    }

    fn visit_newtype_struct<D2: Deserializer<'de>>(self, d: D2) -> Result<V::Value, D2::Error> {
        self.inner.visit_newtype_struct(Strict::new(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        if self.mode == Mode::Struct {
            return Err(de::Error::invalid_type(Unexpected::Seq, &self));
        }
        self.inner.visit_seq(Access(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.inner.visit_map(Access(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.inner.visit_enum(Access(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(Strict::new(d))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Access<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Access<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Seed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Access<A> {
    type Error = A::Error;
    type Variant = Access<A::Variant>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(Seed(seed))?;
        Ok((value, Access(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Access<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, visit(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        let visitor = Visit {
            inner: visitor,
            mode: Mode::Struct,
        };
        self.0.struct_variant(fields, visitor)
    }
}

// ---------------------------------------------------------------------------------------
// Bytes

/// `#[serde(with = "crosswire::payload::bytes")]` for a `Vec<u8>` field: MessagePack
/// `bin`, or in JSON a string of standard base64 with padding. A MessagePack `str`, a
/// list of integers, or unpadded / URL-safe base64 is refused. Add `default` to the
/// attribute for a field that may be absent.
pub mod bytes {
    use std::fmt;

    use base64::engine::general_purpose::STANDARD as B64;
    use base64::Engine as _;
    use serde::de::{self, Deserializer, Visitor};
    use serde::Serializer;

    /// Serialise as `bin` (binary formats) or padded base64 (JSON).
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: Serializer>(value: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&B64.encode(value))
        } else {
            serializer.serialize_bytes(value)
        }
    }

    /// Deserialise from `bin` (binary formats) or padded base64 (JSON).
    ///
    /// # Errors
    /// Anything else.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(Base64)
        } else {
            deserializer.deserialize_bytes(Bin)
        }
    }

    struct Base64;

    impl Visitor<'_> for Base64 {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes as a string of standard base64 with padding")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
            B64.decode(v)
                .map_err(|e| E::custom(format!("bytes are not padded standard base64: {e}")))
        }
    }

    pub(super) struct Bin;

    impl Visitor<'_> for Bin {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes (MessagePack bin)")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }
}

// ---------------------------------------------------------------------------------------
// Timestamps

/// An instant with nanosecond precision in the years 1 to 9999 (what every SDK can hold):
/// the MessagePack timestamp extension (type -1, any of its 32/64/96-bit forms) or, in
/// JSON, an RFC 3339 string with a UTC offset.
///
/// ```
/// use crosswire::payload::Timestamp;
/// let t: Timestamp = "2026-11-28T10:00:00.25+02:00".parse().unwrap();
/// assert_eq!(t, "2026-11-28T08:00:00.250Z".parse().unwrap());
/// assert_eq!(t.to_string(), "2026-11-28T08:00:00.250Z");
/// assert!("2026-11-28T10:00:00".parse::<Timestamp>().is_err(), "an offset is required");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

const MSGPACK_TIMESTAMP: i8 = -1;
/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in Unix seconds.
const MIN_SECS: i64 = -62_135_596_800;
const MAX_SECS: i64 = 253_402_300_799;

impl Timestamp {
    /// `secs` since the Unix epoch plus `nanos`; `None` unless `nanos` is below 1e9
    /// and the instant falls in the years 1 to 9999.
    pub fn new(secs: i64, nanos: u32) -> Option<Timestamp> {
        (nanos < 1_000_000_000 && (MIN_SECS..=MAX_SECS).contains(&secs))
            .then_some(Timestamp { secs, nanos })
    }

    /// The current time.
    ///
    /// # Panics
    /// If the system clock is set past the year 9999.
    pub fn now() -> Timestamp {
        Timestamp::try_from(SystemTime::now()).expect("the clock is before the year 10000")
    }

    /// Whole seconds since the Unix epoch (negative before 1970).
    pub fn unix_seconds(&self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second (0..1e9).
    pub fn subsec_nanos(&self) -> u32 {
        self.nanos
    }

    /// As a `SystemTime`, if the platform's `SystemTime` can hold it.
    pub fn to_system_time(&self) -> Option<SystemTime> {
        let base = if self.secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(self.secs.unsigned_abs()))
        } else {
            UNIX_EPOCH.checked_sub(Duration::from_secs(self.secs.unsigned_abs()))
        };
        base?.checked_add(Duration::from_nanos(u64::from(self.nanos)))
    }

    /// The MessagePack timestamp extension's data (4, 8 or 12 bytes, the smallest).
    fn ext_data(&self) -> Vec<u8> {
        if self.secs >> 34 == 0 {
            let packed = (u64::from(self.nanos) << 34) | self.secs as u64;
            if packed >> 32 == 0 {
                (packed as u32).to_be_bytes().to_vec()
            } else {
                packed.to_be_bytes().to_vec()
            }
        } else {
            let mut out = self.nanos.to_be_bytes().to_vec();
            out.extend_from_slice(&self.secs.to_be_bytes());
            out
        }
    }

    fn from_ext_data(data: &[u8]) -> Result<Timestamp, String> {
        let (secs, nanos) = match data.len() {
            4 => (
                i64::from(u32::from_be_bytes(data.try_into().unwrap_or_default())),
                0,
            ),
            8 => {
                let packed = u64::from_be_bytes(data.try_into().unwrap_or_default());
                ((packed & ((1 << 34) - 1)) as i64, (packed >> 34) as u32)
            }
            12 => (
                i64::from_be_bytes(data[4..].try_into().unwrap_or_default()),
                u32::from_be_bytes(data[..4].try_into().unwrap_or_default()),
            ),
            n => {
                return Err(format!(
                    "a timestamp extension has 4, 8 or 12 bytes, not {n}"
                ))
            }
        };
        Timestamp::new(secs, nanos).ok_or_else(|| {
            format!("timestamp ({secs} s, {nanos} ns) is not an instant in the years 1 to 9999")
        })
    }
}

impl TryFrom<SystemTime> for Timestamp {
    type Error = TimestampError;

    /// # Errors
    /// Outside the years 1 to 9999.
    fn try_from(t: SystemTime) -> Result<Timestamp, TimestampError> {
        let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => (
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                d.subsec_nanos(),
            ),
            Err(before) => {
                let d = before.duration();
                let secs = i64::try_from(d.as_secs()).map_or(i64::MIN, |s| -s);
                match d.subsec_nanos() {
                    0 => (secs, 0),
                    n => (secs.saturating_sub(1), 1_000_000_000 - n),
                }
            }
        };
        Timestamp::new(secs, nanos)
            .ok_or_else(|| TimestampError(format!("{t:?} is outside the years 1 to 9999")))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Why a string is not an RFC 3339 timestamp with an offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampError(String);

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TimestampError {}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; the offset is required.
    fn from_str(s: &str) -> Result<Timestamp, TimestampError> {
        let bad = |why: &str| TimestampError(format!("{s:?} is not an RFC 3339 timestamp: {why}"));
        if !crate::attrs::is_rfc3339(s) {
            return Err(bad(
                "expected YYYY-MM-DDTHH:MM:SS[.fraction] and Z or a ±HH:MM offset",
            ));
        }
        let b = s.as_bytes();
        let num = |at: usize, len: usize| {
            b[at..at + len]
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
        };
        let (year, month, day) = (num(0, 4), num(5, 2), num(8, 2));
        if year == 0 {
            return Err(bad("the years are 1 to 9999"));
        }
        let (hour, minute, second) = (num(11, 2), num(14, 2), num(17, 2));
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if !(1..=12).contains(&month) || day < 1 || day > month_days[(month - 1) as usize] {
            return Err(bad("no such date"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(bad("no such time of day"));
        }
        let mut i = 19;
        let mut nanos = 0u32;
        if b[i] == b'.' {
            let mut scale = 100_000_000;
            i += 1;
            while b[i].is_ascii_digit() {
                nanos += u32::from(b[i] - b'0') * scale;
                scale /= 10;
                i += 1;
            }
        }
        let offset = match b[i] {
            b'Z' | b'z' => 0,
            sign => {
                let (h, m) = (num(i + 1, 2), num(i + 4, 2));
                if h > 23 || m > 59 {
                    return Err(bad("no such offset"));
                }
                let minutes = h * 60 + m;
                if sign == b'-' {
                    -minutes
                } else {
                    minutes
                }
            }
        };
        let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
            - offset * 60;
        // an offset can still carry 0001-01-01 or 9999-12-31 across the range
        Timestamp::new(secs, nanos).ok_or_else(|| bad("outside the years 1 to 9999"))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC: no fraction for whole seconds, else milli-, micro- or
    /// nanoseconds, whichever is exact.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (days, rem) = (self.secs.div_euclid(86_400), self.secs.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        )?;
        match self.nanos {
            0 => {}
            n if n % 1_000_000 == 0 => write!(f, ".{:03}", n / 1_000_000)?,
            n if n % 1000 == 0 => write!(f, ".{:06}", n / 1000)?,
            n => write!(f, ".{n:09}")?,
        }
        f.write_str("Z")
    }
}

/// The extension's data as `bin`, for rmp-serde's `(tag, data)` ext tuple.
struct ExtData<'a>(&'a [u8]);

impl Serialize for ExtData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            let data = self.ext_data();
            serializer.serialize_newtype_struct(
                rmp_serde::MSGPACK_EXT_STRUCT_NAME,
                &(MSGPACK_TIMESTAMP, ExtData(&data)),
            )
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        if deserializer.is_human_readable() {
            deserializer.deserialize_str(TimestampVisitor)
        } else {
            deserializer
                .deserialize_newtype_struct(rmp_serde::MSGPACK_EXT_STRUCT_NAME, TimestampVisitor)
        }
    }
}

struct TimestampVisitor;

impl<'de> Visitor<'de> for TimestampVisitor {
    type Value = Timestamp;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a timestamp (MessagePack timestamp extension, or RFC 3339 with an offset)")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Timestamp, D::Error> {
        d.deserialize_tuple(2, self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Timestamp, A::Error> {
        let tag: i8 = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        if tag != MSGPACK_TIMESTAMP {
            return Err(de::Error::custom(format!(
                "MessagePack extension type {tag} is not a timestamp (-1)"
            )));
        }
        let data: ExtBytes = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        Timestamp::from_ext_data(&data.0).map_err(de::Error::custom)
    }
}

/// The data of an extension (rmp-serde hands it over as bytes).
struct ExtBytes(Vec<u8>);

impl<'de> Deserialize<'de> for ExtBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ExtBytes, D::Error> {
        // always bin: rmp-serde's extension deserializer does not say it is binary
        d.deserialize_bytes(bytes::Bin).map(ExtBytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_forms_round_trip() {
        for (text, secs, nanos, ext_len) in [
            ("1970-01-01T00:00:00Z", 0, 0, 4),
            ("2026-11-28T10:00:00Z", 1_795_860_000, 0, 4),
            ("2026-11-28T10:00:00.123456Z", 1_795_860_000, 123_456_000, 8),
            ("1969-12-31T23:59:59.500Z", -1, 500_000_000, 12),
            ("2600-01-01T00:00:00.000000001Z", 19_880_899_200, 1, 12),
        ] {
            let t: Timestamp = text.parse().unwrap();
            assert_eq!(
                (t.unix_seconds(), t.subsec_nanos()),
                (secs, nanos),
                "{text}"
            );
            assert_eq!(t.to_string(), text);
            assert_eq!(t.ext_data().len(), ext_len, "{text}");
            assert_eq!(Timestamp::from_ext_data(&t.ext_data()), Ok(t));
            let mp = to_msgpack(&t).unwrap();
            assert_eq!(from_msgpack::<Timestamp>(&mp).unwrap(), t);
            assert_eq!(from_json::<Timestamp>(&to_json(&t).unwrap()).unwrap(), t);
        }
        let before = UNIX_EPOCH - Duration::from_millis(500);
        let t = Timestamp::try_from(before).unwrap();
        assert_eq!(t.to_string(), "1969-12-31T23:59:59.500Z");
        assert_eq!(t.to_system_time(), Some(before));
    }

    #[test]
    fn timestamps_that_are_not() {
        for s in [
            "2026-11-28T10:00:00",
            "2026-02-29T10:00:00Z",
            "2026-11-28T24:00:00Z",
            "2026-11-28T10:00:60Z",
            "2026-13-01T10:00:00Z",
            "2026-11-28 10:00:00Z",
            "2026-11-28T10:00:00+24:00",
            "0000-12-31T10:00:00Z",
            "0001-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
        ] {
            assert!(s.parse::<Timestamp>().is_err(), "{s}");
        }
        assert!("2024-02-29T10:00:00Z".parse::<Timestamp>().is_ok());
        for edge in ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999999Z"] {
            let t: Timestamp = edge.parse().unwrap();
            assert_eq!(t.to_string(), edge);
            assert_eq!(
                from_msgpack::<Timestamp>(&to_msgpack(&t).unwrap()).unwrap(),
                t
            );
        }
        assert_eq!(Timestamp::new(MAX_SECS + 1, 0), None);
        assert_eq!(Timestamp::new(MIN_SECS - 1, 0), None);
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Pair {
        a: i64,
        #[serde(default)]
        b: Option<String>,
    }

    #[test]
    fn a_struct_is_a_map_only() {
        assert!(from_json::<Pair>(br#"[1, "x"]"#).is_err());
        assert!(from_msgpack::<Pair>(&[0x92, 0x01, 0xa1, b'x']).is_err());
        // a map with an integer key naming field 0
        assert!(from_msgpack::<Pair>(&[0x81, 0x00, 0x01]).is_err());
        assert_eq!(
            from_msgpack::<Pair>(&[0x81, 0xa1, b'a', 0x01]).unwrap(),
            Pair { a: 1, b: None }
        );
        // a plain list is still a list
        assert_eq!(from_json::<Vec<u8>>(b"[1, 2]").unwrap(), vec![1, 2]);
    }

    #[test]
    fn json_floats_are_correctly_rounded() {
        // serde_json's default parser gives ...291e-83 here (one ulp off); Go, Python and
        // Rust's own literal parsing give the correctly rounded value
        let text = "-1.0115940217569293e-83";
        assert_eq!(
            from_json::<f64>(text.as_bytes()).unwrap().to_bits(),
            text.parse::<f64>().unwrap().to_bits()
        );
    }

    #[test]
    fn trailing_bytes_are_refused() {
        assert!(matches!(
            from_msgpack::<i64>(&[0x01, 0x02]),
            Err(PayloadError::TrailingBytes(1))
        ));
        assert!(from_json::<i64>(b"1 2").is_err());
    }

    #[test]
    fn deep_payloads_fail_without_overflowing() {
        let result = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024) // tokio's worker threads
            .spawn(|| {
                let mut mp = vec![0x91; 100_000];
                mp.push(0xc0);
                let json = "[".repeat(100_000);
                (
                    from_msgpack::<serde_json::Value>(&mp).is_err(),
                    from_json::<serde_json::Value>(json.as_bytes()).is_err(),
                )
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(result, (true, true));
    }
}
