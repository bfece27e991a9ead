//! Property tests of the insert path's input: the JSON and MessagePack
//! decoders (`document.rs`) and the whole insert (`insert::insert`, as
//! `api::handle_insert` and the MQTT handlers call it) over a store in memory.
//!
//! Why: an insert body is the one input that any device, or anyone who can
//! reach the port, controls byte for byte. Whatever it holds, the answer must
//! be a 4xx naming the problem, never a panic (a trap, then a 500, in the
//! component) and never a partial write. The properties:
//!
//! - arbitrary bytes, in either format, decode or fail with a 4xx;
//! - near-valid documents (the right shape with wrong types, huge or
//!   non-finite numbers, odd timestamps, long strings, deep nesting, repeated
//!   fields, truncated bytes, MessagePack length headers that lie) decode or
//!   fail with a 4xx, and inserting them either succeeds or fails with a 4xx
//!   having written nothing;
//! - a valid document decodes, in both formats, to exactly its fields in
//!   order, and inserts every one of its rows.
//!
//! Failures are not persisted to files: a case a property finds is kept as an
//! explicit test below (see `regressions`).

use cromflag_logic::document::{Field, Format, InsertDocument, Record};
use cromflag_logic::insert::{insert, DeviceId, Document, Receipt};
use cromflag_logic::model::{
    ContainerInfo, NoTransforms, QueryResult, Row, Store, StoreError, TIMESTAMP_RANGE,
};
use cromflag_logic::ApiError;
use proptest::prelude::*;
use proptest::test_runner::Config;

/// The device every generated document is inserted for.
const DEVICE: &str = "sensor_1";

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Asserts that `err` is a client error: a status from 400 to 499.
fn assert_client_error(err: &ApiError, input: &[u8]) {
    assert!(
        (400..=499).contains(&err.status),
        "status {} for {:?}: {err:?}",
        err.status,
        String::from_utf8_lossy(input)
    );
}

// ---------------------------------------------------------------------------
// Documents as trees, written as JSON text or MessagePack bytes
// ---------------------------------------------------------------------------

/// A document value, written by hand in either format so that it can hold
/// what serializers refuse: duplicate keys, NaN, numbers beyond f64.
#[derive(Clone, Debug)]
enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    /// A JSON number as written (`1e999`, 40 digits); MessagePack gets it as a string.
    NumberText(String),
    Str(String),
    /// MessagePack `bin`; JSON gets an array of its bytes.
    Bin(Vec<u8>),
    Array(Vec<Node>),
    /// Keys in order, repeats allowed.
    Map(Vec<(String, Node)>),
}

impl Node {
    fn json(&self, out: &mut String) {
        match self {
            Node::Null => out.push_str("null"),
            Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Node::Int(v) => out.push_str(&v.to_string()),
            Node::UInt(v) => out.push_str(&v.to_string()),
            // serde_json writes NaN and infinities as `null`, as JSON has neither.
            Node::Float(v) => out.push_str(&serde_json::to_string(v).unwrap()),
            Node::NumberText(text) => out.push_str(text),
            Node::Str(s) => out.push_str(&serde_json::to_string(s).unwrap()),
            Node::Bin(bytes) => {
                Node::Array(bytes.iter().map(|&b| Node::Int(b.into())).collect()).json(out)
            }
            Node::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.json(out);
                }
                out.push(']');
            }
            Node::Map(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(key).unwrap());
                    out.push(':');
                    value.json(out);
                }
                out.push('}');
            }
        }
    }

    fn msgpack(&self, out: &mut Vec<u8>) {
        fn header(out: &mut Vec<u8>, marker: u8, len: usize) {
            out.push(marker);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        match self {
            Node::Null => out.push(0xc0),
            Node::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
            Node::Int(v) => {
                out.push(0xd3);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Node::UInt(v) => {
                out.push(0xcf);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Node::Float(v) => {
                out.push(0xcb);
                out.extend_from_slice(&v.to_be_bytes());
            }
            Node::NumberText(text) => Node::Str(text.clone()).msgpack(out),
            Node::Str(s) => {
                header(out, 0xdb, s.len());
                out.extend_from_slice(s.as_bytes());
            }
            Node::Bin(bytes) => {
                header(out, 0xc6, bytes.len());
                out.extend_from_slice(bytes);
            }
            Node::Array(items) => {
                header(out, 0xdd, items.len());
                items.iter().for_each(|item| item.msgpack(out));
            }
            Node::Map(entries) => {
                header(out, 0xdf, entries.len());
                for (key, value) in entries {
                    Node::Str(key.clone()).msgpack(out);
                    value.msgpack(out);
                }
            }
        }
    }

    fn to_json(&self) -> Vec<u8> {
        let mut out = String::new();
        self.json(&mut out);
        out.into_bytes()
    }

    fn to_msgpack(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.msgpack(&mut out);
        out
    }
}

/// Field names, with case variants of one another (a repeat, as the decoder
/// compares them) and names a document has a meaning for.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("timestamp".to_owned()),
        Just("Timestamp".to_owned()),
        Just("deviceid".to_owned()),
        Just("batt_lvl".to_owned()),
        Just("temp".to_owned()),
        Just("TEMP".to_owned()),
        Just("motion".to_owned()),
        Just("".to_owned()),
        "[a-z_]{1,8}",
        ".{0,12}",
    ]
}

