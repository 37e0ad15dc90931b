package crosswire

import (
	"bytes"
	"errors"
	"io"
	"math"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// reader decodes MessagePack from one in-memory buffer with the library's
// low-level Decoder, checking every declared length against the bytes that are
// left before allocating, and reporting failures as *DecodeError.
type reader struct {
	r *bytes.Reader
	d *msgpack.Decoder
}

func newReader(b []byte) *reader {
	r := bytes.NewReader(b)
	// bytes.Reader is an io.ByteScanner, so the Decoder reads it directly and
	// r.Len() is exactly what is left.
	return &reader{r: r, d: msgpack.NewDecoder(r)}
}

// kind classes of MessagePack codes.
type kind int

const (
	kindInvalid kind = iota
	kindNil
	kindBool
	kindUint // positive ints (any width)
	kindInt  // signed ints (may hold non-negative values)
	kindFloat
	kindStr
	kindBin
	kindArray
	kindMap
	kindExt
)

func (k kind) String() string {
	return [...]string{"invalid", "nil", "bool", "uint", "int", "float", "str", "bin", "array", "map", "ext"}[k]
}

func kindOf(c byte) kind {
	switch {
	case msgpcode.IsFixedNum(c):
		if c <= msgpcode.PosFixedNumHigh {
			return kindUint
		}
		return kindInt
	case msgpcode.IsFixedMap(c):
		return kindMap
	case msgpcode.IsFixedArray(c):
		return kindArray
	case msgpcode.IsFixedString(c):
		return kindStr
	}
	switch c {
	case msgpcode.Nil:
		return kindNil
	case msgpcode.False, msgpcode.True:
		return kindBool
	case msgpcode.Uint8, msgpcode.Uint16, msgpcode.Uint32, msgpcode.Uint64:
		return kindUint
	case msgpcode.Int8, msgpcode.Int16, msgpcode.Int32, msgpcode.Int64:
		return kindInt
	case msgpcode.Float, msgpcode.Double:
		return kindFloat
	case msgpcode.Str8, msgpcode.Str16, msgpcode.Str32:
		return kindStr
	case msgpcode.Bin8, msgpcode.Bin16, msgpcode.Bin32:
		return kindBin
	case msgpcode.Array16, msgpcode.Array32:
		return kindArray
	case msgpcode.Map16, msgpcode.Map32:
		return kindMap
	case msgpcode.FixExt1, msgpcode.FixExt2, msgpcode.FixExt4, msgpcode.FixExt8, msgpcode.FixExt16,
		msgpcode.Ext8, msgpcode.Ext16, msgpcode.Ext32:
		return kindExt
	}
	return kindInvalid // 0xc1, never used
}

// libErr maps an error from the msgpack library onto a decode code.
func libErr(err error, field string) *DecodeError {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return decodeErr(DecodeTruncated, field, "the bytes end before the value does")
	}
	return decodeErr(DecodeMalformed, field, "%v", err)
}

// peek returns the kind of the next value without consuming it.
func (r *reader) peek(field string) (kind, error) {
	c, err := r.d.PeekCode()
	if err != nil {
		return kindInvalid, libErr(err, field)
	}
	k := kindOf(c)
	if k == kindInvalid {
		return k, decodeErr(DecodeMalformed, field, "reserved MessagePack code 0x%02x", c)
	}
	return k, nil
}

func (r *reader) expect(field string, want ...kind) (kind, error) {
	k, err := r.peek(field)
	if err != nil {
		return k, err
	}
	for _, w := range want {
		if k == w {
			return k, nil
		}
	}
	return k, decodeErr(DecodeWrongType, field, "expected %s, got %s", want[0], k)
}

// rawLen reads a str or bin header and checks the length against what is
// left (truncated) and against max (too_large) before anything is allocated.
func (r *reader) rawLen(field string, max int) (int, error) {
	n, err := r.d.DecodeBytesLen()
	if err != nil {
		return 0, libErr(err, field)
	}
	if max >= 0 && n > max {
		return 0, decodeErr(DecodeTooLarge, field, "%d bytes > max %d", n, max)
	}
	if n > r.r.Len() {
		return 0, decodeErr(DecodeTruncated, field, "declares %d bytes, %d left", n, r.r.Len())
	}
	return n, nil
}

// str reads a str of at most max characters (max < 0: no limit) holding valid
// UTF-8. Before allocating, the byte length is bounded by 4*max (the widest
// UTF-8 encoding of max characters); the character count is checked after.
func (r *reader) str(field string, max int) (string, error) {
	if _, err := r.expect(field, kindStr); err != nil {
		return "", err
	}
	bound := max
	if max >= 0 {
		bound = 4 * max
	}
	n, err := r.rawLen(field, bound)
	if err != nil {
		return "", err
	}
	b := make([]byte, n)
	if err := r.d.ReadFull(b); err != nil {
		return "", libErr(err, field)
	}
	if !utf8.Valid(b) {
		return "", decodeErr(DecodeInvalidValue, field, "invalid UTF-8")
	}
	if max >= 0 && n > max {
		if chars := utf8.RuneCount(b); chars > max {
			return "", decodeErr(DecodeTooLarge, field, "%d characters > max %d", chars, max)
		}
	}
	return string(b), nil
}

// bin reads a bin of at most max bytes; the result is non-nil even when empty.
func (r *reader) bin(field string, max int) ([]byte, error) {
	if _, err := r.expect(field, kindBin); err != nil {
		return nil, err
	}
	n, err := r.rawLen(field, max)
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if err := r.d.ReadFull(b); err != nil {
		return nil, libErr(err, field)
	}
	return b, nil
}

