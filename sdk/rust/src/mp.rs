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

/// Deepest container nesting accepted (spec/protocol.md, "Nesting limit"): the
/// outermost container is level 1. Deeper input is malformed, found without recursing
/// past the limit, so hostile input cannot exhaust the stack.
pub(crate) const MAX_DEPTH: usize = 64;

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
///
/// Iterative: open containers live on an explicit stack of at most [`MAX_DEPTH`]
/// entries, so the native stack use is constant whatever the input.
pub(crate) fn parse(input: &[u8]) -> Result<Value<'_>, ParseError> {
    let mut reader = Reader { buf: input, pos: 0 };
    let value = reader.value()?;
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

/// One marker read: a whole scalar, or the header of a container.
enum Head<'a> {
    Scalar(Value<'a>),
    Array(usize),
    Map(usize),
}

/// A container being filled.
enum Open<'a> {
    Array {
        items: Vec<Value<'a>>,
        left: usize,
    },
    Map {
        items: Vec<(Value<'a>, Value<'a>)>,
        key: Option<Value<'a>>,
        left: usize,
    },
}

impl<'a> Open<'a> {
    /// Add the next element; the finished container once it has all of them.
    fn push(&mut self, value: Value<'a>) -> Option<Value<'a>> {
        match self {
            Open::Array { items, left } => {
                items.push(value);
                *left -= 1;
                (*left == 0).then(|| Value::Array(std::mem::take(items)))
            }
            Open::Map { items, key, left } => match key.take() {
                None => {
                    *key = Some(value);
                    None
                }
                Some(k) => {
                    items.push((k, value));
                    *left -= 1;
                    (*left == 0).then(|| Value::Map(std::mem::take(items)))
                }
            },
        }
    }
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

    /// One whole value, containers included.
    fn value(&mut self) -> Result<Value<'a>, ParseError> {
        let mut stack: Vec<Open<'a>> = Vec::new();
        loop {
            let at = self.pos;
            let mut value = match self.head()? {
                Head::Scalar(v) => v,
                head => {
                    if stack.len() >= MAX_DEPTH {
                        return Err(ParseError::Malformed(format!(
                            "MessagePack nested deeper than {MAX_DEPTH} levels \
                             (the protocol's nesting limit) at offset {at}"
                        )));
                    }
                    // Every element takes at least one byte (a map entry two): never
                    // reserve more than is left, whatever the header claims.
                    match head {
                        Head::Array(0) => Value::Array(Vec::new()),
                        Head::Map(0) => Value::Map(Vec::new()),
                        Head::Array(n) => {
                            let items = Vec::with_capacity(n.min(self.remaining()));
                            stack.push(Open::Array { items, left: n });
                            continue;
                        }
                        Head::Map(n) => {
                            let items = Vec::with_capacity(n.min(self.remaining() / 2));
                            stack.push(Open::Map {
                                items,
                                key: None,
                                left: n,
                            });
                            continue;
                        }
                        Head::Scalar(_) => unreachable!("handled above"),
                    }
                }
            };
            // Hand the value to its container, closing every container it completes.
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(value);
                };
                match top.push(value) {
                    None => break,
                    Some(done) => {
                        stack.pop();
                        value = done;
                    }
                }
            }
        }
    }

    fn head(&mut self) -> Result<Head<'a>, ParseError> {
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
            Marker::Str8 => self.sized(1, Value::Str)?,
            Marker::Str16 => self.sized(2, Value::Str)?,
            Marker::Str32 => self.sized(4, Value::Str)?,
            Marker::Bin8 => self.sized(1, Value::Bin)?,
            Marker::Bin16 => self.sized(2, Value::Bin)?,
            Marker::Bin32 => self.sized(4, Value::Bin)?,
            Marker::FixArray(n) => return Ok(Head::Array(usize::from(n))),
            Marker::Array16 => return Ok(Head::Array(self.len(2)?)),
            Marker::Array32 => return Ok(Head::Array(self.len(4)?)),
            Marker::FixMap(n) => return Ok(Head::Map(usize::from(n))),
            Marker::Map16 => return Ok(Head::Map(self.len(2)?)),
            Marker::Map32 => return Ok(Head::Map(self.len(4)?)),
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
        Ok(Head::Scalar(value))
    }

    /// A str or bin whose length takes `width` bytes.
    fn sized(
        &mut self,
        width: usize,
        make: fn(&'a [u8]) -> Value<'a>,
    ) -> Result<Value<'a>, ParseError> {
        let n = self.len(width)?;
        Ok(make(self.take(n)?))
    }

    fn ext(&mut self, n: usize) -> Result<Value<'a>, ParseError> {
        self.take(1)?; // type tag
        self.take(n)?;
        Ok(Value::Ext)
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

    /// `levels` nested one-element arrays around a nil.
    fn nested(levels: usize, marker: &[u8]) -> Vec<u8> {
        let mut input = marker.repeat(levels);
        input.push(0xc0);
        input
    }

    #[test]
    fn containers_close_in_the_right_places() {
        // [1, [2, {}], {"a": []}, nil]
        let input = [0x94, 0x01, 0x92, 0x02, 0x80, 0x81, 0xa1, b'a', 0x90, 0xc0];
        assert_eq!(
            parse(&input),
            Ok(Value::Array(vec![
                Value::Int(1),
                Value::Array(vec![Value::Int(2), Value::Map(vec![])]),
                Value::Map(vec![(Value::Str(b"a"), Value::Array(vec![]))]),
                Value::Nil,
            ]))
        );
        assert_eq!(parse(&input[..9]), Err(ParseError::Truncated));
    }

    #[test]
    fn nesting_up_to_the_limit_parses() {
        assert!(parse(&nested(MAX_DEPTH, &[0x91])).is_ok());
        // a map whose value is the nested chain: the map is level 1
        let mut map = vec![0x81, 0xa1, b'k'];
        map.extend(nested(MAX_DEPTH - 1, &[0x91]));
        assert!(parse(&map).is_ok());
    }

    #[test]
    fn one_level_past_the_limit_is_malformed_and_names_it() {
        for marker in [&[0x91][..], &[0xdc, 0, 1], &[0xdd, 0, 0, 0, 1]] {
            match parse(&nested(MAX_DEPTH + 1, marker)) {
                Err(ParseError::Malformed(m)) => {
                    assert!(m.contains("nested deeper than 64 levels"), "{m}")
                }
                other => panic!("expected malformed, got {other:?}"),
            }
        }
        // maps nest too: {"k": {"k": ... }}
        let mut maps = [0x81, 0xa1, b'k'].repeat(MAX_DEPTH + 1);
        maps.push(0xc0);
        assert!(matches!(parse(&maps), Err(ParseError::Malformed(_))));
    }

    #[test]
    fn hundred_thousand_levels_do_not_overflow_the_stack() {
        // Run on a thread with a deliberately small stack: the parser keeps open
        // containers on the heap, so its stack use does not grow with the input.
        let result = std::thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(|| parse(&nested(100_000, &[0x91])).map(|_| ()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert!(matches!(result, Err(ParseError::Malformed(_))));
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
