package crosswire

import (
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestNewEventDecodeRoundTrip(t *testing.T) {
	type order struct {
		ID  int    `msgpack:"order_id" json:"order_id"`
		SKU string `msgpack:"sku" json:"sku"`
	}
	ev := MustNewEvent("order.created", order{ID: 7, SKU: "A-1"})
	ev.Source = "/orders"
	if ev.DataContentType != ContentTypeMsgpack || len(ev.ID) != 32 || ev.Time == "" {
		t.Fatalf("NewEvent = %+v", ev)
	}
	b, err := EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	var o order
	if err := got.Decode(&o); err != nil || o != (order{7, "A-1"}) {
		t.Errorf("Decode = %+v, %v", o, err)
	}
	js, err := NewEventJSON("order.created", order{ID: 8})
	if err != nil {
		t.Fatal(err)
	}
	if err := js.Decode(&o); err != nil || o.ID != 8 {
		t.Errorf("JSON Decode = %+v, %v", o, err)
	}
	if err := (&Event{}).Decode(&o); err == nil {
		t.Error("Decode of an event without data succeeded")
	}
}

func TestEncodeRefusesInvalidEvents(t *testing.T) {
	base := func() *Event { return &Event{ID: "1", Source: "/s", Type: "t"} }
	cases := []struct {
		name string
		mut  func(*Event)
		want error
	}{
		{"no id", func(e *Event) { e.ID = "" }, ErrMissingField},
		{"long type", func(e *Event) { e.Type = strings.Repeat("t", 257) }, ErrTooLarge},
		{"bad time", func(e *Event) { e.Time = "yesterday" }, ErrInvalidValue},
		{"bad traceparent", func(e *Event) { e.TraceParent = "00-xyz" }, ErrInvalidValue},
		{"ext name", func(e *Event) { e.Extensions = map[string]any{"Bad": "x"} }, ErrInvalidExtensionName},
		{"ext float", func(e *Event) { e.Extensions = map[string]any{"ratio": 0.5} }, ErrWrongType},
		{"ext too big", func(e *Event) { e.Extensions = map[string]any{"big": strings.Repeat("x", 4097)} }, ErrTooLarge},
		{"specversion", func(e *Event) { e.SpecVersion = "0.3" }, ErrInvalidValue},
	}
	for _, c := range cases {
		ev := base()
		c.mut(ev)
		if _, err := EncodeEvent(ev); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
		}
	}
	ev := base()
	ev.SetDeadline(time.UnixMilli(1795860000000))
	ev.Extensions = map[string]any{"n": 3, "u": uint16(4), "b": []byte{1}}
	b, err := EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Deadline != 1795860000000 || got.Extensions["n"] != int64(3) || got.Extensions["u"] != int64(4) {
		t.Errorf("round trip %+v", got)
	}
}

func TestErrorInfoFromError(t *testing.T) {
	info := ErrorInfoFromError(Retryable(CodeResourceExhausted, errors.New("slow"), 1500*time.Millisecond))
	if info.Code != CodeResourceExhausted || !info.Retryable || info.RetryAfter == nil || *info.RetryAfter != 1.5 || info.Runtime != "go" {
		t.Errorf("retryable: %+v", info)
	}
	wrapped := errors.Join(errors.New("context"), Permanent(CodeNotFound, errors.New("gone")))
	if info := ErrorInfoFromError(wrapped); info.Code != CodeNotFound || info.Retryable {
		t.Errorf("wrapped permanent: %+v", info)
	}
	long := ErrorInfoFromError(errors.New(strings.Repeat("é", 3000)))
	if len(long.Message) > MaxErrorMessage || !strings.HasPrefix(long.Message, "é") {
		t.Errorf("message not cut to %d bytes at a rune boundary: %d", MaxErrorMessage, len(long.Message))
	}
	if _, err := EncodeErrorInfo(&long); err != nil {
		t.Error(err)
	}
	for _, c := range []ErrorCode{CodeInvalidArgument, CodeNotFound, CodeFailedPrecondition, CodePermissionDenied, CodeRejected, CodeUnimplemented} {
		if c.DefaultRetryable() {
			t.Errorf("%s default retryable", c)
		}
	}
	if !CodeTimeout.DefaultRetryable() || ErrorCode("teapot").Valid() {
		t.Error("code table wrong")
	}
}

func TestDecodeNeverAllocatesFromDeclaredLength(t *testing.T) {
	// A bin32 claiming ~16 MiB (within the data limit) inside a 13-byte envelope is truncated, found
	// before any buffer of that size exists.
	b := []byte{0xde, 0x00, 0x01, 0xa4, 'd', 'a', 't', 'a', 0xc6, 0x00, 0xff, 0xff, 0xf0}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := DecodeEvent(b)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncated) {
		t.Errorf("err = %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("decoding allocated %d bytes", n)
	}
	// A map claiming 2^32-1 entries is truncated, not a giant allocation.
	if _, err := DecodeEvent([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}); !errors.Is(err, ErrTruncated) {
		t.Errorf("map32: %v", err)
	}
}

func TestEventFromJSONErrors(t *testing.T) {
	cases := []struct {
		js   string
		want error
	}{
		{`[1]`, ErrMalformed},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t"} x`, ErrMalformed},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","ratio":0.5}`, ErrWrongType},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","tags":["a"]}`, ErrWrongType},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","Bad":"x"}`, ErrInvalidExtensionName},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","data_base64":"!!"}`, ErrInvalidValue},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","attempt":0}`, ErrInvalidValue},
		{`{"specversion":"1.0","id":"1","source":"/s","type":"t","cwversion":2}`, ErrUnsupportedVersion},
		{`{"specversion":"1.0","id":"1","source":"/s"}`, ErrMissingField},
		{`{"specversion":"1.0","id":7,"source":"/s","type":"t"}`, ErrWrongType},
	}
	for _, c := range cases {
		if _, err := EventFromJSON([]byte(c.js)); !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.js, err, c.want)
		}
	}
	ev, err := EventFromJSON([]byte(`{"specversion":"1.0","id":"1","source":"/s","type":"t","data":"plain text","n":null}`))
	if err != nil || string(ev.Data) != "plain text" || len(ev.Extensions) != 0 {
		t.Errorf("string data with no JSON content type: %+v %v", ev, err)
	}
}

func TestDeeplyNestedEnvelopeIsMalformed(t *testing.T) {
	good, err := EncodeEvent(&Event{ID: "e", Source: "/s", Type: "t"})
	if err != nil {
		t.Fatal(err)
	}
	// add an unknown key holding 100,000 nested arrays to the map16 envelope
	deep := append([]byte{0xde, 0, good[2] + 1}, good[3:]...)
	deep = append(deep, 0xa1, 'x')
	deep = append(deep, bytes.Repeat([]byte{0x91}, 100000)...)
	deep = append(deep, 0x90)
	_, err = DecodeEvent(deep)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "nesting limit") {
		t.Fatalf("DecodeEvent = %v", err)
	}
	// 64 levels (the envelope map and 63 arrays) decode
	ok := append([]byte{0xde, 0, good[2] + 1}, good[3:]...)
	ok = append(ok, 0xa1, 'x')
	ok = append(ok, bytes.Repeat([]byte{0x91}, 62)...)
	ok = append(ok, 0x90)
	if _, err := DecodeEvent(ok); err != nil {
		t.Fatalf("64 levels: %v", err)
	}
}
