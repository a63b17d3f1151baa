//! Protobuf messages, written by hand: each field is a key (its number and
//! wire type) and then a varint, eight or four little-endian bytes, or a
//! length and that many bytes. That is all an exporter needs, and it keeps
//! the workspace free of a protobuf compiler at build time. The callers
//! (recurrent's ONNX export, its TensorBoard event files) name the fields by
//! the numbers of their `.proto` files.
#![deny(missing_docs)]

/// One protobuf message being written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message(Vec<u8>);

impl Message {
    /// An empty message.
    pub fn new() -> Message {
        Message::default()
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint(((field as u64) << 3) | wire_type as u64);
    }

    /// An `int64`/`int32`/enum field (negative values as ten-byte varints, as protobuf does).
    pub fn int(&mut self, field: u32, v: i64) -> &mut Message {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }

    /// A `double` field.
    pub fn double(&mut self, field: u32, v: f64) -> &mut Message {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `float` field.
    pub fn float(&mut self, field: u32, v: f32) -> &mut Message {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A `bytes` field.
    pub fn bytes(&mut self, field: u32, data: &[u8]) -> &mut Message {
        self.key(field, 2);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
        self
    }

    /// A `string` field.
    pub fn string(&mut self, field: u32, s: &str) -> &mut Message {
        self.bytes(field, s.as_bytes())
    }

    /// An embedded message field.
    pub fn message(&mut self, field: u32, m: &Message) -> &mut Message {
        self.bytes(field, &m.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_follow_the_wire_format() {
        let mut m = Message::new();
        m.int(1, 150);
        // Protobuf's documented example: field 1, varint 150 -> 08 96 01.
        assert_eq!(m.clone().into_bytes(), [0x08, 0x96, 0x01]);
        let mut m = Message::new();
        m.string(2, "testing");
        assert_eq!(
            m.into_bytes(),
            [0x12, 0x07, b't', b'e', b's', b't', b'i', b'n', b'g']
        );
        let mut m = Message::new();
        m.int(3, -1);
        let bytes = m.into_bytes();
        assert_eq!(bytes.len(), 11, "a negative int64 takes ten bytes");
        assert_eq!(bytes[10], 0x01);
    }

    #[test]
    fn fixed_width_fields_are_little_endian() {
        let mut m = Message::new();
        m.double(1, 1.5).float(2, -2.0);
        let mut want = vec![0x09];
        want.extend_from_slice(&1.5f64.to_le_bytes());
        want.push(0x15);
        want.extend_from_slice(&(-2.0f32).to_le_bytes());
        assert_eq!(m.into_bytes(), want);
    }
}