/// Scalars near every edge the decoder and the schema check.
fn edge_scalar() -> impl Strategy<Value = Node> {
    let max_ts = *TIMESTAMP_RANGE.end();
    prop_oneof![
        Just(Node::Null),
        any::<bool>().prop_map(Node::Bool),
        any::<i64>().prop_map(Node::Int),
        prop_oneof![
            Just(-1i64),
            Just(0),
            Just(max_ts),
            Just(max_ts + 1),
            Just(i64::MIN),
            Just(i64::MAX),
            Just(i64::from(i32::MAX) + 1),
        ]
        .prop_map(Node::Int),
        prop_oneof![Just(u64::MAX), Just(1u64 << 63), any::<u64>()].prop_map(Node::UInt),
        any::<f64>().prop_map(Node::Float),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(f64::MAX),
            Just(-0.0),
            Just(1e39),
            Just(1.5),
        ]
        .prop_map(Node::Float),
        prop_oneof![
            Just("1e999"),
            Just("-1e999"),
            Just("123456789012345678901234567890"),
            Just("-9223372036854775809"),
            Just("1.0e-400"),
            Just("NaN"),
            Just("Infinity"),
            Just("01"),
            Just("-"),
        ]
        .prop_map(|t| Node::NumberText(t.to_owned())),
        prop_oneof![
            Just("2020-02-18T17:25:38.255Z".to_owned()),
            Just("1582046738255".to_owned()),
            ".{0,40}",
            "x{1000,3000}",
        ]
        .prop_map(Node::Str),
        proptest::collection::vec(any::<u8>(), 0..16).prop_map(Node::Bin),
    ]
}

/// Any value: scalars, and arrays and objects of them a few levels deep.
fn any_node() -> impl Strategy<Value = Node> {
    edge_scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Node::Array),
            proptest::collection::vec((field_name(), inner), 0..6).prop_map(Node::Map),
        ]
    })
}

/// A record (`deviceinfo` or one `tsdata` entry): mostly a map of fields,
/// sometimes any other value.
fn record_node() -> impl Strategy<Value = Node> {
    prop_oneof![
        8 => proptest::collection::vec((field_name(), any_node()), 0..6).prop_map(Node::Map),
        1 => any_node(),
    ]
}

/// `{"deviceinfo": …, "tsdata": […]}` with wrong or extra keys now and then,
/// and wrong values anywhere.
fn document_node() -> impl Strategy<Value = Node> {
    let key = prop_oneof![
        Just("deviceinfo"),
        Just("tsdata"),
        Just("tsData"),
        Just("extra"),
    ];
    let tsdata = prop_oneof![
        6 => proptest::collection::vec(record_node(), 0..6).prop_map(Node::Array),
        1 => any_node(),
    ];
    (
        record_node(),
        tsdata,
        proptest::option::weighted(0.1, (key, any_node())),
    )
        .prop_map(|(deviceinfo, tsdata, extra)| {
            let mut entries = vec![
                ("deviceinfo".to_owned(), deviceinfo),
                ("tsdata".to_owned(), tsdata),
            ];
            if let Some((key, value)) = extra {
                entries.push((key.to_owned(), value));
            }
            Node::Map(entries)
        })
}

