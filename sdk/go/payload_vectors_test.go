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
	"time"
)

// The test schemas of spec/payloads.md, declared the Go way: pointers for
// optional fields, omitempty for defaulted ones, everything else required.
type vCustomer struct {
	ID    int64   `msgpack:"id"`
	Name  string  `msgpack:"name"`
	Email *string `msgpack:"email"`
}

type vItem struct {
	SKU   string  `msgpack:"sku"`
	Qty   uint32  `msgpack:"qty"`
	Price float64 `msgpack:"price"`
}

type vOrder struct {
	OrderID  int64             `msgpack:"order_id"`
	Customer vCustomer         `msgpack:"customer"`
	Items    []vItem           `msgpack:"items"`
	Note     *string           `msgpack:"note"`
	Tags     map[string]string `msgpack:"tags,omitempty"`
	PaidAt   *time.Time        `msgpack:"paid_at"`
	Blob     []byte            `msgpack:"blob,omitempty"`
}

type vNumbers struct {
	I8  int8    `msgpack:"i8"`
	U8  uint8   `msgpack:"u8"`
	I16 int16   `msgpack:"i16"`
	U16 uint16  `msgpack:"u16"`
	I32 int32   `msgpack:"i32"`
	U32 uint32  `msgpack:"u32"`
	I64 int64   `msgpack:"i64"`
	U64 uint64  `msgpack:"u64"`
	F64 float64 `msgpack:"f64"`
}

type payloadVector struct {
	Name     string          `json:"name"`
	Schema   string          `json:"schema"`
	Msgpack  *string         `json:"msgpack"`
	JSON     *string         `json:"json"`
	Expected json.RawMessage `json:"expected"`
	Error    string          `json:"error"`
}

func loadPayloadVectors(t testing.TB, sub string) []payloadVector {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(vectorsDir, "payloads", sub, "*.json"))
	if len(paths) < 20 {
		t.Fatalf("only %d payload vectors in %s", len(paths), sub)
	}
	var out []payloadVector
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var v payloadVector
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if v.Msgpack == nil && v.JSON == nil {
			t.Fatalf("%s: no form", p)
		}
		out = append(out, v)
	}
	return out
}

// forms returns the vector's encodings as events, by content type.
func (v payloadVector) forms(t *testing.T) map[string]*Event {
	t.Helper()
	out := map[string]*Event{}
	if v.Msgpack != nil {
		b, err := hex.DecodeString(*v.Msgpack)
		if err != nil {
			t.Fatal(err)
		}
		out["msgpack"] = &Event{ID: "e", Source: "/v", Type: "payload.vector", DataContentType: ContentTypeMsgpack, Data: b}
	}
	if v.JSON != nil {
		out["json"] = &Event{ID: "e", Source: "/v", Type: "payload.vector", DataContentType: ContentTypeJSON, Data: []byte(*v.JSON)}
	}
	return out
}

func newSchema(t *testing.T, name string) any {
	switch name {
	case "Order":
		return &vOrder{}
	case "Numbers":
		return &vNumbers{}
	}
	t.Fatalf("unknown schema %q", name)
	return nil
}

func TestPayloadValidVectors(t *testing.T) {
	for _, v := range loadPayloadVectors(t, "valid") {
		for form, ev := range v.forms(t) {
			t.Run(v.Name+"/"+form, func(t *testing.T) {
				dst := newSchema(t, v.Schema)
				if err := ev.Decode(dst); err != nil {
					t.Fatalf("Decode: %v", err)
				}
				dec := json.NewDecoder(bytes.NewReader(v.Expected))
				dec.UseNumber()
				var want any
				if err := dec.Decode(&want); err != nil {
					t.Fatal(err)
				}
				checkPayload(t, "$", want, reflect.ValueOf(dst).Elem())
			})
		}
	}
}

