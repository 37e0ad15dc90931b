package crosswire

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

// Envelope limits (spec/envelope.md).
const (
	SpecVersion       = "1.0"
	EnvelopeVersion   = 1 // the cwversion major this SDK reads and writes
	MaxData           = 16 * 1024 * 1024
	MaxExtensions     = 32
	MaxExtensionValue = 4096

	ContentTypeMsgpack = "application/msgpack"
	ContentTypeJSON    = "application/json"
)

// Event is one envelope: CloudEvents 1.0 attributes, typed crosswire
// extensions and user extension attributes.
//
// Optional string attributes are absent when empty. Data is absent when nil and
// present (possibly empty) otherwise. An Event is a plain value: not safe to
// mutate from several goroutines at once.
type Event struct {
	SpecVersion     string // always "1.0"; empty means "1.0" when encoding
	ID              string // required, 1..256 characters
	Source          string // required, 1..1024 characters
	Type            string // required, 1..256 characters
	Subject         string
	Time            string // RFC 3339
	DataContentType string
	DataSchema      string
	Data            []byte

	CorrelationID  string
	CausationID    string
	TraceParent    string // W3C traceparent, 55 bytes
	TraceState     string
	PartitionKey   string
	IdempotencyKey string
	// Deadline is the attempt's deadline in unix milliseconds, at most 2^63-1;
	// nil when absent.
	Deadline *uint64
	// Attempt is the 1-based delivery attempt; 0 is read as 1.
	Attempt int

	// Extensions holds user extension attributes: string, int64 (any Go
	// integer when encoding), bool or []byte values.
	Extensions map[string]any
}

// NewEvent builds an event of the given type whose data is v encoded as
// MessagePack (datacontenttype application/msgpack), with a fresh id and the
// current time. If v is []byte it is used as is; nil leaves the event without
// data. Struct fields are named by their `msgpack` tags (see Event.Decode).
// Source is left empty: Emit fills it with the worker's name; set it yourself
// for an event you encode directly (EncodeEvent requires it).
//
// It returns an error if v cannot be encoded.
func NewEvent(typ string, v any) (*Event, error) {
	ev := newBareEvent(typ)
	if v == nil {
		return ev, nil
	}
	if b, ok := v.([]byte); ok {
		ev.Data = b
		return ev, nil
	}
	data, err := MarshalMsgpack(v)
	if err != nil {
		return nil, fmt.Errorf("crosswire: encode data of %s: %w", typ, err)
	}
	ev.Data = data
	ev.DataContentType = ContentTypeMsgpack
	return ev, nil
}

// MustNewEvent is NewEvent that panics if v cannot be encoded (for values
// known to encode, such as literals in tests).
func MustNewEvent(typ string, v any) *Event {
	ev, err := NewEvent(typ, v)
	if err != nil {
		panic(err)
	}
	return ev
}

// MarshalMsgpack encodes v as MessagePack the way NewEvent does: integers in
// their smallest representation and map keys sorted, so equal values give equal bytes.
func MarshalMsgpack(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(true)
	enc.SetSortMapKeys(true)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// NewEventJSON is NewEvent with the data encoded as JSON (application/json),
// under the same field names as MessagePack (the `msgpack` tags): bytes as
// base64, times as RFC 3339. A node or SDK decoding it gets the same values.
func NewEventJSON(typ string, v any) (*Event, error) {
	ev := newBareEvent(typ)
	packed, err := MarshalMsgpack(v)
	if err != nil {
		return nil, fmt.Errorf("crosswire: encode data of %s: %w", typ, err)
	}
	data, err := msgpackToJSON(packed)
	if err != nil {
		return nil, fmt.Errorf("crosswire: encode data of %s as JSON: %w", typ, err)
	}
	ev.Data = data
	ev.DataContentType = ContentTypeJSON
	return ev, nil
}

func newBareEvent(typ string) *Event {
	return &Event{
		SpecVersion: SpecVersion,
		ID:          NewID(),
		Type:        typ,
		Time:        time.Now().UTC().Format(time.RFC3339Nano),
	}
}

// NewID returns a random 128-bit id as 32 hex characters.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// DeadlineTime is the deadline as a time, and whether there is one.
func (e *Event) DeadlineTime() (time.Time, bool) {
	if e.Deadline == nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(min(*e.Deadline, math.MaxInt64/2))), true
}

