//! MessagePack plumbing shared by the envelope, error-envelope and frame codecs.
//!
//! Writing goes through `rmp`'s low-level functions, which already pick the smallest
//! representation for integers, strings, binaries, arrays and maps; the one exception
//! the spec requires (the envelope's top-level map16 header) is written by hand.
//!
//! Reading parses one complete value into a borrowed [`Value`] tree. Lengths read from
//! the input are never trusted for allocation: a container reserves at most as many
//! slots as there are bytes left, so a lying header ends in `Truncated`, not in a huge
//! allocation. Nesting is capped so hostile input cannot exhaust the stack.

use rmp::encode::ByteBuf;
use rmp::Marker;

/// Deepest container nesting accepted; deeper input is reported as malformed.
const MAX_DEPTH: usize = 64;

/// Why bytes could not be parsed as exactly one MessagePack value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParseError {
    /// The input ends before the value does.
    Truncated,
    /// Not MessagePack, or bytes after the value.
    Malformed(String),
}

/// One parsed MessagePack value, borrowing strings and binaries from the input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Nil,
    Bool(bool),
    /// Every integer width, signed or not, widened.
    Int(i128),
    /// float32 or float64, widened.
    Float(f64),
    /// Raw str bytes; UTF-8 is checked by whoever reads the field.
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(Vec<Value<'a>>),
    Map(Vec<(Value<'a>, Value<'a>)>),
    Ext,
}

impl<'a> Value<'a> {
    /// The MessagePack type name, for error messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bin(_) => "bin",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Ext => "ext",
        }
    }
}

/// Parse `input` as exactly one MessagePack value (trailing bytes are malformed).
pub(crate) fn parse(input: &[u8]) -> Result<Value<'_>, ParseError> {
    let mut reader = Reader { buf: input, pos: 0 };
    let value = reader.value(0)?;
    if reader.pos != input.len() {
        return Err(ParseError::Malformed(format!(
            "{} trailing bytes after the value",
            input.len() - reader.pos
        )));
    }
    Ok(value)
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ParseError> {
        let end = self.pos.checked_add(n).ok_or(ParseError::Truncated)?;
        if end > self.buf.len() {
            return Err(ParseError::Truncated);
        }
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn be(&mut self, n: usize) -> Result<u64, ParseError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn len(&mut self, n: usize) -> Result<usize, ParseError> {
        // u32 at most: always fits a usize on the platforms tokio supports.
        Ok(self.be(n)? as usize)
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, ParseError> {
        let byte = self.take(1)?[0];
        let value = match Marker::from_u8(byte) {
            Marker::FixPos(n) => Value::Int(i128::from(n)),
            Marker::FixNeg(n) => Value::Int(i128::from(n)),
            Marker::Null => Value::Nil,
            Marker::True => Value::Bool(true),
            Marker::False => Value::Bool(false),
            Marker::U8 => Value::Int(i128::from(self.be(1)?)),
            Marker::U16 => Value::Int(i128::from(self.be(2)?)),
            Marker::U32 => Value::Int(i128::from(self.be(4)?)),
            Marker::U64 => Value::Int(i128::from(self.be(8)?)),
            Marker::I8 => Value::Int(i128::from(self.be(1)? as u8 as i8)),
            Marker::I16 => Value::Int(i128::from(self.be(2)? as u16 as i16)),
            Marker::I32 => Value::Int(i128::from(self.be(4)? as u32 as i32)),
            Marker::I64 => Value::Int(i128::from(self.be(8)? as i64)),
            Marker::F32 => Value::Float(f64::from(f32::from_bits(self.be(4)? as u32))),
            Marker::F64 => Value::Float(f64::from_bits(self.be(8)?)),
            Marker::FixStr(n) => Value::Str(self.take(usize::from(n))?),
            Marker::Str8 => {
                let n = self.len(1)?;
                Value::Str(self.take(n)?)
            }
            Marker::Str16 => {
                let n = self.len(2)?;
                Value::Str(self.take(n)?)
            }
            Marker::Str32 => {
                let n = self.len(4)?;
                Value::Str(self.take(n)?)
            }
            Marker::Bin8 => {
                let n = self.len(1)?;
                Value::Bin(self.take(n)?)
            }
            Marker::Bin16 => {
                let n = self.len(2)?;
                Value::Bin(self.take(n)?)
            }
            Marker::Bin32 => {
                let n = self.len(4)?;
                Value::Bin(self.take(n)?)
            }
            Marker::FixArray(n) => self.array(usize::from(n), depth)?,
            Marker::Array16 => {
                let n = self.len(2)?;
                self.array(n, depth)?
            }
            Marker::Array32 => {
                let n = self.len(4)?;
                self.array(n, depth)?
            }
            Marker::FixMap(n) => self.map(usize::from(n), depth)?,
            Marker::Map16 => {
                let n = self.len(2)?;
                self.map(n, depth)?
            }
            Marker::Map32 => {
                let n = self.len(4)?;
                self.map(n, depth)?
            }
            Marker::FixExt1 => self.ext(1)?,
            Marker::FixExt2 => self.ext(2)?,
            Marker::FixExt4 => self.ext(4)?,
            Marker::FixExt8 => self.ext(8)?,
            Marker::FixExt16 => self.ext(16)?,
            Marker::Ext8 => {
                let n = self.len(1)?;
                self.ext(n)?
            }
            Marker::Ext16 => {
                let n = self.len(2)?;
                self.ext(n)?
            }
            Marker::Ext32 => {
                let n = self.len(4)?;
                self.ext(n)?
            }
            Marker::Reserved => {
                return Err(ParseError::Malformed(format!(
                    "reserved MessagePack byte 0x{byte:02x} at offset {}",
                    self.pos - 1
                )))
            }
        };
        Ok(value)
    }

    fn ext(&mut self, n: usize) -> Result<Value<'a>, ParseError> {
        self.take(1)?; // type tag
        self.take(n)?;
        Ok(Value::Ext)
    }

    fn enter(&self, depth: usize) -> Result<usize, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(ParseError::Malformed(format!(
                "containers nested deeper than {MAX_DEPTH}"
            )));
        }
        Ok(depth + 1)
    }

    fn array(&mut self, n: usize, depth: usize) -> Result<Value<'a>, ParseError> {
        let depth = self.enter(depth)?;
        // Every element takes at least one byte: never reserve more than is left.
        let mut items = Vec::with_capacity(n.min(self.remaining()));
        for _ in 0..n {
            items.push(self.value(depth)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize) -> Result<Value<'a>, ParseError> {
        let depth = self.enter(depth)?;
        let mut items = Vec::with_capacity(n.min(self.remaining() / 2));
        for _ in 0..n {
            let key = self.value(depth)?;
            let value = self.value(depth)?;
            items.push((key, value));
        }
        Ok(Value::Map(items))
    }
}

