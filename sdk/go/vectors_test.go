package crosswire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

const vectorsDir = "../../spec/vectors"

type vector struct {
	Name         string          `json:"name"`
	Hex          string          `json:"hex"`
	Event        json.RawMessage `json:"event"`
	ErrorInfo    json.RawMessage `json:"error_info"`
	Frame        json.RawMessage `json:"frame"`
	Error        string          `json:"error"`
	Outcome      string          `json:"outcome"`
	MaxFrame     int             `json:"max_frame"`
	T            string          `json:"t"`
	Reencode     *bool           `json:"reencode"`
	CanonicalHex string          `json:"canonical_hex"`
	// MessageContains is a phrase the decoder's error must contain (nesting vectors).
	MessageContains string `json:"message_contains"`
}

// loadVectors reads every vector file in dir; the test fails if there are none,
// so a moved directory cannot make the suite pass vacuously.
func loadVectors(t testing.TB, dir string) []vector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(vectorsDir, dir, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vectors in %s (err=%v)", dir, err)
	}
	out := make([]vector, 0, len(paths))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out = append(out, v)
	}
	return out
}

func (v vector) bytes(t testing.TB) []byte {
	b, err := hex.DecodeString(v.Hex)
	if err != nil {
		t.Fatalf("%s: bad hex: %v", v.Name, err)
	}
	return b
}

func (v vector) wantHex() string {
	if v.Reencode != nil && !*v.Reencode {
		return v.CanonicalHex
	}
	return v.Hex
}

// normJSON parses JSON into a comparable value; numbers compare by value.
func normJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return normNumbers(v)
}

func normNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normNumbers(e)
		}
	case json.Number:
		if i, err := strconv.ParseInt(x.String(), 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(x.String(), 10, 64); err == nil {
			return u
		}
		f, _ := strconv.ParseFloat(x.String(), 64)
		return f
	}
	return v
}

func assertJSONEqual(t *testing.T, name string, got, want []byte) {
	t.Helper()
	if g, w := normJSON(t, got), normJSON(t, want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s: JSON form differs\n got: %s\nwant: %s", name, got, want)
	}
}

func TestEnvelopeValidVectors(t *testing.T) {
	for _, v := range loadVectors(t, "envelope/valid") {
		t.Run(v.Name, func(t *testing.T) {
			ev, err := DecodeEvent(v.bytes(t))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			js, err := EventToJSON(ev)
			if err != nil {
				t.Fatalf("to JSON: %v", err)
			}
			assertJSONEqual(t, v.Name, js, v.Event)
			enc, err := EncodeEvent(ev)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if got := hex.EncodeToString(enc); got != v.wantHex() {
				t.Errorf("re-encode\n got: %s\nwant: %s", got, v.wantHex())
			}
		})
	}
}

// The JSON form read back gives the same canonical bytes, except for bin
// extensions, which JSON carries as base64 strings.
func TestEnvelopeJSONRoundTrip(t *testing.T) {
	for _, v := range loadVectors(t, "envelope/valid") {
		if v.Name == "ext-bytes" {
			continue
		}
		t.Run(v.Name, func(t *testing.T) {
			ev, err := EventFromJSON(v.Event)
			if err != nil {
				t.Fatalf("from JSON: %v", err)
			}
			enc, err := EncodeEvent(ev)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if got := hex.EncodeToString(enc); got != v.wantHex() {
				t.Errorf("JSON → bytes\n got: %s\nwant: %s", got, v.wantHex())
			}
		})
	}
}

func TestEnvelopeInvalidVectors(t *testing.T) {
	for _, v := range loadVectors(t, "envelope/invalid") {
		t.Run(v.Name, func(t *testing.T) {
			ev, err := DecodeEvent(v.bytes(t))
			if err == nil {
				t.Fatalf("decoded %+v, want error %s", ev, v.Error)
			}
			wantDecodeError(t, err, v.Error)
		})
	}
}

func TestErrorInfoVectors(t *testing.T) {
	for _, v := range loadVectors(t, "errors/valid") {
		t.Run(v.Name, func(t *testing.T) {
			info, err := DecodeErrorInfo(v.bytes(t))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			js, err := json.Marshal(info)
			if err != nil {
				t.Fatal(err)
			}
			assertJSONEqual(t, v.Name, js, v.ErrorInfo)
			enc, err := EncodeErrorInfo(info)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if got := hex.EncodeToString(enc); got != v.wantHex() {
				t.Errorf("re-encode\n got: %s\nwant: %s", got, v.wantHex())
			}
		})
	}
	for _, v := range loadVectors(t, "errors/invalid") {
		t.Run(v.Name, func(t *testing.T) {
			_, err := DecodeErrorInfo(v.bytes(t))
			var de *DecodeError
			if !errors.As(err, &de) || string(de.Code) != v.Error {
				t.Errorf("got %v, want code %s", err, v.Error)
			}
		})
	}
}