/// How the bytes of a near-valid document are spoiled, if at all.
#[derive(Clone, Debug)]
enum Damage {
    None,
    /// Cut after this share (per mille) of the bytes.
    Truncate(u16),
    /// Overwrite a byte at this share (per mille) of the length.
    Flip(u16, u8),
    /// MessagePack only: a 32-bit length header claims this many items.
    LyingLength(u32),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => Just(Damage::None),
        1 => (0..1000u16).prop_map(Damage::Truncate),
        1 => (0..1000u16, any::<u8>()).prop_map(|(at, byte)| Damage::Flip(at, byte)),
        1 => prop_oneof![Just(u32::MAX), Just(1 << 28), any::<u32>()].prop_map(Damage::LyingLength),
    ]
}

fn spoil(mut bytes: Vec<u8>, damage: &Damage, format: Format) -> Vec<u8> {
    let at = |share: u16| bytes.len() * usize::from(share) / 1000;
    match *damage {
        Damage::None => {}
        Damage::Truncate(share) => bytes.truncate(at(share)),
        Damage::Flip(share, byte) => {
            let i = at(share);
            if i < bytes.len() {
                bytes[i] = byte;
            }
        }
        Damage::LyingLength(len) if format == Format::MessagePack => {
            // The first map or array header after the document's own.
            let header = bytes
                .iter()
                .skip(5)
                .position(|b| matches!(b, 0xdd | 0xdf))
                .map(|i| 5 + i + 1);
            if let Some(length) = header.filter(|at| at + 4 <= bytes.len()) {
                bytes[length..length + 4].copy_from_slice(&len.to_be_bytes());
            }
        }
        Damage::LyingLength(_) => {}
    }
    bytes
}

// ---------------------------------------------------------------------------
// A store in memory
// ---------------------------------------------------------------------------

/// A store in memory that counts every write, so that a property can tell
/// that a refused document wrote nothing; rows are checked against their
/// container's column types as the real backends check them.
#[derive(Default)]
struct MemoryStore {
    containers: Vec<ContainerInfo>,
    rows: Vec<(String, Row)>,
    writes: usize,
}

impl Store for MemoryStore {
    fn put_container(&mut self, info: ContainerInfo) -> Result<ContainerInfo, StoreError> {
        self.writes += 1;
        self.containers
            .retain(|c| !c.name.eq_ignore_ascii_case(&info.name));
        self.containers.push(info.clone());
        Ok(info)
    }

    fn get_container(&mut self, name: &str) -> Result<Option<ContainerInfo>, StoreError> {
        let found = self
            .containers
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name));
        Ok(found.cloned())
    }

    fn list_containers(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(self.containers.iter().map(|c| c.name.clone()).collect())
    }

    fn put_rows(&mut self, container: &str, rows: Vec<Row>) -> Result<u64, StoreError> {
        self.multi_put(vec![(container.to_owned(), rows)])
    }

    fn multi_put(&mut self, batches: Vec<(String, Vec<Row>)>) -> Result<u64, StoreError> {
        self.writes += 1;
        let mut count = 0;
        for (name, rows) in batches {
            let info = self
                .get_container(&name)?
                .ok_or_else(|| StoreError::NotFound(name.clone()))?;
            for row in rows {
                let fits = row.len() <= info.columns.len()
                    && row.iter().zip(&info.columns).all(|(value, column)| {
                        value.column_type().is_none_or(|t| t == column.column_type)
                    });
                if !fits {
                    return Err(StoreError::Invalid(format!(
                        "{row:?} does not fit {info:?}"
                    )));
                }
                self.rows.push((name.clone(), row));
                count += 1;
            }
        }
        Ok(count)
    }

    fn query(&mut self, _: &str, _: &str) -> Result<QueryResult, StoreError> {
        unreachable!("insert does not query")
    }
}

