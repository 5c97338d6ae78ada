//! OTLP `ExportTraceServiceRequest` protobuf, written straight from
//! [`SpanData`] with prost's wire primitives.
//!
//! Why not build the `opentelemetry-proto` structs and encode them: that
//! copies every attribute key into a `String` and every value into an
//! `AnyValue` first, about a hundred allocations per traced request, which
//! the profile of the traced production route showed. The field numbers
//! are OTLP's (`opentelemetry/proto/trace/v1/trace.proto`); a unit test
//! decodes the output with the `opentelemetry-proto` types.

use std::time::{SystemTime, UNIX_EPOCH};

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};

use super::span::{Kind, SpanData, Value};

/// One export request for `spans`, from a process described by `resource`.
pub fn encode(resource: &[(String, String)], spans: &[SpanData]) -> Vec<u8> {
    let res_len: usize = resource
        .iter()
        .map(|(k, v)| nested(1, kv_len(k, &StrRef(v))))
        .sum();
    let scope_len = string_len(1, "sluice") + string_len(2, env!("CARGO_PKG_VERSION"));
    let span_lens: Vec<usize> = spans.iter().map(span_len).collect();
    let scope_spans_len =
        nested(1, scope_len) + span_lens.iter().map(|l| nested(2, *l)).sum::<usize>();
    let resource_spans_len = nested(1, res_len) + nested(2, scope_spans_len);
    let total = nested(1, resource_spans_len);

    let mut b = Vec::with_capacity(total);
    message(1, resource_spans_len, &mut b);
    message(1, res_len, &mut b);
    for (k, v) in resource {
        message(1, kv_len(k, &StrRef(v)), &mut b);
        put_kv(k, &StrRef(v), &mut b);
    }
    message(2, scope_spans_len, &mut b);
    message(1, scope_len, &mut b);
    put_string(1, "sluice", &mut b);
    put_string(2, env!("CARGO_PKG_VERSION"), &mut b);
    for (s, len) in spans.iter().zip(span_lens) {
        message(2, len, &mut b);
        put_span(s, &mut b);
    }
    debug_assert_eq!(b.len(), total);
    b
}

/// What an attribute value encodes from: a span's [`Value`] or a plain string.
trait AnyRef {
    fn len(&self) -> usize;
    fn put(&self, b: &mut Vec<u8>);
}

struct StrRef<'a>(&'a str);

impl AnyRef for StrRef<'_> {
    fn len(&self) -> usize {
        string_field_len(1, self.0)
    }
    fn put(&self, b: &mut Vec<u8>) {
        put_string_always(1, self.0, b);
    }
}

impl AnyRef for Value {
    fn len(&self) -> usize {
        match self {
            Value::Str(s) => string_field_len(1, s),
            Value::Shared(s) => string_field_len(1, s),
            Value::Static(s) => string_field_len(1, s),
            Value::Bool(_) => key_len(2) + 1,
            Value::Int(i) => key_len(3) + encoded_len_varint(*i as u64),
            Value::Float(_) => key_len(4) + 8,
            Value::StrList(l) => nested(5, array_len(l)),
        }
    }
    fn put(&self, b: &mut Vec<u8>) {
        match self {
            Value::Str(s) => put_string_always(1, s, b),
            Value::Shared(s) => put_string_always(1, s, b),
            Value::Static(s) => put_string_always(1, s, b),
            Value::Bool(v) => {
                encode_key(2, WireType::Varint, b);
                encode_varint(u64::from(*v), b);
            }
            Value::Int(i) => {
                encode_key(3, WireType::Varint, b);
                encode_varint(*i as u64, b);
            }
            Value::Float(f) => {
                encode_key(4, WireType::SixtyFourBit, b);
                b.extend_from_slice(&f.to_le_bytes());
            }
            Value::StrList(l) => {
                message(5, array_len(l), b);
                for s in l {
                    message(1, StrRef(s).len(), b);
                    StrRef(s).put(b);
                }
            }
        }
    }
}

/// `ArrayValue { values: [AnyValue{string}] }`.
fn array_len(l: &[String]) -> usize {
    l.iter().map(|s| nested(1, StrRef(s).len())).sum()
}

/// `KeyValue { key = 1, value = 2 }`.
fn kv_len(k: &str, v: &dyn AnyRef) -> usize {
    string_len(1, k) + nested(2, v.len())
}

fn put_kv(k: &str, v: &dyn AnyRef, b: &mut Vec<u8>) {
    put_string(1, k, b);
    message(2, v.len(), b);
    v.put(b);
}

const SPAN_KIND_INTERNAL: u64 = 1;
const SPAN_KIND_SERVER: u64 = 2;
const SPAN_KIND_CLIENT: u64 = 3;
const STATUS_CODE_ERROR: u64 = 2;

fn kind(k: Kind) -> u64 {
    match k {
        Kind::Internal => SPAN_KIND_INTERNAL,
        Kind::Server => SPAN_KIND_SERVER,
        Kind::Client => SPAN_KIND_CLIENT,
    }
}

fn status_len(s: &SpanData) -> usize {
    match &s.error {
        Some(m) => string_len(2, m) + key_len(3) + encoded_len_varint(STATUS_CODE_ERROR),
        None => 0,
    }
}

fn span_len(s: &SpanData) -> usize {
    let mut n = bytes_len(1, &s.trace_id) + bytes_len(2, &s.span_id);
    if let Some(t) = &s.tracestate {
        n += string_len(3, t);
    }
    if let Some(p) = &s.parent {
        n += bytes_len(4, p);
    }
    n += string_len(5, &s.name);
    n += key_len(6) + encoded_len_varint(kind(s.kind));
    n += 2 * (key_len(7) + 8);
    n += s
        .attrs
        .iter()
        .map(|(k, v)| nested(9, kv_len(k, v)))
        .sum::<usize>();
    n + nested(15, status_len(s))
}

