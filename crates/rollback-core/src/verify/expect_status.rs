//! `expect_status`: the status codes an HTTP response may have (checks, flow steps, the deploy
//! hook).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The status codes a response may have: `expect_status = 200` or `expect_status = [200, 204]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectStatus(pub Vec<u16>);

impl ExpectStatus {
    /// Whether `code` is expected; `None` means any `2xx`.
    pub fn accepts(this: Option<&ExpectStatus>, code: u16) -> bool {
        match this {
            Some(s) => s.0.contains(&code),
            None => (200..300).contains(&code),
        }
    }

    /// "200", "one of 200, 204", "2xx".
    pub fn describe(this: Option<&ExpectStatus>) -> String {
        match this.map(|s| s.0.as_slice()) {
            None | Some([]) => "2xx".to_owned(),
            Some([one]) => one.to_string(),
            Some(many) => format!("one of {}", many.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")),
        }
    }
}

impl Serialize for ExpectStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_u16(*one),
            many => many.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ExpectStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::deserialize_as(d, "expect_status")
    }
}

impl ExpectStatus {
    /// Reads the value of config key `key`, which its errors name (`hook_expect_status`).
    pub(crate) fn deserialize_as<'de, D: Deserializer<'de>>(d: D, key: &'static str) -> Result<Self, D::Error> {
        struct V(&'static str);
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ExpectStatus;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a status code or a list of status codes")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ExpectStatus, E> {
                code(v).map(|c| ExpectStatus(vec![c]))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ExpectStatus, E> {
                self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<ExpectStatus, A::Error> {
                let mut out = Vec::new();
                while let Some(v) = seq.next_element::<i64>()? {
                    out.push(code(v)?);
                }
                if out.is_empty() {
                    return Err(A::Error::custom(format!("`{}` is an empty list", self.0)));
                }
                Ok(ExpectStatus(out))
            }
        }
        fn code<E: serde::de::Error>(v: i64) -> Result<u16, E> {
            u16::try_from(v)
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| E::custom(format!("{v} is not an HTTP status code (100 to 599)")))
        }
        d.deserialize_any(V(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets() {
        let one = ExpectStatus(vec![200]);
        let many = ExpectStatus(vec![200, 204]);
        assert!(ExpectStatus::accepts(None, 204));
        assert!(!ExpectStatus::accepts(None, 301));
        assert!(!ExpectStatus::accepts(Some(&one), 204));
        assert_eq!(ExpectStatus::describe(Some(&one)), "200");
        assert_eq!(ExpectStatus::describe(Some(&many)), "one of 200, 204");
        assert_eq!(ExpectStatus::describe(None), "2xx");
    }
}