func TestPayloadInvalidVectors(t *testing.T) {
	for _, v := range loadPayloadVectors(t, "invalid") {
		for form, ev := range v.forms(t) {
			t.Run(v.Name+"/"+form, func(t *testing.T) {
				if v.Error != "invalid_argument" {
					t.Fatalf("error %q", v.Error)
				}
				dst := newSchema(t, v.Schema)
				err := ev.Decode(dst)
				var pe *PayloadError
				if !errors.As(err, &pe) || !errors.Is(err, ErrInvalidPayload) {
					t.Fatalf("Decode = %v (%+v), want a *PayloadError", err, dst)
				}
				// what a handler returning it reports
				info := ErrorInfoFromError(err)
				if info.Code != CodeInvalidArgument || info.Retryable {
					t.Errorf("ErrorInfoFromError = %+v", info)
				}
			})
		}
	}
}

// checkPayload compares a decoded Go value with the vector's expected JSON,
// field by field, naming fields by their msgpack tags.
func checkPayload(t *testing.T, path string, want any, got reflect.Value) {
	t.Helper()
	if got.Kind() == reflect.Pointer {
		if want == nil {
			if !got.IsNil() {
				t.Errorf("%s: got %v, want absent", path, got.Elem())
			}
			return
		}
		if got.IsNil() {
			t.Errorf("%s: absent, want %v", path, want)
			return
		}
		got = got.Elem()
	}
	if m, ok := want.(map[string]any); ok {
		if b, ok := m["$bin"]; ok && len(m) == 1 {
			if got.Kind() != reflect.Slice || hex.EncodeToString(got.Bytes()) != b {
				t.Errorf("%s: got %v, want bytes %s", path, got, b)
			}
			return
		}
		if ts, ok := m["$time"]; ok && len(m) == 1 {
			w, err := time.Parse(time.RFC3339Nano, ts.(string))
			g, isTime := got.Interface().(time.Time)
			if err != nil || !isTime || !g.Equal(w) {
				t.Errorf("%s: got %v, want %s", path, got, ts)
			}
			return
		}
		switch got.Kind() {
		case reflect.Struct:
			fields := structFields(got.Type())
			if len(fields.list) != len(m) {
				t.Errorf("%s: %d fields, expected lists %d", path, len(fields.list), len(m))
			}
			for _, f := range fields.list {
				w, ok := m[f.name]
				if !ok {
					t.Errorf("%s.%s: not in expected", path, f.name)
					continue
				}
				checkPayload(t, path+"."+f.name, w, got.FieldByIndex(f.index))
			}
		case reflect.Map:
			if got.Len() != len(m) {
				t.Errorf("%s: %d entries, want %d", path, got.Len(), len(m))
			}
			for k, w := range m {
				g := got.MapIndex(reflect.ValueOf(k))
				if !g.IsValid() {
					t.Errorf("%s[%q]: missing", path, k)
					continue
				}
				checkPayload(t, path+"["+strconv.Quote(k)+"]", w, g)
			}
		default:
			t.Errorf("%s: got %s, want an object", path, got.Kind())
		}
		return
	}
	switch w := want.(type) {
	case []any:
		if got.Kind() != reflect.Slice || got.Len() != len(w) {
			t.Errorf("%s: got %v, want %d items", path, got, len(w))
			return
		}
		for i := range w {
			checkPayload(t, path+"["+strconv.Itoa(i)+"]", w[i], got.Index(i))
		}
	case json.Number:
		var g string
		switch got.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			g = strconv.FormatInt(got.Int(), 10)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			g = strconv.FormatUint(got.Uint(), 10)
		case reflect.Float32, reflect.Float64:
			f, err := strconv.ParseFloat(w.String(), 64)
			if err != nil || got.Float() != f {
				t.Errorf("%s: got %v, want %s", path, got.Float(), w)
			}
			return
		default:
			t.Errorf("%s: got %s, want a number", path, got.Kind())
			return
		}
		if strings.Contains(w.String(), ".") || g != w.String() {
			t.Errorf("%s: got %s, want %s", path, g, w)
		}
	case string:
		if got.Kind() != reflect.String || got.String() != w {
			t.Errorf("%s: got %v, want %q", path, got, w)
		}
	case bool:
		if got.Kind() != reflect.Bool || got.Bool() != w {
			t.Errorf("%s: got %v, want %v", path, got, w)
		}
	case nil:
		t.Errorf("%s: got %v, want null", path, got)
	default:
		t.Errorf("%s: unexpected expected value %T", path, want)
	}
}

