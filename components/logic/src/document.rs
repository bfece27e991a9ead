//! Decoding the insert document `{"deviceinfo": {...}, "tsdata": [{...}, ...]}`
//! from JSON or MessagePack.
//!
//! Both formats go through one serde model, so they accept exactly the same
//! documents. Objects keep their field order (it becomes column order) and a
//! field given twice in one object is an error rather than a silent overwrite.

use crate::error::ApiError;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::json;
use std::fmt;

/// One scalar of the document, typed as its format typed it.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX`: it fits no column, but is reported by name.
    BigInt(u64),
    Float(f64),
    String(String),
    /// An array, object or binary string: not storable in a column.
    Unsupported(&'static str),
}

impl Field {
    /// How the value is described in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Field::Null => "null",
            Field::Bool(_) => "bool",
            Field::Int(_) | Field::BigInt(_) => "integer",
            Field::Float(_) => "number",
            Field::String(_) => "string",
            Field::Unsupported(kind) => kind,
        }
    }
}

/// An object's fields in document order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record(pub Vec<(String, Field)>);

impl Record {
    pub fn get(&self, name: &str) -> Option<&Field> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InsertDocument {
    pub deviceinfo: Record,
    pub tsdata: Vec<Record>,
}

/// The wire formats the insert endpoint accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    MessagePack,
}

impl Format {
    /// MessagePack for its media types; JSON for everything else, as the original
    /// Flask collector parsed any body as JSON whatever its declared type.
    pub fn from_content_type(content_type: Option<&str>) -> Format {
        let media_type = content_type
            .and_then(|ct| ct.split(';').next())
            .map(|mt| mt.trim().to_ascii_lowercase());
        match media_type.as_deref() {
            Some("application/msgpack" | "application/x-msgpack" | "application/vnd.msgpack") => {
                Format::MessagePack
            }
            _ => Format::Json,
        }
    }
}

impl Format {
    /// Tells the format from the bytes, for transports without a content type
    /// (MQTT): a JSON document starts with `{`, a MessagePack map never does.
    pub fn sniff(payload: &[u8]) -> Format {
        match payload.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Format::Json,
            _ => Format::MessagePack,
        }
    }
}

impl InsertDocument {
    pub fn decode(body: &[u8], format: Format) -> Result<InsertDocument, ApiError> {
        match format {
            Format::Json => serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request("malformed JSON", json!(e.to_string()))),
            Format::MessagePack => rmp_serde::from_slice(body)
                .map_err(|e| ApiError::bad_request("malformed MessagePack", json!(e.to_string()))),
        }
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        deserializer.deserialize_any(FieldVisitor)
    }
}

struct FieldVisitor;

