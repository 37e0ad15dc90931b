//! Rules for single attributes (extension names, RFC 3339 `time`, W3C `traceparent`)
//! and generators for fresh ids and timestamps. Pattern checks are hand-written
//! byte scans of the spec's regular expressions.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::envelope::RESERVED_NAMES;
use crate::error::DecodeError;

/// Whether `name` is a valid user extension name (1..20 of `a-z0-9`, not an attribute).
pub fn is_extension_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !RESERVED_NAMES.contains(&name)
}

pub(crate) fn check_extension_name(name: &str) -> Result<(), DecodeError> {
    if is_extension_name(name) {
        Ok(())
    } else {
        Err(DecodeError::InvalidExtensionName(name.to_owned()))
    }
}

/// `^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$`
pub(crate) fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || !matches!(b[10], b'T' | b't')
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if !(1..=9).contains(&(i - start)) {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|d| d.is_ascii_digit()),
        _ => false,
    }
}

/// `^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`
pub(crate) fn is_traceparent(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 55
        && b.iter().enumerate().all(|(i, c)| match i {
            2 | 35 | 52 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
}

/// A random 128-bit id as 32 hex characters.
pub fn new_event_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded from the OS once per process and varied per instance;
    // mixing in a counter, the pid and the clock keeps ids unique without a rand crate.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let half = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u64(n);
        h.write_u128(now);
        h.write_u32(std::process::id());
        h.finish()
    };
    format!(
        "{:016x}{:016x}",
        half(0x9e37_79b9_7f4a_7c15),
        half(0xc2b2_ae3d_27d4_eb4f)
    )
}

/// The current UTC time as RFC 3339 with microseconds, e.g. `2026-11-28T10:00:00.123456Z`.
pub fn now_rfc3339() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // civil-from-days (Howard Hinnant's algorithm), valid for every date after 1970
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_pattern() {
        assert!(is_rfc3339("2026-11-28T10:00:00Z"));
        assert!(is_rfc3339("2026-11-28t10:00:00.123456789+02:00"));
        assert!(!is_rfc3339("2026-11-28T10:00:00.1234567890Z"));
        assert!(!is_rfc3339("2026-11-28T10:00:00."));
        assert!(!is_rfc3339("2026-11-28 10:00:00Z"));
        assert!(!is_rfc3339("2026-11-28T10:00:00+0200"));
        assert!(is_rfc3339(&now_rfc3339()), "{}", now_rfc3339());
    }

    #[test]
    fn traceparent_pattern() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_traceparent(
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
        ));
        assert!(!is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"
        ));
    }

    #[test]
    fn ids_are_fresh() {
        let a = new_event_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_event_id());
    }
}
