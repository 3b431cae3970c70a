//! Canonical JSON (RFC 8785, JSON Canonicalization Scheme) for hashing.
//!
//! The Merkle leaf of an event is the SHA-256 leaf hash of its canonical JSON (DESIGN §8), so
//! two parties that hold the same JSON object compute the same leaf whatever key order or
//! number spelling they received. The implementation is the `serde_json_canonicalizer` crate,
//! which follows RFC 8785 §3.2 (sorted keys by UTF-16 code units, ECMAScript number form,
//! minimal string escaping).

use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, thiserror::Error)]
#[error("cannot canonicalize JSON: {0}")]
pub struct CanonicalError(String);

/// The RFC 8785 canonical bytes of a JSON value.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    serde_json_canonicalizer::to_vec(value).map_err(|e| CanonicalError(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    // RFC 8785 §3.2.3 sorting and §3.2.2.3 number serialisation examples.
    #[test]
    fn keys_are_sorted_and_numbers_normalised() {
        let v: Value = serde_json::from_str(
            r#"{"b": 1.0, "a": [1e2, -0.0, 0.000001, 1e21], "c": "\u00e9\n"}"#,
        )
        .unwrap();
        let out = String::from_utf8(canonical_json(&v).unwrap()).unwrap();
        assert_eq!(out, "{\"a\":[100,0,0.000001,1e+21],\"b\":1,\"c\":\"é\\n\"}");
    }

    #[test]
    fn the_rfc_8785_sorting_example() {
        // RFC 8785 §3.2.3: keys sort by UTF-16 code units.
        let v: Value = serde_json::from_str(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let out = String::from_utf8(canonical_json(&v).unwrap()).unwrap();
        let keys: Vec<&str> = out.split("\":\"").collect();
        let order = [
            "Carriage Return",
            "One",
            "Control",
            "Latin Small",
            "Euro Sign",
            "Emoji",
            "Hebrew",
        ];
        let mut pos = 0;
        for name in order {
            let at = out[pos..].find(name).map(|p| p + pos).unwrap();
            pos = at;
        }
        assert!(keys.len() > 1);
    }

    #[test]
    fn equal_objects_have_equal_bytes() {
        let a: Value = serde_json::from_str(r#"{"x":{"b":2,"a":1},"y":[true,null]}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{ "y" : [ true , null ], "x" : { "a" : 1 , "b" : 2 } }"#)
                .unwrap();
        assert_eq!(canonical_json(&a).unwrap(), canonical_json(&b).unwrap());
    }
}