fn insert_into(store: &mut MemoryStore, body: &[u8], format: Format) -> Result<u64, ApiError> {
    let document = Document {
        device: DEVICE,
        body,
        format,
        device_id: DeviceId::Optional,
        receipt: Receipt {
            received_ms: 1_600_000_000_000,
            transport: "mqtt",
            nonce: 7,
        },
    };
    insert(store, &mut NoTransforms, &document)
}

/// Decodes and inserts `body`: each step succeeds or fails with a 4xx, and a
/// failed insert leaves the store as it was.
fn check_decode_and_insert(body: &[u8], format: Format) {
    if let Err(err) = InsertDocument::decode(body, format) {
        assert_client_error(&err, body);
    }
    let mut store = MemoryStore::default();
    if let Err(err) = insert_into(&mut store, body, format) {
        assert_client_error(&err, body);
        assert_eq!(store.writes, 0, "a refused document wrote");
    }
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn arbitrary_bytes_decode_or_are_a_client_error(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        for format in [Format::Json, Format::MessagePack, Format::sniff(&bytes)] {
            check_decode_and_insert(&bytes, format);
        }
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn near_valid_documents_insert_or_are_a_client_error_that_writes_nothing(
        document in document_node(),
        damage in damage(),
    ) {
        let json = spoil(document.to_json(), &damage, Format::Json);
        check_decode_and_insert(&json, Format::Json);
        let msgpack = spoil(document.to_msgpack(), &damage, Format::MessagePack);
        check_decode_and_insert(&msgpack, Format::MessagePack);
    }
}

// ---------------------------------------------------------------------------
// Valid documents
// ---------------------------------------------------------------------------

/// A column of a valid document and the values its rows may take.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Bool,
    Int,
    Float,
    Text,
}

fn value_of(kind: Kind) -> BoxedStrategy<Field> {
    match kind {
        Kind::Bool => any::<bool>().prop_map(Field::Bool).boxed(),
        Kind::Int => any::<i64>().prop_map(Field::Int).boxed(),
        // FLOAT columns hold f32: values that fit one come back exactly.
        Kind::Float => any::<f32>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Field::Float(f.into()))
            .boxed(),
        Kind::Text => ".{0,20}".prop_map(Field::String).boxed(),
    }
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Bool),
        Just(Kind::Int),
        Just(Kind::Float),
        Just(Kind::Text)
    ]
}

/// A valid document: columns with distinct names (case-insensitively) and one
/// type each, rows with a timestamp in range and any of those columns, null or not.
fn valid_document() -> impl Strategy<Value = InsertDocument> {
    let columns =
        proptest::collection::btree_map("[a-z][a-z0-9_]{0,6}", kind(), 0..5).prop_map(|columns| {
            columns
                .into_iter()
                .filter(|(name, _)| !["timestamp", "deviceid"].contains(&name.as_str()))
                .collect::<Vec<_>>()
        });
    columns.prop_flat_map(|columns| {
        let row = {
            let fields: Vec<_> = columns
                .iter()
                .map(|(name, kind)| {
                    let name = name.clone();
                    proptest::option::weighted(0.8, value_of(*kind))
                        .prop_map(move |value| value.map(|v| (name.clone(), v)))
                })
                .collect();
            (TIMESTAMP_RANGE, fields).prop_map(|(ts, fields)| {
                let mut record = vec![("timestamp".to_owned(), Field::Int(ts))];
                record.extend(fields.into_iter().flatten());
                Record(record)
            })
        };
        let deviceinfo = (0..=100i64, ".{0,10}").prop_map(|(battery, firmware)| {
            Record(vec![
                ("deviceid".to_owned(), Field::String(DEVICE.to_owned())),
                ("batt_lvl".to_owned(), Field::Int(battery)),
                ("fw_ver".to_owned(), Field::String(firmware)),
            ])
        });
        (deviceinfo, proptest::collection::vec(row, 0..8))
            .prop_map(|(deviceinfo, tsdata)| InsertDocument { deviceinfo, tsdata })
    })
}