// frameJSON is the vectors' JSON form of a frame: bin fields as {"$bin": hex}.
func frameJSON(t *testing.T, f Frame) []byte {
	t.Helper()
	bin := func(b []byte) map[string]string { return map[string]string{"$bin": hex.EncodeToString(b)} }
	m := map[string]any{"t": f.FrameType()}
	switch x := f.(type) {
	case HelloFrame:
		m["versions"], m["name"], m["runtime"], m["types"] = x.Versions, x.Name, x.Runtime, x.Types
		m["max_in_flight"], m["max_frame"] = x.MaxInFlight, x.MaxFrame
		if x.PID != 0 {
			m["pid"] = x.PID
		}
		if x.SDK != "" {
			m["sdk"] = x.SDK
		}
		if x.Schemas != nil {
			m["schemas"] = x.Schemas
		}
		if x.Token != "" {
			m["token"] = x.Token
		}
	case WelcomeFrame:
		m["version"], m["max_frame"], m["heartbeat_ms"], m["node"] = x.Version, x.MaxFrame, x.HeartbeatMS, x.Node
	case RejectFrame:
		m["reason"] = x.Reason
	case ErrorFrame:
		m["message"] = x.Message
	case GoodbyeFrame:
		if x.Reason != "" {
			m["reason"] = x.Reason
		}
	case DeliverFrame:
		m["id"], m["envelope"], m["deadline"] = x.ID, bin(x.Envelope), x.Deadline
	case ResultFrame:
		m["id"], m["ok"], m["start_ns"], m["duration_ns"] = x.ID, x.OK, x.StartNS, x.DurationNS
		if x.Error != nil {
			m["error"] = x.Error
		}
		if len(x.Emitted) > 0 {
			var l []any
			for _, b := range x.Emitted {
				l = append(l, bin(b))
			}
			m["emitted"] = l
		}
	case InitFrame, ReadyFrame, HeartbeatFrame, DrainFrame, DrainedFrame:
	default:
		t.Fatalf("unexpected frame %T", f)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFrameValidVectors(t *testing.T) {
	for _, v := range loadVectors(t, "frames/valid") {
		t.Run(v.Name, func(t *testing.T) {
			buf := v.bytes(t)
			f, n, err := DecodeFrame(buf, DefaultMaxFrame)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if n != len(buf) {
				t.Errorf("consumed %d of %d bytes", n, len(buf))
			}
			assertJSONEqual(t, v.Name, frameJSON(t, f), v.Frame)
			if got := hex.EncodeToString(EncodeFrame(f)); got != v.Hex {
				t.Errorf("re-encode\n got: %s\nwant: %s", got, v.Hex)
			}
			// Any strict prefix is incomplete, never an error.
			for _, cut := range []int{0, 3, 4, len(buf) - 1} {
				if _, _, err := DecodeFrame(buf[:cut], DefaultMaxFrame); err != ErrIncomplete {
					t.Errorf("prefix of %d bytes: %v, want ErrIncomplete", cut, err)
				}
			}
		})
	}
}

func TestFrameInvalidVectors(t *testing.T) {
	for _, v := range loadVectors(t, "frames/invalid") {
		t.Run(v.Name, func(t *testing.T) {
			f, _, err := DecodeFrame(v.bytes(t), v.MaxFrame)
			var fe *FrameError
			if !errors.As(err, &fe) {
				t.Fatalf("got frame %#v, err %v; want outcome %s", f, err, v.Outcome)
			}
			if string(fe.Outcome) != v.Outcome {
				t.Errorf("outcome %s (%v), want %s", fe.Outcome, err, v.Outcome)
			}
			if !strings.Contains(fe.Msg, v.MessageContains) {
				t.Errorf("message %q does not contain %q", fe.Msg, v.MessageContains)
			}
		})
	}
}

func TestFrameUnknownVectors(t *testing.T) {
	for _, v := range loadVectors(t, "frames/unknown") {
		t.Run(v.Name, func(t *testing.T) {
			buf := v.bytes(t)
			f, n, err := DecodeFrame(buf, DefaultMaxFrame)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			u, ok := f.(UnknownFrame)
			if !ok || u.T != v.T || n != len(buf) {
				t.Errorf("got %#v (%d bytes), want UnknownFrame{%q} of %d bytes", f, n, v.T, len(buf))
			}
		})
	}
}

func TestFrameTooLargeMessage(t *testing.T) {
	_, _, err := DecodeFrame([]byte{0xff, 0xff, 0xff, 0xff}, DefaultMaxFrame)
	want := "crosswire: frame too large: 4294967295 bytes > max 1114112"
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// wantDecodeError fails t unless err is a *DecodeError with the vector's code,
// matched both by its Code and by errors.Is.
func wantDecodeError(t *testing.T, err error, code string) {
	t.Helper()
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %T %v is not a *DecodeError", err, err)
	}
	if string(de.Code) != code {
		t.Errorf("code %s (%v), want %s", de.Code, err, code)
	}
	if !errors.Is(err, &DecodeError{Code: DecodeCode(code)}) {
		t.Errorf("errors.Is does not match code %s", code)
	}
}
