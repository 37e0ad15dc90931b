package crosswire

import (
	"bytes"
	"encoding"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// MaxPayloadNesting is the deepest container nesting Decode accepts in a payload.
const MaxPayloadNesting = 128

// ErrInvalidPayload matches every *PayloadError (errors.Is).
var ErrInvalidPayload = errors.New("crosswire: invalid payload")

// PayloadError reports event data that does not decode into the requested Go
// type (spec/payloads.md): a missing required field, a value of the wrong type
// or out of the field's range, or bytes that are not valid JSON or MessagePack.
// A handler that returns it (wrapped or not) fails with invalid_argument, not retried.
type PayloadError struct {
	Type string // the event type
	Path string // where in the payload, e.g. "$.items[1].sku"; "$" for the whole
	Msg  string
}

func (e *PayloadError) Error() string {
	return fmt.Sprintf("crosswire: payload of %s does not decode: %s: %s", e.Type, e.Path, e.Msg)
}

// Is makes errors.Is(err, ErrInvalidPayload) true.
func (e *PayloadError) Is(target error) bool { return target == ErrInvalidPayload }

// Decode decodes the data of ev into a new T; see Event.Decode.
func Decode[T any](ev *Event) (T, error) {
	var v T
	err := ev.Decode(&v)
	return v, err
}

// Decode decodes Data into v (a non-nil pointer) according to DataContentType:
// JSON for application/json and +json types, MessagePack otherwise. Both
// follow spec/payloads.md, so a payload gives the same values whatever its
// content type:
//
//   - a struct field is named by its `msgpack` tag (in JSON too), else by its
//     Go name; `msgpack:"-"` skips it; embedded structs without a tag are inlined;
//   - a field is required unless its type is a pointer (optional: nil when
//     absent or null) or its tag has omitempty (left as it is when absent);
//     a missing required field is an error; unknown fields are ignored;
//   - integers are exact (JSON never goes through float64) and must fit the
//     field's type; floats are refused for integer fields; integers are
//     accepted for float fields;
//   - []byte is MessagePack bin or, in JSON, standard padded base64;
//   - time.Time is the MessagePack timestamp extension or an RFC 3339 string
//     with an offset;
//   - a type implementing encoding.TextUnmarshaler reads a string;
//   - map keys are strings; `any` receives nil, bool, int64 (uint64 above
//     MaxInt64), float64, string, []byte, time.Time, []any or map[string]any.
//
// An absent Data is an error. Every failure is a *PayloadError.
func (e *Event) Decode(v any) error {
	perr := func(path, format string, args ...any) error {
		return &PayloadError{Type: e.Type, Path: path, Msg: fmt.Sprintf(format, args...)}
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("crosswire: Decode needs a non-nil pointer, got %T", v)
	}
	if e.Data == nil {
		return perr("$", "the event has no data")
	}
	var tree pval
	var err error
	if isJSONType(e.DataContentType) {
		tree, err = parseJSONPayload(e.Data)
	} else {
		tree, err = parseMsgpackPayload(e.Data)
	}
	if err != nil {
		return perr("$", "%v", err)
	}
	d := assigner{json: isJSONType(e.DataContentType)}
	if err := d.assign("$", tree, rv.Elem()); err != nil {
		var ae *assignErr
		if errors.As(err, &ae) {
			return perr(ae.path, "%s", ae.msg)
		}
		return err
	}
	return nil
}

// pval is one decoded payload value, before it is matched to a Go type.
type pval struct {
	k    pkind
	b    bool
	i    int64   // pInt
	u    uint64  // pUint (above MaxInt64)
	f    float64 // pFloat
	s    string  // pStr; the text of a pNum / pBig
	raw  []byte  // pBin
	t    time.Time
	arr  []pval
	keys []string // pMap: keys and vals in input order
	vals []pval
}

type pkind uint8

const (
	pNil pkind = iota
	pBool
	pInt   // fits int64
	pUint  // > MaxInt64, fits uint64
	pBig   // a JSON integer beyond 64 bits
	pFloat // a float (MessagePack float, or a JSON number with a fraction or exponent)
	pStr
	pBin
	pTime
	pExt // a MessagePack extension other than the timestamp
	pArray
	pMap
)

func (k pkind) String() string {
	return [...]string{"null", "bool", "integer", "integer", "integer", "float", "string", "bytes",
		"timestamp", "extension", "array", "object"}[k]
}

// -- JSON ---------------------------------------------------------------------------

func parseJSONPayload(b []byte) (pval, error) {
	if !utf8.Valid(b) {
		return pval{}, errors.New("JSON payload is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := jsonValue(dec, 1)
	if err != nil {
		return pval{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return pval{}, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

func jsonValue(dec *json.Decoder, depth int) (pval, error) {
	tok, err := dec.Token()
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return pval{}, fmt.Errorf("invalid JSON: %v", err)
	}
	switch x := tok.(type) {
	case nil:
		return pval{k: pNil}, nil
	case bool:
		return pval{k: pBool, b: x}, nil
	case string:
		return pval{k: pStr, s: x}, nil
	case json.Number:
		return jsonNumber(x.String())
	case json.Delim:
		if depth > MaxPayloadNesting {
			return pval{}, fmt.Errorf("nested deeper than %d levels", MaxPayloadNesting)
		}
		if x == '[' {
			v := pval{k: pArray}
			for dec.More() {
				item, err := jsonValue(dec, depth+1)
				if err != nil {
					return pval{}, err
				}
				v.arr = append(v.arr, item)
			}
			_, err := dec.Token() // ']'
			return v, wrapJSON(err)
		}
		v := pval{k: pMap}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return pval{}, wrapJSON(err)
			}
			key, _ := kt.(string)
			item, err := jsonValue(dec, depth+1)
			if err != nil {
				return pval{}, err
			}
			v.keys = append(v.keys, key)
			v.vals = append(v.vals, item)
		}
		_, err := dec.Token() // '}'
		return v, wrapJSON(err)
	}
	return pval{}, fmt.Errorf("unexpected JSON token %v", tok)
}

func wrapJSON(err error) error {
	if err != nil {
		return fmt.Errorf("invalid JSON: %v", err)
	}
	return nil
}

func jsonNumber(s string) (pval, error) {
	if strings.ContainsAny(s, ".eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return pval{}, fmt.Errorf("number %s out of the float64 range", s)
		}
		return pval{k: pFloat, f: f, s: s}, nil
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return pval{k: pInt, i: i, s: s}, nil
	}
	if u, err := strconv.ParseUint(s, 10, 64); err == nil {
		return pval{k: pUint, u: u, s: s}, nil
	}
	return pval{k: pBig, s: s}, nil
}

// -- MessagePack ---------------------------------------------------------------------

func parseMsgpackPayload(b []byte) (pval, error) {
	r := newReader(b)
	v, err := msgpackValue(r, 1)
	if err != nil {
		return pval{}, err
	}
	if err := r.end(); err != nil {
		return pval{}, errors.New("trailing bytes after the MessagePack value")
	}
	return v, nil
}

func msgpackValue(r *reader, depth int) (pval, error) {
	k, err := r.peek("")
	if err != nil {
		return pval{}, err
	}
	switch k {
	case kindNil:
		_ = r.d.DecodeNil()
		return pval{k: pNil}, nil
	case kindBool:
		b, err := r.boolean("")
		return pval{k: pBool, b: b}, err
	case kindUint:
		n, err := r.d.DecodeUint64()
		if err != nil {
			return pval{}, libErr(err, "")
		}
		if n > math.MaxInt64 {
			return pval{k: pUint, u: n}, nil
		}
		return pval{k: pInt, i: int64(n)}, nil
	case kindInt:
		n, err := r.d.DecodeInt64()
		return pval{k: pInt, i: n}, wrapLib(err, "")
	case kindFloat:
		f, err := r.d.DecodeFloat64()
		return pval{k: pFloat, f: f}, wrapLib(err, "")
	case kindStr:
		s, err := r.str("", -1)
		return pval{k: pStr, s: s}, err
	case kindBin:
		b, err := r.bin("", -1)
		return pval{k: pBin, raw: b}, err
	case kindExt:
		return msgpackExt(r)
	case kindArray, kindMap:
		if depth > MaxPayloadNesting {
			return pval{}, fmt.Errorf("nested deeper than %d levels", MaxPayloadNesting)
		}
		if k == kindArray {
			n, err := r.arrayLen("")
			if err != nil {
				return pval{}, err
			}
			v := pval{k: pArray, arr: make([]pval, 0, n)}
			for i := 0; i < n; i++ {
				item, err := msgpackValue(r, depth+1)
				if err != nil {
					return pval{}, err
				}
				v.arr = append(v.arr, item)
			}
			return v, nil
		}
		n, err := r.mapLen("")
		if err != nil {
			return pval{}, err
		}
		v := pval{k: pMap, keys: make([]string, 0, n), vals: make([]pval, 0, n)}
		for i := 0; i < n; i++ {
			key, err := r.key("")
			if err != nil {
				return pval{}, errors.New("map keys must be strings")
			}
			item, err := msgpackValue(r, depth+1)
			if err != nil {
				return pval{}, err
			}
			v.keys = append(v.keys, key)
			v.vals = append(v.vals, item)
		}
		return v, nil
	}
	return pval{}, fmt.Errorf("unexpected MessagePack %s", k)
}

// msgpackExt reads an extension; type -1 is the timestamp (32, 64 or 96 bits).
func msgpackExt(r *reader) (pval, error) {
	id, n, err := r.d.DecodeExtHeader()
	if err != nil {
		return pval{}, libErr(err, "")
	}
	if n > r.r.Len() {
		return pval{}, decodeErr(DecodeTruncated, "", "extension declares %d bytes, %d left", n, r.r.Len())
	}
	b := make([]byte, n)
	if err := r.d.ReadFull(b); err != nil {
		return pval{}, libErr(err, "")
	}
	if id != -1 {
		return pval{k: pExt}, nil
	}
	var sec int64
	var nsec uint32
	switch n {
	case 4:
		sec = int64(binary.BigEndian.Uint32(b))
	case 8:
		x := binary.BigEndian.Uint64(b)
		nsec, sec = uint32(x>>34), int64(x&(1<<34-1))
	case 12:
		nsec, sec = binary.BigEndian.Uint32(b), int64(binary.BigEndian.Uint64(b[4:]))
	default:
		return pval{}, fmt.Errorf("timestamp extension of %d bytes", n)
	}
	if nsec >= 1e9 {
		return pval{}, fmt.Errorf("timestamp nanoseconds %d out of range", nsec)
	}
	t := time.Unix(sec, int64(nsec)).UTC()
	if !timeInRange(t) {
		return pval{}, fmt.Errorf("timestamp %d s outside the years 1-9999", sec)
	}
	return pval{k: pTime, t: t}, nil
}

// timeInRange: timestamps every SDK (and RFC 3339) can hold, years 1-9999.
func timeInRange(t time.Time) bool { return t.Year() >= 1 && t.Year() <= 9999 }

// -- matching values to Go types ---------------------------------------------------

type assignErr struct{ path, msg string }

func (e *assignErr) Error() string { return e.path + ": " + e.msg }

type assigner struct{ json bool }

var (
	timeType            = reflect.TypeOf(time.Time{})
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

func wrong(path string, want string, v pval) error {
	return &assignErr{path, fmt.Sprintf("expected %s, got %s", want, v.k)}
}

func (a assigner) assign(path string, v pval, rv reflect.Value) error {
	t := rv.Type()
	if t.Kind() == reflect.Pointer {
		if v.k == pNil {
			rv.SetZero()
			return nil
		}
		elem := reflect.New(t.Elem())
		if err := a.assign(path, v, elem.Elem()); err != nil {
			return err
		}
		rv.Set(elem)
		return nil
	}
	if t == timeType {
		return a.timestamp(path, v, rv)
	}
	if t.Kind() != reflect.Interface && reflect.PointerTo(t).Implements(textUnmarshalerType) {
		if v.k != pStr {
			return wrong(path, "string", v)
		}
		if err := rv.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(v.s)); err != nil {
			return &assignErr{path, err.Error()}
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Interface:
		if t.NumMethod() != 0 {
			return &assignErr{path, fmt.Sprintf("cannot decode into the interface type %s", t)}
		}
		g, err := generic(path, v)
		if err != nil {
			return err
		}
		if g == nil {
			rv.SetZero()
		} else {
			rv.Set(reflect.ValueOf(g))
		}
		return nil
	case reflect.Struct:
		return a.structValue(path, v, rv)
	case reflect.Bool:
		if v.k != pBool {
			return wrong(path, "bool", v)
		}
		rv.SetBool(v.b)
	case reflect.String:
		if v.k != pStr {
			return wrong(path, "string", v)
		}
		rv.SetString(v.s)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		switch {
		case v.k == pInt && !rv.OverflowInt(v.i):
			rv.SetInt(v.i)
		case v.k == pInt || v.k == pUint || v.k == pBig:
			return &assignErr{path, fmt.Sprintf("integer %s out of the range of %s", v.intText(), t)}
		default:
			return wrong(path, "integer", v)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		switch {
		case v.k == pInt && v.i >= 0 && !rv.OverflowUint(uint64(v.i)):
			rv.SetUint(uint64(v.i))
		case v.k == pUint && !rv.OverflowUint(v.u):
			rv.SetUint(v.u)
		case v.k == pInt || v.k == pUint || v.k == pBig:
			return &assignErr{path, fmt.Sprintf("integer %s out of the range of %s", v.intText(), t)}
		default:
			return wrong(path, "integer", v)
		}
	case reflect.Float32, reflect.Float64:
		var f float64
		switch v.k {
		case pFloat:
			f = v.f
		case pInt:
			f = float64(v.i)
		case pUint:
			f = float64(v.u)
		case pBig:
			f, _ = strconv.ParseFloat(v.s, 64)
		default:
			return wrong(path, "number", v)
		}
		if rv.OverflowFloat(f) {
			return &assignErr{path, fmt.Sprintf("%v out of the range of %s", f, t)}
		}
		rv.SetFloat(f)
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			b, err := a.bytes(path, v)
			if err != nil {
				return err
			}
			rv.SetBytes(b)
			return nil
		}
		if v.k != pArray {
			return wrong(path, "array", v)
		}
		s := reflect.MakeSlice(t, len(v.arr), len(v.arr))
		for i, item := range v.arr {
			if err := a.assign(fmt.Sprintf("%s[%d]", path, i), item, s.Index(i)); err != nil {
				return err
			}
		}
		rv.Set(s)
	case reflect.Array:
		if v.k != pArray {
			return wrong(path, "array", v)
		}
		if len(v.arr) != t.Len() {
			return &assignErr{path, fmt.Sprintf("expected %d items, got %d", t.Len(), len(v.arr))}
		}
		for i, item := range v.arr {
			if err := a.assign(fmt.Sprintf("%s[%d]", path, i), item, rv.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if t.Key().Kind() != reflect.String {
			return &assignErr{path, fmt.Sprintf("map keys must be strings, %s has %s keys", t, t.Key())}
		}
		if v.k != pMap {
			return wrong(path, "object", v)
		}
		m := reflect.MakeMapWithSize(t, len(v.keys))
		for i, key := range v.keys {
			elem := reflect.New(t.Elem()).Elem()
			if err := a.assign(fmt.Sprintf("%s[%q]", path, key), v.vals[i], elem); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(key).Convert(t.Key()), elem)
		}
		rv.Set(m)
	default:
		return &assignErr{path, fmt.Sprintf("cannot decode into %s", t)}
	}
	return nil
}

func (v pval) intText() string {
	switch v.k {
	case pInt:
		return strconv.FormatInt(v.i, 10)
	case pUint:
		return strconv.FormatUint(v.u, 10)
	}
	return v.s
}

func (a assigner) bytes(path string, v pval) ([]byte, error) {
	switch {
	case v.k == pBin:
		return v.raw, nil
	case v.k == pStr && a.json:
		b, err := base64.StdEncoding.Strict().DecodeString(v.s)
		if err != nil {
			return nil, &assignErr{path, "bytes must be standard base64 with padding: " + err.Error()}
		}
		return b, nil
	}
	if a.json {
		return nil, wrong(path, "a base64 string", v)
	}
	return nil, wrong(path, "bytes", v)
}

func (a assigner) timestamp(path string, v pval, rv reflect.Value) error {
	switch v.k {
	case pTime:
		rv.Set(reflect.ValueOf(v.t))
		return nil
	case pStr:
		t, err := time.Parse(time.RFC3339Nano, v.s)
		if err != nil || !timePattern.MatchString(v.s) {
			return &assignErr{path, fmt.Sprintf("not an RFC 3339 timestamp with an offset: %q", v.s)}
		}
		rv.Set(reflect.ValueOf(t))
		return nil
	}
	return wrong(path, "timestamp", v)
}

func (a assigner) structValue(path string, v pval, rv reflect.Value) error {
	if v.k != pMap {
		return wrong(path, "object", v)
	}
	fields := structFields(rv.Type())
	seen := make([]bool, len(fields.list))
	for i, key := range v.keys {
		fi, ok := fields.byName[key]
		if !ok {
			continue // unknown field: ignored
		}
		f := fields.list[fi]
		dst, err := fieldByIndex(rv, f.index)
		if err != nil {
			return &assignErr{path + "." + key, err.Error()}
		}
		if err := a.assign(path+"."+key, v.vals[i], dst); err != nil {
			return err
		}
		seen[fi] = true
	}
	for i, f := range fields.list {
		if f.required && !seen[i] {
			return &assignErr{path + "." + f.name, "required field is missing"}
		}
	}
	return nil
}

// fieldByIndex walks to an embedded field, allocating nil embedded pointers.
func fieldByIndex(v reflect.Value, index []int) (reflect.Value, error) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				if !v.CanSet() {
					return v, errors.New("cannot set an embedded pointer to an unexported struct")
				}
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, nil
}

type fieldInfo struct {
	name     string
	index    []int
	required bool
}

type fieldSetInfo struct {
	list   []fieldInfo
	byName map[string]int
}

var fieldCache sync.Map // reflect.Type → *fieldSetInfo

// structFields lists the payload fields of a struct type, by the rules of Decode.
func structFields(t reflect.Type) *fieldSetInfo {
	if c, ok := fieldCache.Load(t); ok {
		return c.(*fieldSetInfo)
	}
	fs := &fieldSetInfo{byName: map[string]int{}}
	collectFields(t, nil, fs)
	c, _ := fieldCache.LoadOrStore(t, fs)
	return c.(*fieldSetInfo)
}

func collectFields(t reflect.Type, prefix []int, fs *fieldSetInfo) {
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		tag := sf.Tag.Get("msgpack")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		index := append(append([]int{}, prefix...), i)
		if sf.Anonymous && name == "" {
			et := sf.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct && et != timeType {
				collectFields(et, index, fs)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		if _, dup := fs.byName[name]; dup {
			continue // the shallower (earlier) field wins, as in the encoder
		}
		optional := sf.Type.Kind() == reflect.Pointer
		for _, o := range strings.Split(opts, ",") {
			if o == "omitempty" {
				optional = true
			}
		}
		fs.byName[name] = len(fs.list)
		fs.list = append(fs.list, fieldInfo{name: name, index: index, required: !optional})
	}
}

// generic converts a value for an `any` destination.
func generic(path string, v pval) (any, error) {
	switch v.k {
	case pNil:
		return nil, nil
	case pBool:
		return v.b, nil
	case pInt:
		return v.i, nil
	case pUint:
		return v.u, nil
	case pBig:
		return nil, &assignErr{path, fmt.Sprintf("integer %s does not fit 64 bits", v.s)}
	case pFloat:
		return v.f, nil
	case pStr:
		return v.s, nil
	case pBin:
		return v.raw, nil
	case pTime:
		return v.t, nil
	case pExt:
		return nil, &assignErr{path, "cannot decode a MessagePack extension into any"}
	case pArray:
		out := make([]any, len(v.arr))
		for i, item := range v.arr {
			g, err := generic(fmt.Sprintf("%s[%d]", path, i), item)
			if err != nil {
				return nil, err
			}
			out[i] = g
		}
		return out, nil
	}
	out := make(map[string]any, len(v.keys))
	for i, key := range v.keys {
		g, err := generic(fmt.Sprintf("%s[%q]", path, key), v.vals[i])
		if err != nil {
			return nil, err
		}
		out[key] = g
	}
	return out, nil
}

// -- JSON from MessagePack ---------------------------------------------------------

// msgpackToJSON rewrites a MessagePack value as JSON by the rules of Decode
// (bin as base64, timestamps as RFC 3339), so both forms carry the same names.
func msgpackToJSON(b []byte) ([]byte, error) {
	v, err := parseMsgpackPayload(b)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := writeJSONValue(&out, v); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func writeJSONValue(b *bytes.Buffer, v pval) error {
	switch v.k {
	case pNil:
		b.WriteString("null")
	case pBool:
		b.WriteString(strconv.FormatBool(v.b))
	case pInt:
		b.WriteString(strconv.FormatInt(v.i, 10))
	case pUint:
		b.WriteString(strconv.FormatUint(v.u, 10))
	case pFloat:
		f, err := json.Marshal(v.f)
		if err != nil {
			return err
		}
		b.Write(f)
	case pStr:
		writeJSONString(b, v.s)
	case pBin:
		writeJSONString(b, base64.StdEncoding.EncodeToString(v.raw))
	case pTime:
		if !timeInRange(v.t) {
			return fmt.Errorf("timestamp %v outside the years 1-9999", v.t)
		}
		writeJSONString(b, v.t.UTC().Format(time.RFC3339Nano))
	case pArray:
		b.WriteByte('[')
		for i, item := range v.arr {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeJSONValue(b, item); err != nil {
				return err
			}
		}
		b.WriteByte(']')
	case pMap:
		b.WriteByte('{')
		for i, key := range v.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, key)
			b.WriteByte(':')
			if err := writeJSONValue(b, v.vals[i]); err != nil {
				return err
			}
		}
		b.WriteByte('}')
	default:
		return fmt.Errorf("cannot write a %s as JSON", v.k)
	}
	return nil
}