fn node_of(document: &InsertDocument) -> Node {
    let record = |record: &Record| {
        Node::Map(
            record
                .0
                .iter()
                .map(|(name, field)| {
                    let value = match field {
                        Field::Bool(b) => Node::Bool(*b),
                        Field::Int(v) => Node::Int(*v),
                        Field::Float(v) => Node::Float(*v),
                        Field::String(s) => Node::Str(s.clone()),
                        other => panic!("not generated: {other:?}"),
                    };
                    (name.clone(), value)
                })
                .collect(),
        )
    };
    Node::Map(vec![
        ("deviceinfo".to_owned(), record(&document.deviceinfo)),
        (
            "tsdata".to_owned(),
            Node::Array(document.tsdata.iter().map(record).collect()),
        ),
    ])
}

/// `document` with its numbers at FLOAT precision, as they are stored.
/// serde_json parses a float to within one unit in the last place of an f64
/// (exactly only with its `float_roundtrip` feature), which the f32 of a
/// FLOAT column absorbs.
fn as_stored(mut document: InsertDocument) -> InsertDocument {
    let records = std::iter::once(&mut document.deviceinfo).chain(&mut document.tsdata);
    for (_, field) in records.flat_map(|r| r.0.iter_mut()) {
        if let Field::Float(v) = field {
            *v = f64::from(*v as f32);
        }
    }
    document
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn valid_documents_decode_exactly_and_insert_every_row(document in valid_document()) {
        let node = node_of(&document);
        for (body, format) in [
            (node.to_json(), Format::Json),
            (node.to_msgpack(), Format::MessagePack),
        ] {
            let decoded = InsertDocument::decode(&body, format).unwrap();
            prop_assert_eq!(&as_stored(decoded), &document);
            let mut store = MemoryStore::default();
            let rows = insert_into(&mut store, &body, format);
            prop_assert_eq!(rows, Ok(document.tsdata.len() as u64));
            let stored = store.rows.iter().filter(|(c, _)| c == DEVICE).count();
            prop_assert_eq!(stored, document.tsdata.len());
        }
    }
}

// ---------------------------------------------------------------------------
// Regressions: inputs the properties found, kept as plain tests
// ---------------------------------------------------------------------------

mod regressions {
    use super::*;

    /// A MessagePack map header may claim four billion fields in five bytes;
    /// the decoder reserved room for all of them before reading one, and the
    /// allocation aborted the process (a trap in the component).
    #[test]
    fn a_map_header_claiming_billions_of_fields_is_a_400() {
        for header in [
            [0xdf, 0xff, 0xff, 0xff, 0xff],
            [0xdf, 0x10, 0x00, 0x00, 0x00],
        ] {
            let mut body = vec![0x82];
            Node::Str("deviceinfo".into()).msgpack(&mut body);
            body.extend_from_slice(&header);
            let err = InsertDocument::decode(&body, Format::MessagePack).unwrap_err();
            assert_eq!(err.status, 400, "{err:?}");
        }
    }

    /// Nesting far deeper than any document overflows no stack: JSON skips a
    /// nested value without recursing, so the document decodes and the insert
    /// refuses the field; MessagePack stops at its decoder's depth limit.
    #[test]
    fn deep_nesting_is_a_400() {
        let depth = 100_000;
        let json = format!(
            r#"{{"deviceinfo":{{"a":{}{}}},"tsdata":[]}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let err = insert_into(&mut MemoryStore::default(), json.as_bytes(), Format::Json);
        assert_eq!(err.unwrap_err().error, "unsupported value");
        let mut msgpack = vec![0x82];
        Node::Str("deviceinfo".into()).msgpack(&mut msgpack);
        msgpack.push(0x81);
        Node::Str("a".into()).msgpack(&mut msgpack);
        msgpack.extend(std::iter::repeat_n(0x91, depth));
        msgpack.push(0xc0);
        Node::Str("tsdata".into()).msgpack(&mut msgpack);
        msgpack.push(0x90);
        let err = InsertDocument::decode(&msgpack, Format::MessagePack).unwrap_err();
        assert_eq!(err.status, 400, "{err:?}");
        assert!(err.detail.as_str().unwrap().contains("depth"), "{err:?}");
    }
}
