package crosswire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// headerVector is one file of spec/vectors/headers.
type headerVector struct {
	Name        string            `json:"name"`
	Direction   string            `json:"direction"`
	Event       json.RawMessage   `json:"event"`
	EnvelopeHex string            `json:"envelope_hex"`
	Headers     map[string]string `json:"headers"`
	BodyHex     string            `json:"body_hex"`
	Error       string            `json:"error"`
}

func loadHeaderVectors(t *testing.T, kind string) []headerVector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(vectorsDir, "headers", kind, "*.json"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vectors in headers/%s (err=%v)", kind, err)
	}
	out := make([]headerVector, 0, len(paths))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var v headerVector
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if v.Name == "" || v.Headers == nil {
			t.Fatalf("%s: a vector needs a name and headers", p)
		}
		out = append(out, v)
	}
	return out
}

func mustHex(t *testing.T, name, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("%s: bad hex: %v", name, err)
	}
	return b
}

func TestHeaderVectorsValid(t *testing.T) {
	vectors := loadHeaderVectors(t, "valid")
	directions := map[string]int{}
	for _, v := range vectors {
		directions[v.Direction]++
		t.Run(v.Name, func(t *testing.T) {
			want, err := DecodeEvent(mustHex(t, v.Name, v.EnvelopeHex))
			if err != nil {
				t.Fatalf("envelope_hex: %v", err)
			}
			js, err := EventToJSON(want)
			if err != nil {
				t.Fatal(err)
			}
			assertJSONEqual(t, v.Name, js, v.Event)

			got, err := FromBinary(v.Headers, mustHex(t, v.Name, v.BodyHex))
			if err != nil {
				t.Fatalf("FromBinary: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("FromBinary\n got: %+v\nwant: %+v", got, want)
			}

			switch v.Direction {
			case "both":
				headers, body := ToBinary(want)
				if !maps.Equal(headers, v.Headers) {
					t.Errorf("ToBinary headers\n got: %v\nwant: %v", headers, v.Headers)
				}
				if h := hex.EncodeToString(body); h != v.BodyHex {
					t.Errorf("ToBinary body\n got: %s\nwant: %s", h, v.BodyHex)
				}
			case "decode":
			default:
				t.Fatalf("direction %q is neither both nor decode", v.Direction)
			}
		})
	}
	if directions["both"] == 0 || directions["decode"] == 0 {
		t.Errorf("directions %v: want vectors of both kinds", directions)
	}
}

func TestHeaderVectorsInvalid(t *testing.T) {
	for _, v := range loadHeaderVectors(t, "invalid") {
		t.Run(v.Name, func(t *testing.T) {
			ev, err := FromBinary(v.Headers, mustHex(t, v.Name, v.BodyHex))
			if err == nil {
				t.Fatalf("decoded %+v, want error %s", ev, v.Error)
			}
			wantDecodeError(t, err, v.Error)
		})
	}
}

// Every envelope vector survives the NATS form, except what binary mode does
// not carry: attempt (the broker's delivery count) and data that is present
// but empty (an empty body is no data).
func TestBinaryRoundTripOfEnvelopeVectors(t *testing.T) {
	for _, v := range loadVectors(t, "envelope/valid") {
		t.Run(v.Name, func(t *testing.T) {
			want, err := DecodeEvent(v.bytes(t))
			if err != nil {
				t.Fatal(err)
			}
			want.Attempt = 1
			if len(want.Data) == 0 {
				want.Data = nil
			}
			headers, body := ToBinary(want)
			for name, value := range headers {
				for i := 0; i < len(value); i++ {
					if needsEscape(value[i]) && value[i] != '%' {
						t.Errorf("header %s = %q holds byte %#x", name, value, value[i])
					}
				}
			}
			got, err := FromBinary(headers, body)
			if err != nil {
				t.Fatalf("FromBinary(%v): %v", headers, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip\n got: %+v\nwant: %+v", got, want)
			}
		})
	}
}

func TestHeaderValueEscaping(t *testing.T) {
	for _, c := range []struct{ in, out string }{
		{"plain/a=b;c", "plain/a=b;c"},
		{`café "50%"`, "caf%C3%A9%20%2250%25%22"},
		{"text/plain; charset=utf-8", "text/plain;%20charset=utf-8"},
		{"tab\tdel\x7f", "tab%09del%7F"},
		{"😀", "%F0%9F%98%80"},
		{"", ""},
	} {
		if got := escapeHeaderValue(c.in); got != c.out {
			t.Errorf("escape %q = %q, want %q", c.in, got, c.out)
		}
		back, err := unescapeHeaderValue("x", c.out)
		if err != nil || back != c.in {
			t.Errorf("unescape %q = %q, %v; want %q", c.out, back, err, c.in)
		}
	}
	// lower-case hex is accepted, a stray % is kept, and the octets must be UTF-8
	for in, out := range map[string]string{
		"caf%c3%a9": "café", "100%": "100%", "%zz%4": "%zz%4", "a b": "a b",
		// RFC 7230 quoting is undone first, then percent-decoding
		`"say \"hi\" 100%25"`: `say "hi" 100%`, `"a\\b"`: `a\b`, `""`: "", `"%22"`: `"`,
		`"x\`: `"x\`, `"`: `"`, `a"b"`: `a"b"`, `"a\"`: `a\`,
	} {
		if got, err := unescapeHeaderValue("x", in); err != nil || got != out {
			t.Errorf("unescape %q = %q, %v; want %q", in, got, err, out)
		}
	}
	if _, err := unescapeHeaderValue("x", "%C0%A0"); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("overlong UTF-8: %v, want invalid_value", err)
	}
}

func TestFromBinaryCodes(t *testing.T) {
	base := func(extra ...string) map[string]string {
		h := map[string]string{
			"ce-specversion": "1.0", "ce-id": "e", "ce-source": "/s", "ce-type": "t",
		}
		for i := 0; i+1 < len(extra); i += 2 {
			h[extra[i]] = extra[i+1]
		}
		return h
	}
	for _, c := range []struct {
		name    string
		headers map[string]string
		code    DecodeCode
	}{
		{"empty specversion", base("ce-specversion", ""), DecodeMissingField},
		{"negative deadline", base("ce-deadline", "-5"), DecodeInvalidValue},
		{"deadline beyond uint64", base("ce-deadline", "99999999999999999999999"), DecodeInvalidValue},
		{"deadline with underscores", base("ce-deadline", "1_000"), DecodeWrongType},
		{"deadline in other digits", base("ce-deadline", "١٢"), DecodeWrongType},
		{"deadline with a plus sign", base("ce-deadline", "+7"), DecodeWrongType},
		{"deadline with spaces", base("ce-deadline", " 7 "), DecodeWrongType},
		{"deadline a lone minus", base("ce-deadline", "-"), DecodeWrongType},
		{"deadline quoted", base("ce-deadline", `"7"`), DecodeWrongType},
		{"deadline 2^63", base("ce-deadline", "9223372036854775808"), DecodeInvalidValue},
		{"deadline 2^64-1", base("ce-deadline", "18446744073709551615"), DecodeInvalidValue},
		{"cwversion 2", base("ce-cwversion", "2"), DecodeUnsupportedVersion},
		{"cwversion not a number", base("ce-cwversion", "x"), DecodeWrongType},
		{"bool not true/false", base("ce-flag", "yes", HeaderExtTypes, "flag=bool"), DecodeWrongType},
		{"int beyond int64", base("ce-n", "9223372036854775808", HeaderExtTypes, "n=int"), DecodeTooLarge},
		{"int below int64", base("ce-n", "-9223372036854775809", HeaderExtTypes, "n=int"), DecodeTooLarge},
		{"int with a plus sign", base("ce-n", "+1", HeaderExtTypes, "n=int"), DecodeWrongType},
		{"int with underscores", base("ce-n", "1_000", HeaderExtTypes, "n=int"), DecodeWrongType},
		{"unpadded base64", base("ce-b", "AP8", HeaderExtTypes, "b=bytes"), DecodeWrongType},
		{"ce-data", base("ce-data", "x"), DecodeInvalidExtensionName},
		{"ce-extensions", base("ce-extensions", "x"), DecodeInvalidExtensionName},
		{"ce-attempt", base("ce-attempt", "2"), DecodeInvalidExtensionName},
		{"ce-datacontenttype not UTF-8", base("ce-datacontenttype", "%FF"), DecodeInvalidValue},
		{"structured avro", map[string]string{HeaderContentType: "application/cloudevents+avro"}, DecodeMalformed},
		{"structured protobuf, any case", map[string]string{"content-type": "Application/CloudEvents+Protobuf; x=y"}, DecodeMalformed},
		{"batch mode", map[string]string{HeaderContentType: ContentTypeBatch}, DecodeMalformed},
		{"bad time", base("ce-time", "yesterday"), DecodeInvalidValue},
		{"not UTF-8 once decoded", base("ce-subject", "%FF"), DecodeInvalidValue},
		{"one header twice", base("CE-ID", "other"), DecodeMalformed},
		{"a name that folds to ASCII only in Unicode", base("ce-\u212aey", "v"), DecodeInvalidExtensionName},
		{"no ce headers, no envelope", map[string]string{"Nats-Msg-Id": "e"}, DecodeTruncated},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := FromBinary(c.headers, nil)
			var de *DecodeError
			if !errors.As(err, &de) || de.Code != c.code {
				t.Errorf("got %v, want code %s", err, c.code)
			}
		})
	}
}