fn put_span(s: &SpanData, b: &mut Vec<u8>) {
    put_bytes(1, &s.trace_id, b);
    put_bytes(2, &s.span_id, b);
    if let Some(t) = &s.tracestate {
        put_string(3, t, b);
    }
    if let Some(p) = &s.parent {
        put_bytes(4, p, b);
    }
    put_string(5, &s.name, b);
    encode_key(6, WireType::Varint, b);
    encode_varint(kind(s.kind), b);
    for (tag, t) in [(7, s.start), (8, s.end)] {
        encode_key(tag, WireType::SixtyFourBit, b);
        b.extend_from_slice(&nanos(t).to_le_bytes());
    }
    for (k, v) in &s.attrs {
        message(9, kv_len(k, v), b);
        put_kv(k, v, b);
    }
    message(15, status_len(s), b);
    if let Some(m) = &s.error {
        put_string(2, m, b);
        encode_key(3, WireType::Varint, b);
        encode_varint(STATUS_CODE_ERROR, b);
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// A length-delimited field of `len` bytes: its key, length and body.
fn nested(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

fn message(tag: u32, len: usize, b: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, b);
    encode_varint(len as u64, b);
}

/// A proto3 string field: left out when empty, as prost does.
fn string_len(tag: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        nested(tag, s.len())
    }
}

fn put_string(tag: u32, s: &str, b: &mut Vec<u8>) {
    if !s.is_empty() {
        put_string_always(tag, s, b);
    }
}

/// A oneof member is written even when empty (it says which member is set).
fn string_field_len(tag: u32, s: &str) -> usize {
    nested(tag, s.len())
}

fn put_string_always(tag: u32, s: &str, b: &mut Vec<u8>) {
    message(tag, s.len(), b);
    b.extend_from_slice(s.as_bytes());
}

fn bytes_len(tag: u32, v: &[u8]) -> usize {
    nested(tag, v.len())
}

fn put_bytes(tag: u32, v: &[u8], b: &mut Vec<u8>) {
    message(tag, v.len(), b);
    b.extend_from_slice(v);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message;
    use std::time::Duration;

    fn span(kind: Kind, error: Option<&str>) -> SpanData {
        let start = UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789);
        SpanData {
            trace_id: [7; 16],
            span_id: [3; 8],
            parent: (kind != Kind::Server).then_some([9; 8]),
            tracestate: (kind == Kind::Server).then(|| "k=v".to_string()),
            name: "POST claude".into(),
            kind,
            start,
            end: start + Duration::from_micros(1500),
            attrs: vec![
                ("s".into(), Value::Str("text é".into())),
                ("shared".into(), Value::Shared("x".into())),
                ("static".into(), Value::Static("y")),
                ("empty".into(), Value::Str(String::new())),
                ("i".into(), Value::Int(-5)),
                ("zero".into(), Value::Int(0)),
                ("f".into(), Value::Float(0.25)),
                ("b".into(), Value::Bool(false)),
                ("l".into(), Value::StrList(vec!["a".into(), "".into()])),
            ],
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn decodes_as_otlp_with_every_field() {
        let spans = vec![
            span(Kind::Server, None),
            span(Kind::Client, Some("529")),
            span(Kind::Internal, None),
        ];
        let res = vec![("service.name".to_string(), "sluice".to_string())];
        let bytes = encode(&res, &spans);
        let got = ExportTraceServiceRequest::decode(bytes.as_slice()).unwrap();
        let rs = &got.resource_spans[0];
        let r = rs.resource.as_ref().unwrap();
        assert_eq!(r.attributes[0].key, "service.name");
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, "sluice");
        assert_eq!(ss.spans.len(), 3);
        for (s, want) in ss.spans.iter().zip(&spans) {
            assert_eq!(s.trace_id, want.trace_id);
            assert_eq!(s.span_id, want.span_id);
            assert_eq!(
                s.parent_span_id,
                want.parent.map(|p| p.to_vec()).unwrap_or_default()
            );
            assert_eq!(s.trace_state, want.tracestate.clone().unwrap_or_default());
            assert_eq!(s.name, "POST claude");
            assert_eq!(s.kind as u64, kind(want.kind));
            assert_eq!(s.start_time_unix_nano, 1_700_000_000_123_456_789);
            assert_eq!(s.end_time_unix_nano - s.start_time_unix_nano, 1_500_000);
            let v = |k: &str| {
                s.attributes
                    .iter()
                    .find(|a| a.key == k)
                    .and_then(|a| a.value.clone())
                    .and_then(|v| v.value)
            };
            assert_eq!(v("s"), Some(Any::StringValue("text é".into())));
            assert_eq!(v("empty"), Some(Any::StringValue(String::new())));
            assert_eq!(v("shared"), Some(Any::StringValue("x".into())));
            assert_eq!(v("static"), Some(Any::StringValue("y".into())));
            assert_eq!(v("i"), Some(Any::IntValue(-5)));
            assert_eq!(v("zero"), Some(Any::IntValue(0)));
            assert_eq!(v("f"), Some(Any::DoubleValue(0.25)));
            assert_eq!(v("b"), Some(Any::BoolValue(false)));
            let Some(Any::ArrayValue(l)) = v("l") else {
                panic!("list")
            };
            assert_eq!(l.values.len(), 2);
            let st = s.status.as_ref().unwrap();
            match &want.error {
                Some(m) => {
                    assert_eq!(&st.message, m);
                    assert_eq!(st.code, STATUS_CODE_ERROR as i32);
                }
                None => assert_eq!(st.code, 0),
            }
        }
    }
}
