//! Whole numbers as JSON Schema means them: `93` and `93.0` are the same integer. serde's
//! integers refuse `93.0`, which an API client (or a schema-driven test tool) may send; these
//! `deserialize_with` helpers take both, and refuse fractions, negatives and what does not fit.

use serde::de::Error;
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Number {
    Whole(u64),
    Float(f64),
}

fn whole<'de, D: Deserializer<'de>>(number: Number) -> Result<u64, D::Error> {
    match number {
        Number::Whole(n) => Ok(n),
        // 2^64 as f64 is the first float past u64::MAX.
        Number::Float(f)
            if f.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&f) =>
        {
            Ok(f as u64)
        }
        Number::Float(f) => Err(D::Error::custom(format!(
            "{f} is not a whole number of 0 or more"
        ))),
    }
}

/// A `u64` written as `93` or `93.0`.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    whole::<D>(Number::deserialize(d)?)
}

/// A `u32` written as `93` or `93.0`.
pub fn u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u64(d)?;
    std::primitive::u32::try_from(n).map_err(|_| D::Error::custom(format!("{n} is too large")))
}

/// An optional `u64` written as `93` or `93.0`, or `null`.
pub fn option_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<Number>::deserialize(d)?
        .map(whole::<D>)
        .transpose()
}

/// An optional `u32` written as `93` or `93.0`, or `null`.
pub fn option_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    option_u64(d)?
        .map(|n| {
            std::primitive::u32::try_from(n)
                .map_err(|_| D::Error::custom(format!("{n} is too large")))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[derive(Debug, serde::Deserialize)]
    struct T {
        #[serde(deserialize_with = "super::u32")]
        n: u32,
        #[serde(default, deserialize_with = "super::option_u64")]
        m: Option<u64>,
    }

    #[test]
    fn whole_numbers_in_either_spelling_and_nothing_else() {
        let t: T = serde_json::from_str(r#"{"n": 93.0, "m": 7}"#).unwrap();
        assert_eq!((t.n, t.m), (93, Some(7)));
        let t: T = serde_json::from_str(r#"{"n": 5, "m": null}"#).unwrap();
        assert_eq!((t.n, t.m), (5, None));
        let t: T = serde_json::from_str(r#"{"n": 5}"#).unwrap();
        assert_eq!(t.m, None);
        for bad in [
            r#"{"n": 93.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -1.0}"#,
            r#"{"n": 4294967296}"#,
            r#"{"n": "3"}"#,
            r#"{"n": 1, "m": 1e30}"#,
        ] {
            assert!(serde_json::from_str::<T>(bad).is_err(), "{bad}");
        }
    }
}