/// A MessagePack writer producing the canonical forms of spec/envelope.md.
pub(crate) struct Writer {
    buf: ByteBuf,
}

// Writing into a growable buffer cannot fail (`ByteBuf`'s error type is
// `Infallible`), so the `rmp` results below carry no information and are dropped.
impl Writer {
    pub(crate) fn new() -> Self {
        Writer {
            buf: ByteBuf::new(),
        }
    }

    pub(crate) fn with_capacity(n: usize) -> Self {
        Writer {
            buf: ByteBuf::with_capacity(n),
        }
    }

    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf.into_vec()
    }

    pub(crate) fn as_vec_mut(&mut self) -> &mut Vec<u8> {
        self.buf.as_mut_vec()
    }

    /// A map16 header whatever `count` is (the envelope's top level).
    pub(crate) fn map16(&mut self, count: u16) {
        let v = self.buf.as_mut_vec();
        v.push(0xde);
        v.extend_from_slice(&count.to_be_bytes());
    }

    /// A map header of the smallest width.
    pub(crate) fn map(&mut self, count: u32) {
        let _ = rmp::encode::write_map_len(&mut self.buf, count);
    }

    pub(crate) fn array(&mut self, count: u32) {
        let _ = rmp::encode::write_array_len(&mut self.buf, count);
    }

    pub(crate) fn str(&mut self, s: &str) {
        let _ = rmp::encode::write_str(&mut self.buf, s);
    }

    pub(crate) fn bin(&mut self, b: &[u8]) {
        let _ = rmp::encode::write_bin(&mut self.buf, b);
    }

    pub(crate) fn uint(&mut self, n: u64) {
        let _ = rmp::encode::write_uint(&mut self.buf, n);
    }

    pub(crate) fn sint(&mut self, n: i64) {
        let _ = rmp::encode::write_sint(&mut self.buf, n);
    }

    pub(crate) fn bool(&mut self, b: bool) {
        let _ = rmp::encode::write_bool(&mut self.buf, b);
    }

    pub(crate) fn f64(&mut self, f: f64) {
        let _ = rmp::encode::write_f64(&mut self.buf, f);
    }

    /// `key` then a str value.
    pub(crate) fn kv_str(&mut self, key: &str, value: &str) {
        self.str(key);
        self.str(value);
    }

    /// `key` then a uint value.
    pub(crate) fn kv_uint(&mut self, key: &str, value: u64) {
        self.str(key);
        self.uint(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lying_length_is_truncated_not_allocated() {
        // array32 claiming 4 billion elements, with two bytes of content
        assert_eq!(
            parse(&[0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2]),
            Err(ParseError::Truncated)
        );
        assert_eq!(
            parse(&[0xdf, 0xff, 0xff, 0xff, 0xff, 1]),
            Err(ParseError::Truncated)
        );
    }

    #[test]
    fn deep_nesting_is_malformed() {
        let input = vec![0x91; 10_000];
        assert!(matches!(parse(&input), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn smallest_integers() {
        let mut w = Writer::new();
        w.uint(5);
        w.uint(200);
        w.sint(-1);
        w.sint(-200);
        assert_eq!(w.into_vec(), vec![0x05, 0xcc, 200, 0xff, 0xd1, 0xff, 0x38]);
    }
}