func TestFromBinaryAccepts(t *testing.T) {
	h := map[string]string{
		"ce-specversion": "1.0", "ce-id": "e", "ce-source": "/s", "ce-type": "t",
		"CE-ID":       "e", // the same header twice with one value
		"ce-deadline": "7", "ce-cwversion": "1",
		"ce-n": "-9223372036854775808", "ce-b": "", "ce-note": "%e2%82%ac",
		HeaderExtTypes: " n=int, b=bytes ",
		"content-type": "application/json; charset=utf-8", // taken as it is
	}
	ev, err := FromBinary(h, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Deadline == nil || *ev.Deadline != 7 || ev.Attempt != 1 || ev.DataContentType != "application/json; charset=utf-8" {
		t.Errorf("got %+v", ev)
	}
	wantExt := map[string]any{"n": int64(-9223372036854775808), "b": []byte{}, "note": "€"}
	if !reflect.DeepEqual(ev.Extensions, wantExt) {
		t.Errorf("extensions %#v, want %#v", ev.Extensions, wantExt)
	}
	body := []byte("{}")
	ev, _ = FromBinary(h, body)
	body[0] = 'x'
	if string(ev.Data) != "{}" {
		t.Errorf("Data shares the body's memory")
	}
}

func TestToBinaryLeavesOutAttempt(t *testing.T) {
	ev := &Event{ID: "e", Source: "/s", Type: "t", Attempt: 3, Data: []byte{}}
	headers, body := ToBinary(ev)
	for name := range headers {
		if strings.Contains(strings.ToLower(name), "attempt") {
			t.Errorf("header %s written", name)
		}
	}
	if len(body) != 0 {
		t.Errorf("body %q", body)
	}
}

// ce-datacontenttype is read when present (as the CloudEvents NATS binding
// writes it), Content-Type otherwise (as HTTP-style writers do).
func TestFromBinaryDataContentType(t *testing.T) {
	for _, c := range []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"both", map[string]string{"ce-datacontenttype": "a/b", HeaderContentType: "c/d"}, "a/b"},
		{"ce-datacontenttype only", map[string]string{"CE-DataContentType": "a/b"}, "a/b"},
		{"Content-Type only", map[string]string{"content-type": "c/d"}, "c/d"},
		{"quoted and escaped", map[string]string{"ce-datacontenttype": `"text/plain;%20charset=\"utf-8\""`}, `text/plain; charset="utf-8"`},
		{"neither", map[string]string{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := map[string]string{"ce-specversion": "1.0", "ce-id": "e", "ce-source": "/s", "ce-type": "t"}
			maps.Copy(h, c.headers)
			ev, err := FromBinary(h, nil)
			if err != nil {
				t.Fatal(err)
			}
			if ev.DataContentType != c.want {
				t.Errorf("datacontenttype %q, want %q", ev.DataContentType, c.want)
			}
		})
	}
	headers, _ := ToBinary(&Event{ID: "e", Source: "/s", Type: "t", DataContentType: "text/plain; charset=utf-8"})
	if _, ok := headers["ce-datacontenttype"]; ok || headers[HeaderContentType] != "text/plain; charset=utf-8" {
		t.Errorf("ToBinary wrote %v", headers)
	}
	headers, _ = ToBinary(&Event{ID: "e", Source: "/s", Type: "t", DataContentType: "text/plain; name=café"})
	if _, ok := headers[HeaderContentType]; ok || headers["ce-datacontenttype"] != "text/plain;%20name=caf%C3%A9" {
		t.Errorf("ToBinary wrote %v", headers)
	}
}

