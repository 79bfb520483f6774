//! W3C trace context (`traceparent`) and the ids of a run's spans.
//!
//! Every id is derived from what the journal holds (the run id, a step's
//! place, an attempt's number and start time), so the span an attempt sends
//! in its `traceparent` is the span the tracer exports, in whichever process
//! either happens, before or after a restart.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where a run's trace hangs: the trace, and the span its run span is a child of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TraceParent {
    /// 32 lowercase hex digits.
    #[serde(with = "hex16")]
    pub trace_id: [u8; 16],
    /// 16 lowercase hex digits.
    #[serde(with = "hex8")]
    pub span_id: [u8; 8],
}

impl TraceParent {
    /// Reads a `traceparent` header (version 00, or a later one read as 00);
    /// none for a value the W3C format does not allow (all-zero ids included).
    pub(crate) fn parse(header: &str) -> Option<TraceParent> {
        let mut parts = header.trim().split('-');
        let version = parts.next()?;
        let (trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?);
        let valid_version = version.len() == 2 && version != "ff" && is_hex(version);
        if !valid_version || (version == "00" && parts.next().is_some()) || flags.len() != 2 || !is_hex(flags) {
            return None;
        }
        let trace_id: [u8; 16] = decode_hex(trace)?;
        let span_id: [u8; 8] = decode_hex(span)?;
        let zero = trace_id == [0; 16] || span_id == [0; 8];
        (!zero).then_some(TraceParent { trace_id, span_id })
    }

    /// The `traceparent` header naming this span (sampled).
    pub(crate) fn header(&self) -> String {
        format!("00-{}-{}-01", hex(&self.trace_id), hex(&self.span_id))
    }
}

/// The trace a run starts when nothing it was started by had one.
pub(crate) fn trace_of(run_id: &str) -> [u8; 16] {
    let digest = Sha256::digest(format!("trace\0{run_id}"));
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

/// A span id from the parts that name the span (never all zero).
pub(crate) fn span_id(parts: &[&str]) -> [u8; 8] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    let digest = hasher.finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn is_hex(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn decode_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !is_hex(text) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

macro_rules! hex_serde {
    ($name:ident, $n:literal) => {
        mod $name {
            pub(super) fn serialize<S: serde::Serializer>(id: &[u8; $n], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&super::hex(id))
            }
            pub(super) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; $n], D::Error> {
                let text: String = serde::Deserialize::deserialize(d)?;
                super::decode_hex(&text).ok_or_else(|| serde::de::Error::custom(concat!($n, " bytes in hex")))
            }
        }
    };
}
hex_serde!(hex16, 16);
hex_serde!(hex8, 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_reads_back_as_it_was_written_and_a_malformed_one_is_none() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let parent = TraceParent::parse(header).expect("valid");
        assert_eq!(parent.header(), header);
        assert_eq!(hex(&parent.span_id), "00f067aa0ba902b7");
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more";
        assert!(TraceParent::parse(later).is_some(), "a later version's extra fields are ignored");
    }

    #[test]
    fn ids_are_the_same_for_the_same_parts_and_differ_otherwise() {
        assert_eq!(span_id(&["r1", "attempt", "0"]), span_id(&["r1", "attempt", "0"]));
        assert_ne!(span_id(&["r1", "attempt", "0"]), span_id(&["r1", "attempt0"]));
        assert_ne!(trace_of("r1"), trace_of("r2"));
        let json = serde_json::to_value(TraceParent { trace_id: [1; 16], span_id: [2; 8] }).expect("json");
        assert_eq!(json["span_id"], "0202020202020202");
        assert_eq!(serde_json::from_value::<TraceParent>(json).expect("back").trace_id, [1; 16]);
    }
}