// SetDeadline sets the deadline to t (in unix milliseconds).
func (e *Event) SetDeadline(t time.Time) {
	ms := uint64(max(t.UnixMilli(), 0))
	e.Deadline = &ms
}

// DedupKey is what deduplication keys on: the idempotency key, else the id.
func (e *Event) DedupKey() string {
	if e.IdempotencyKey != "" {
		return e.IdempotencyKey
	}
	return e.ID
}

// Clone returns a deep copy.
func (e *Event) Clone() *Event {
	c := *e
	if e.Data != nil {
		c.Data = append([]byte{}, e.Data...)
	}
	if e.Deadline != nil {
		d := *e.Deadline
		c.Deadline = &d
	}
	if e.Extensions != nil {
		c.Extensions = make(map[string]any, len(e.Extensions))
		for k, v := range e.Extensions {
			if b, ok := v.([]byte); ok {
				v = append([]byte{}, b...)
			}
			c.Extensions[k] = v
		}
	}
	return &c
}

func isJSONType(ct string) bool {
	media, _, _ := strings.Cut(ct, ";")
	media = strings.ToLower(strings.TrimSpace(media))
	return media == "application/json" || strings.HasSuffix(media, "+json")
}

var (
	timePattern        = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$`)
	traceparentPattern = regexp.MustCompile(`^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$`)
)

// reservedNames are the attribute keys; user extensions may not reuse them.
var reservedNames = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true, "time": true,
	"datacontenttype": true, "dataschema": true, "data": true, "data_base64": true, "cwversion": true,
	"correlationid": true, "causationid": true, "traceparent": true, "tracestate": true,
	"partitionkey": true, "idempotencykey": true, "deadline": true, "attempt": true, "extensions": true,
}

func validExtensionName(name string) bool {
	if len(name) < 1 || len(name) > 20 || reservedNames[name] {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// stringAttr describes the limits of one string attribute.
type stringAttr struct {
	name     string
	required bool
	max      int
}

var (
	attrID              = stringAttr{"id", true, 256}
	attrSource          = stringAttr{"source", true, 1024}
	attrType            = stringAttr{"type", true, 256}
	attrSubject         = stringAttr{"subject", false, 1024}
	attrTime            = stringAttr{"time", false, 64}
	attrDataContentType = stringAttr{"datacontenttype", false, 256}
	attrDataSchema      = stringAttr{"dataschema", false, 1024}
	attrCorrelationID   = stringAttr{"correlationid", false, 256}
	attrCausationID     = stringAttr{"causationid", false, 256}
	attrTraceParent     = stringAttr{"traceparent", false, 55}
	attrTraceState      = stringAttr{"tracestate", false, 512}
	attrPartitionKey    = stringAttr{"partitionkey", false, 256}
	attrIdempotencyKey  = stringAttr{"idempotencykey", false, 256}
)

func (a stringAttr) check(v string) error {
	if v == "" {
		if a.required {
			return decodeErr(DecodeMissingField, a.name, "required attribute is absent or empty")
		}
		return nil
	}
	// limits count characters (code points); the byte length bounds it from above
	if len(v) > a.max && utf8.RuneCountInString(v) > a.max {
		return decodeErr(DecodeTooLarge, a.name, "%d characters > max %d", utf8.RuneCountInString(v), a.max)
	}
	if !utf8.ValidString(v) {
		return decodeErr(DecodeInvalidValue, a.name, "invalid UTF-8")
	}
	return nil
}

// Validate checks every rule of spec/envelope.md; EncodeEvent calls it.
//
// It returns nil or a *DecodeError naming the attribute at fault.
func (e *Event) Validate() error {
	if e.SpecVersion != "" && e.SpecVersion != SpecVersion {
		return decodeErr(DecodeInvalidValue, "specversion", "must be %q, got %q", SpecVersion, e.SpecVersion)
	}
	for _, c := range []struct {
		a stringAttr
		v string
	}{
		{attrID, e.ID}, {attrSource, e.Source}, {attrType, e.Type}, {attrSubject, e.Subject},
		{attrTime, e.Time}, {attrDataContentType, e.DataContentType}, {attrDataSchema, e.DataSchema},
		{attrCorrelationID, e.CorrelationID}, {attrCausationID, e.CausationID},
		{attrTraceParent, e.TraceParent}, {attrTraceState, e.TraceState},
		{attrPartitionKey, e.PartitionKey}, {attrIdempotencyKey, e.IdempotencyKey},
	} {
		if err := c.a.check(c.v); err != nil {
			return err
		}
	}
	if e.Time != "" && !timePattern.MatchString(e.Time) {
		return decodeErr(DecodeInvalidValue, "time", "not RFC 3339: %q", e.Time)
	}
	if e.TraceParent != "" && !traceparentPattern.MatchString(e.TraceParent) {
		return decodeErr(DecodeInvalidValue, "traceparent", "not a lower-case W3C traceparent: %q", e.TraceParent)
	}
	if len(e.Data) > MaxData {
		return decodeErr(DecodeTooLarge, "data", "%d bytes > max %d", len(e.Data), MaxData)
	}
	if e.Attempt < 0 {
		return decodeErr(DecodeInvalidValue, "attempt", "must be ≥ 1, got %d", e.Attempt)
	}
	if e.Deadline != nil && *e.Deadline > math.MaxInt64 {
		return decodeErr(DecodeInvalidValue, "deadline", "must be ≤ 2^63-1, got %d", *e.Deadline)
	}
	if len(e.Extensions) > MaxExtensions {
		return decodeErr(DecodeTooLarge, "extensions", "%d entries > max %d", len(e.Extensions), MaxExtensions)
	}
	for name, v := range e.Extensions {
		if err := checkExtension(name, v); err != nil {
			return err
		}
	}
	return nil
}

func checkExtension(name string, v any) error {
	if !validExtensionName(name) {
		return decodeErr(DecodeInvalidExtensionName, name,
			"extension names are 1-20 of a-z0-9 and not an attribute name")
	}
	switch x := v.(type) {
	case string:
		if len(x) > MaxExtensionValue && utf8.RuneCountInString(x) > MaxExtensionValue {
			return decodeErr(DecodeTooLarge, name, "extension value is %d characters > max %d",
				utf8.RuneCountInString(x), MaxExtensionValue)
		}
		if !utf8.ValidString(x) {
			return decodeErr(DecodeInvalidValue, name, "invalid UTF-8")
		}
	case []byte:
		if len(x) > MaxExtensionValue {
			return decodeErr(DecodeTooLarge, name, "extension value is %d bytes > max %d", len(x), MaxExtensionValue)
		}
	case bool, int, int8, int16, int32, int64, uint8, uint16, uint32:
	case uint:
		if uint64(x) > math.MaxInt64 {
			return decodeErr(DecodeWrongType, name, "extension integer %d does not fit int64", x)
		}
	case uint64:
		if x > math.MaxInt64 {
			return decodeErr(DecodeWrongType, name, "extension integer %d does not fit int64", x)
		}
	default:
		return decodeErr(DecodeWrongType, name, "extension values are string, integer, bool or []byte, got %T", v)
	}
	return nil
}

// sortedExtensionNames returns the extension names sorted by their bytes.
func sortedExtensionNames(ext map[string]any) []string {
	names := make([]string, 0, len(ext))
	for k := range ext {
		names = append(names, k)
	}
	sort.Strings(names) // Go compares strings bytewise
	return names
}

func extensionInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case uint:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case uint64:
		return int64(x), true
	}
	return 0, false
}
