package crosswire

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

// The seed corpus is every vector file, so plain `go test` runs these targets
// over all of them; `go test -fuzz FuzzDecodeFrame` explores further.

func FuzzDecodeFrame(f *testing.F) {
	for _, dir := range []string{"frames/valid", "frames/invalid", "frames/unknown"} {
		for _, v := range loadVectors(f, dir) {
			f.Add(v.bytes(f), uint32(DefaultMaxFrame))
		}
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint32(16))
	f.Fuzz(func(t *testing.T, buf []byte, max uint32) {
		max = max%(2*DefaultMaxFrame) + 1
		fr, n, err := DecodeFrame(buf, int(max))
		if len(buf) >= 4 {
			declared := binary.BigEndian.Uint32(buf)
			if declared > max && !errors.Is(err, ErrFrameTooLarge) {
				t.Fatalf("length %d > max %d but err = %v", declared, max, err)
			}
		}
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("error %T %v is not a *FrameError", err, err)
			}
			return
		}
		if n < 5 || n > len(buf) {
			t.Fatalf("consumed %d of %d", n, len(buf))
		}
		// Canonical re-encoding is stable.
		enc := EncodeFrame(fr)
		fr2, n2, err := DecodeFrame(enc, len(enc))
		if err != nil || n2 != len(enc) {
			t.Fatalf("re-encoded frame does not decode: %v", err)
		}
		if enc2 := EncodeFrame(fr2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	for _, dir := range []string{"envelope/valid", "envelope/invalid"} {
		for _, v := range loadVectors(f, dir) {
			f.Add(v.bytes(f))
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeEvent(b)
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DecodeError", err, err)
			}
			return
		}
		enc, err := EncodeEvent(ev)
		if err != nil {
			t.Fatalf("decoded event does not encode: %v", err)
		}
		ev2, err := DecodeEvent(enc)
		if err != nil {
			t.Fatalf("canonical bytes do not decode: %v", err)
		}
		if enc2, _ := EncodeEvent(ev2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%x\n%x", enc, enc2)
		}
		if _, err := EventToJSON(ev); err != nil {
			t.Fatalf("JSON form: %v", err)
		}
	})
}

// FuzzDecodePayload: any bytes, either content type, into the test schemas and
// into `any`: a value or a *PayloadError, never a panic; and a decoded Order
// re-encodes (MessagePack and JSON) to a payload that decodes to the same value.
func FuzzDecodePayload(f *testing.F) {
	for _, sub := range []string{"valid", "invalid"} {
		for _, v := range loadPayloadVectors(f, sub) {
			if v.Msgpack != nil {
				b, _ := hex.DecodeString(*v.Msgpack)
				f.Add(b, false)
			}
			if v.JSON != nil {
				f.Add([]byte(*v.JSON), true)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte, isJSON bool) {
		ev := &Event{Type: "fuzz", DataContentType: ContentTypeMsgpack, Data: b}
		if isJSON {
			ev.DataContentType = ContentTypeJSON
		}
		for _, dst := range []any{new(vOrder), new(vNumbers), new(any)} {
			if err := ev.Decode(dst); err != nil && !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("Decode into %T: %T %v is not a *PayloadError", dst, err, err)
			}
		}
		o, err := Decode[vOrder](ev)
		if err != nil {
			return
		}
		mp, err := NewEvent("fuzz", o)
		if err != nil {
			t.Fatalf("decoded order does not encode: %v", err)
		}
		js, err := NewEventJSON("fuzz", o)
		if err != nil {
			t.Fatalf("decoded order does not encode as JSON: %v", err)
		}
		for _, again := range []*Event{mp, js} {
			o2, err := Decode[vOrder](again)
			if err != nil {
				t.Fatalf("%s re-encoding does not decode: %v", again.DataContentType, err)
			}
			if !reflect.DeepEqual(normOrder(o), normOrder(o2)) {
				t.Fatalf("%s round trip:\n%+v\n%+v", again.DataContentType, o, o2)
			}
		}
	})
}

// normOrder makes equal orders DeepEqual: nil and empty maps and bytes alike,
// times in UTC.
func normOrder(o vOrder) vOrder {
	if len(o.Tags) == 0 {
		o.Tags = nil
	}
	if len(o.Blob) == 0 {
		o.Blob = nil
	}
	if len(o.Items) == 0 {
		o.Items = nil
	}
	if o.PaidAt != nil {
		t := o.PaidAt.UTC()
		o.PaidAt = &t
	}
	return o
}