// uint reads a non-negative integer of any width (a negative one is invalid_value).
func (r *reader) uint(field string) (uint64, error) {
	k, err := r.expect(field, kindUint, kindInt)
	if err != nil {
		return 0, err
	}
	if k == kindUint {
		n, err := r.d.DecodeUint64()
		if err != nil {
			return 0, libErr(err, field)
		}
		return n, nil
	}
	n, err := r.d.DecodeInt64()
	if err != nil {
		return 0, libErr(err, field)
	}
	if n < 0 {
		return 0, decodeErr(DecodeInvalidValue, field, "must be ≥ 0, got %d", n)
	}
	return uint64(n), nil
}

// int reads a 64-bit signed integer of any width (uint64 above MaxInt64 is wrong_type).
func (r *reader) int(field string) (int64, error) {
	k, err := r.expect(field, kindInt, kindUint)
	if err != nil {
		return 0, err
	}
	if k == kindUint {
		n, err := r.d.DecodeUint64()
		if err != nil {
			return 0, libErr(err, field)
		}
		if n > math.MaxInt64 {
			return 0, decodeErr(DecodeWrongType, field, "%d does not fit a 64-bit signed integer", n)
		}
		return int64(n), nil
	}
	n, err := r.d.DecodeInt64()
	if err != nil {
		return 0, libErr(err, field)
	}
	return n, nil
}

func (r *reader) boolean(field string) (bool, error) {
	if _, err := r.expect(field, kindBool); err != nil {
		return false, err
	}
	b, err := r.d.DecodeBool()
	if err != nil {
		return false, libErr(err, field)
	}
	return b, nil
}

// float reads a float32/64, or an integer as a float.
func (r *reader) float(field string) (float64, error) {
	k, err := r.expect(field, kindFloat, kindUint, kindInt)
	if err != nil {
		return 0, err
	}
	switch k {
	case kindUint:
		n, err := r.d.DecodeUint64()
		return float64(n), wrapLib(err, field)
	case kindInt:
		n, err := r.d.DecodeInt64()
		return float64(n), wrapLib(err, field)
	}
	f, err := r.d.DecodeFloat64()
	return f, wrapLib(err, field)
}

func wrapLib(err error, field string) error {
	if err == nil {
		return nil
	}
	return libErr(err, field)
}

// mapLen reads a map header; every entry needs at least 2 bytes, so a count
// larger than that is truncated before anything is sized from it.
func (r *reader) mapLen(field string) (int, error) {
	if _, err := r.expect(field, kindMap); err != nil {
		return 0, err
	}
	n, err := r.d.DecodeMapLen()
	if err != nil {
		return 0, libErr(err, field)
	}
	if n*2 > r.r.Len() {
		return 0, decodeErr(DecodeTruncated, field, "map declares %d entries, %d bytes left", n, r.r.Len())
	}
	return n, nil
}

func (r *reader) arrayLen(field string) (int, error) {
	if _, err := r.expect(field, kindArray); err != nil {
		return 0, err
	}
	n, err := r.d.DecodeArrayLen()
	if err != nil {
		return 0, libErr(err, field)
	}
	if n > r.r.Len() {
		return 0, decodeErr(DecodeTruncated, field, "array declares %d items, %d bytes left", n, r.r.Len())
	}
	return n, nil
}

// key reads a map key, which must be a str.
func (r *reader) key(field string) (string, error) {
	return r.str(field, -1)
}

// isNil consumes a nil and reports true if the next value is nil.
func (r *reader) isNil() bool {
	c, err := r.d.PeekCode()
	if err != nil || c != msgpcode.Nil {
		return false
	}
	_ = r.d.DecodeNil()
	return true
}

// MaxNesting is the deepest container nesting (arrays and maps) a frame body
// or an envelope may have (spec/protocol.md, "Nesting limit"); the top-level
// map is level 1.
const MaxNesting = 64

// nestingErr is the error for input nested deeper than MaxNesting.
func nestingErr(field string) *DecodeError {
	return decodeErr(DecodeMalformed, field,
		"MessagePack nested deeper than %d levels (the protocol's nesting limit)", MaxNesting)
}

// skip skips one value of any shape that sits directly in a top-level map
// (level 2). It does not recurse, and it fails with malformed once containers
// nest deeper than MaxNesting, so deeply nested input can neither exhaust the
// stack nor pass unnoticed.
func (r *reader) skip(field string) error {
	// pending[i] counts the values still to read at level i+2.
	pending := make([]int, 1, 8)
	pending[0] = 1
	for len(pending) > 0 {
		top := len(pending) - 1
		if pending[top] == 0 {
			pending = pending[:top]
			continue
		}
		pending[top]--
		k, err := r.peek(field)
		if err != nil {
			return err
		}
		switch k {
		case kindMap, kindArray:
			var n int
			if k == kindMap {
				n, err = r.d.DecodeMapLen()
				n *= 2
			} else {
				n, err = r.d.DecodeArrayLen()
			}
			if err != nil {
				return libErr(err, field)
			}
			if n > r.r.Len() {
				return decodeErr(DecodeTruncated, field, "%s declares %d values, %d bytes left", k, n, r.r.Len())
			}
			// this container is at level len(pending)+1
			if len(pending)+1 > MaxNesting {
				return nestingErr(field)
			}
			pending = append(pending, n)
		default:
			if err := r.d.Skip(); err != nil {
				return libErr(err, field)
			}
		}
	}
	return nil
}

// end fails with malformed if bytes are left after the value.
func (r *reader) end() error {
	if n := r.r.Len(); n > 0 {
		return decodeErr(DecodeMalformed, "", "%d trailing bytes after the value", n)
	}
	return nil
}