impl<'de> Visitor<'de> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scalar value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Field, E> {
        Ok(Field::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Field, E> {
        Ok(Field::Int(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Field, E> {
        Ok(i64::try_from(v).map_or(Field::BigInt(v), Field::Int))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Field, E> {
        Ok(Field::Float(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Field, E> {
        Ok(Field::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Field, E> {
        Ok(Field::String(v))
    }

    fn visit_bytes<E>(self, _: &[u8]) -> Result<Field, E> {
        Ok(Field::Unsupported("binary"))
    }

    fn visit_unit<E>(self) -> Result<Field, E> {
        Ok(Field::Null)
    }

    fn visit_none<E>(self) -> Result<Field, E> {
        Ok(Field::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        Field::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Unsupported("array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Unsupported("object"))
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Record, D::Error> {
        deserializer.deserialize_map(RecordVisitor)
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
        // The hint is the length a MessagePack header claims, up to four
        // billion in five bytes: reserving that much aborted the process.
        // Reserve for a few fields at most; the vector grows with what is read.
        let capacity = map.size_hint().unwrap_or(8).min(64);
        let mut fields: Vec<(String, Field)> = Vec::with_capacity(capacity);
        while let Some(key) = map.next_key::<String>()? {
            // Column names are case-insensitive, so `Temp` and `temp` are the same field.
            if fields.iter().any(|(k, _)| k.eq_ignore_ascii_case(&key)) {
                return Err(de::Error::custom(format_args!(
                    "field `{key}` is given twice"
                )));
            }
            let value = map.next_value::<Field>()?;
            fields.push((key, value));
        }
        Ok(Record(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = include_bytes!("../../../tests/fixtures/sample-insert.json");

    #[test]
    fn decodes_the_sample_in_field_order() {
        let doc = InsertDocument::decode(SAMPLE, Format::Json).unwrap();
        assert_eq!(
            doc.deviceinfo.get("deviceid"),
            Some(&Field::String("sample".into()))
        );
        assert_eq!(doc.deviceinfo.get("batt_lvl"), Some(&Field::Int(78)));
        assert_eq!(doc.tsdata.len(), 6);
        let first = &doc.tsdata[0];
        let names: Vec<&str> = first.0.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names[0], "day");
        assert_eq!(first.get("humidity"), Some(&Field::Float(75.0)));
        assert_eq!(first.get("motion"), Some(&Field::Bool(false)));
        assert_eq!(first.get("timestamp"), Some(&Field::Int(1582046738255)));
    }

    #[test]
    fn messagepack_decodes_to_the_same_document() {
        let json: serde_json::Value = serde_json::from_slice(SAMPLE).unwrap();
        let packed = rmp_serde::to_vec_named(&json).unwrap();
        // serde_json::Value sorts object keys, so compare field sets, not order.
        let sorted = |mut doc: InsertDocument| {
            doc.deviceinfo.0.sort_by(|a, b| a.0.cmp(&b.0));
            doc.tsdata
                .iter_mut()
                .for_each(|r| r.0.sort_by(|a, b| a.0.cmp(&b.0)));
            doc
        };
        assert_eq!(
            sorted(InsertDocument::decode(&packed, Format::MessagePack).unwrap()),
            sorted(InsertDocument::decode(SAMPLE, Format::Json).unwrap())
        );
    }

    #[test]
    fn rejects_duplicate_fields_unknown_keys_and_garbage() {
        let dup = br#"{"deviceinfo":{"deviceid":"a"},"tsdata":[{"timestamp":1,"Timestamp":2}]}"#;
        let err = InsertDocument::decode(dup, Format::Json).unwrap_err();
        assert!(
            err.detail.as_str().unwrap().contains("given twice"),
            "{err:?}"
        );

        let unknown = br#"{"deviceinfo":{},"tsData":[]}"#;
        let err = InsertDocument::decode(unknown, Format::Json).unwrap_err();
        assert!(err.detail.as_str().unwrap().contains("tsData"), "{err:?}");

        assert_eq!(
            InsertDocument::decode(b"{", Format::Json)
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            InsertDocument::decode(b"\xc1", Format::MessagePack)
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn nested_values_are_kept_as_unsupported() {
        let doc = br#"{"deviceinfo":{},"tsdata":[{"a":[1,2],"b":{"c":1},"d":null,"e":18446744073709551615}]}"#;
        let doc = InsertDocument::decode(doc, Format::Json).unwrap();
        assert_eq!(doc.tsdata[0].get("a"), Some(&Field::Unsupported("array")));
        assert_eq!(doc.tsdata[0].get("b"), Some(&Field::Unsupported("object")));
        assert_eq!(doc.tsdata[0].get("d"), Some(&Field::Null));
        assert_eq!(doc.tsdata[0].get("e"), Some(&Field::BigInt(u64::MAX)));
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type(Some("application/json")),
            Format::Json
        );
        assert_eq!(Format::from_content_type(None), Format::Json);
        assert_eq!(
            Format::from_content_type(Some("Application/MsgPack; charset=binary")),
            Format::MessagePack
        );
    }
}