// Structured mode is any spelling of application/cloudevents+json or
// application/cloudevents, parameters aside.
func TestFromBinaryStructuredMediaTypes(t *testing.T) {
	body, err := EventToJSON(&Event{ID: "e", Source: "/s", Type: "t"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{
		"application/cloudevents+json", "application/cloudevents",
		"Application/CloudEvents; charset=utf-8", " APPLICATION/CLOUDEVENTS+JSON ;charset=utf-8",
	} {
		ev, err := FromBinary(map[string]string{"Content-Type": ct}, body)
		if err != nil || ev.ID != "e" {
			t.Errorf("%q: %+v, %v", ct, ev, err)
		}
	}
}

// deadline is at most 2^63-1 in every form an event is read from (and an
// event beyond it is not written).
func TestDeadlineBoundInBinaryAndEnvelopeDecoders(t *testing.T) {
	const maxDeadline = uint64(1<<63 - 1)
	ok := maxDeadline
	ev := &Event{ID: "e", Source: "/s", Type: "t", Deadline: &ok}
	mp, err := EncodeEvent(ev)
	if err != nil {
		t.Fatal(err)
	}
	js, err := EventToJSON(ev)
	if err != nil {
		t.Fatal(err)
	}
	headers, body := ToBinary(ev)
	for name, decode := range map[string]func() (*Event, error){
		"msgpack": func() (*Event, error) { return DecodeEvent(mp) },
		"json":    func() (*Event, error) { return EventFromJSON(js) },
		"binary":  func() (*Event, error) { return FromBinary(headers, body) },
	} {
		got, err := decode()
		if err != nil || got.Deadline == nil || *got.Deadline != maxDeadline {
			t.Errorf("%s: 2^63-1: %+v, %v", name, got, err)
		}
	}

	maxBytes := []byte{0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	if !bytes.Contains(mp, maxBytes) {
		t.Fatalf("no uint64 deadline in % x", mp)
	}
	mpOver := bytes.Replace(mp, maxBytes, []byte{0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}, 1)
	jsOver := bytes.Replace(js, []byte("9223372036854775807"), []byte("9223372036854775808"), 1)
	headersOver := maps.Clone(headers)
	headersOver["ce-deadline"] = "9223372036854775808"
	for name, decode := range map[string]func() (*Event, error){
		"msgpack": func() (*Event, error) { return DecodeEvent(mpOver) },
		"json":    func() (*Event, error) { return EventFromJSON(jsOver) },
		"binary":  func() (*Event, error) { return FromBinary(headersOver, body) },
	} {
		if _, err := decode(); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%s: 2^63: %v, want invalid_value", name, err)
		}
	}
	over := maxDeadline + 1
	if _, err := EncodeEvent(&Event{ID: "e", Source: "/s", Type: "t", Deadline: &over}); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("EncodeEvent with deadline 2^63: %v, want invalid_value", err)
	}
}