// The defect this pins: JSON data used to be decoded by encoding/json, which
// ignores msgpack tags, so order_id arrived as 0 and the handler succeeded.
func TestJSONPayloadHonoursMsgpackNames(t *testing.T) {
	ev := &Event{ID: "e", Source: "/s", Type: "order.created", DataContentType: ContentTypeJSON,
		Data: []byte(`{"order_id": 4242, "customer": {"id": 9007199254740993, "name": "A"}, "items": []}`)}
	o, err := Decode[vOrder](ev)
	if err != nil || o.OrderID != 4242 || o.Customer.ID != 9007199254740993 {
		t.Fatalf("Decode = %+v, %v", o, err)
	}
}

func TestNewEventJSONWritesTheSameNames(t *testing.T) {
	note := "n"
	paid := time.Date(2026, 11, 28, 10, 0, 0, 250000000, time.UTC)
	in := vOrder{OrderID: 1 << 60, Customer: vCustomer{ID: -3, Name: "Zoë"}, Items: []vItem{{SKU: "A", Qty: 2, Price: 1.5}},
		Note: &note, Tags: map[string]string{"k": "v"}, PaidAt: &paid, Blob: []byte{0, 255}}
	js, err := NewEventJSON("order.created", in)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{`"order_id":1152921504606846976`, `"blob":"AP8="`, `"paid_at":"2026-11-28T10:00:00.25Z"`} {
		if !bytes.Contains(js.Data, []byte(name)) {
			t.Errorf("JSON %s lacks %s", js.Data, name)
		}
	}
	mp := MustNewEvent("order.created", in)
	for _, ev := range []*Event{js, mp} {
		out, err := Decode[vOrder](ev)
		if err != nil {
			t.Fatalf("%s: %v", ev.DataContentType, err)
		}
		if !reflect.DeepEqual(out, in) {
			t.Errorf("%s: round trip %+v, want %+v", ev.DataContentType, out, in)
		}
	}
}

func TestDecodeKeepsDefaultsOfOmitemptyFields(t *testing.T) {
	p := struct {
		MS   int    `msgpack:"ms,omitempty"`
		Name string `msgpack:"name"`
	}{MS: 500}
	ev := MustNewEvent("t", map[string]string{"name": "x"})
	if err := ev.Decode(&p); err != nil || p.MS != 500 || p.Name != "x" {
		t.Fatalf("Decode = %+v, %v", p, err)
	}
}

func TestPayloadErrorNamesThePath(t *testing.T) {
	ev := &Event{Type: "order.created", DataContentType: ContentTypeJSON,
		Data: []byte(`{"order_id": 1, "customer": {"id": 1, "name": "A"}, "items": [{"sku": "A", "qty": 1, "price": 1}, {"qty": 1, "price": 1}]}`)}
	_, err := Decode[vOrder](ev)
	want := "crosswire: payload of order.created does not decode: $.items[1].sku: required field is missing"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}

func TestPayloadNestingLimit(t *testing.T) {
	type deep struct {
		X any `msgpack:"x"`
	}
	deepJSON := `{"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`
	deepMP := append([]byte{0x81, 0xa1, 'x'}, bytes.Repeat([]byte{0x91}, 100000)...)
	deepMP = append(deepMP, 0x90)
	for _, ev := range []*Event{
		{Type: "t", DataContentType: ContentTypeJSON, Data: []byte(deepJSON)},
		{Type: "t", DataContentType: ContentTypeMsgpack, Data: deepMP},
	} {
		_, err := Decode[deep](ev)
		if !errors.Is(err, ErrInvalidPayload) || !strings.Contains(err.Error(), "nested deeper than 128 levels") {
			t.Errorf("%s: err = %v", ev.DataContentType, err)
		}
	}
}
