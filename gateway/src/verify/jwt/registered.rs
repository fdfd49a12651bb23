//! The registered claims as jsonwebtoken 11's `validate` judged them (with `aud` required, times
//! left to the policy), kept to the letter so no token changes outcome: `aud` must be a string or
//! an array of strings (else it counts as absent) and one of its values must be expected, exactly
//! (`wrong_audience` either way). Its reader of `exp`/`nbf` also failed on a non-empty array or
//! object (its number visitor left serde_json inside the value, and the claims around it then did
//! not parse), which refused the token as invalid claims before `aud` was looked at.

use super::Claims;
use mfagate_policy::InvalidReason;
use serde_json::Value;

/// Checks `claims` against the `expected` audiences.
pub(super) fn check(claims: &Claims, expected: &[String]) -> Result<(), InvalidReason> {
    if half_read(&claims.exp) || half_read(&claims.nbf) {
        return Err(InvalidReason::ClaimsInvalid);
    }
    let expected = |aud: &str| expected.iter().any(|e| e == aud);
    let matched = match &claims.aud {
        Some(Value::String(aud)) => expected(aud),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).any(expected)
        }
        // Absent, null or of another type: jsonwebtoken found no `aud`.
        _ => false,
    };
    if matched { Ok(()) } else { Err(InvalidReason::WrongAudience) }
}

fn half_read(value: &Option<Value>) -> bool {
    match value {
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(members)) => !members.is_empty(),
        _ => false,
    }
}
