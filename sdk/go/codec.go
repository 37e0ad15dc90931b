package crosswire

import (
	"bytes"
	"encoding/binary"
	"math"

	"github.com/vmihailenco/msgpack/v5"
)

// EncodeEvent returns the canonical MessagePack bytes of ev: a map16 header,
// attributes in spec order, absent and default values omitted, smallest integer
// widths, extension keys sorted by bytes.
//
// It validates ev first and returns a *DecodeError for an event that no reader
// would accept.
func EncodeEvent(ev *Event) ([]byte, error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(128 + len(ev.Data))
	appendEvent(&buf, ev)
	return buf.Bytes(), nil
}

// appendEvent writes an already validated event.
func appendEvent(buf *bytes.Buffer, ev *Event) {
	start := buf.Len()
	// The top-level map always has a map16 header: reserve it and patch the
	// count once the present keys are known.
	buf.Write([]byte{0xde, 0, 0})
	enc := msgpack.NewEncoder(buf)
	n := 0
	str := func(key, v string) {
		if v != "" {
			_ = enc.EncodeString(key)
			_ = enc.EncodeString(v)
			n++
		}
	}
	str("specversion", SpecVersion)
	str("id", ev.ID)
	str("source", ev.Source)
	str("type", ev.Type)
	str("subject", ev.Subject)
	str("time", ev.Time)
	str("datacontenttype", ev.DataContentType)
	str("dataschema", ev.DataSchema)
	if ev.Data != nil {
		_ = enc.EncodeString("data")
		_ = enc.EncodeBytes(ev.Data)
		n++
	}
	str("correlationid", ev.CorrelationID)
	str("causationid", ev.CausationID)
	str("traceparent", ev.TraceParent)
	str("tracestate", ev.TraceState)
	str("partitionkey", ev.PartitionKey)
	str("idempotencykey", ev.IdempotencyKey)
	if ev.Deadline != nil {
		_ = enc.EncodeString("deadline")
		_ = enc.EncodeUint(*ev.Deadline)
		n++
	}
	if ev.Attempt > 1 {
		_ = enc.EncodeString("attempt")
		_ = enc.EncodeUint(uint64(ev.Attempt))
		n++
	}
	if len(ev.Extensions) > 0 {
		_ = enc.EncodeString("extensions")
		_ = enc.EncodeMapLen(len(ev.Extensions))
		for _, name := range sortedExtensionNames(ev.Extensions) {
			_ = enc.EncodeString(name)
			switch x := ev.Extensions[name].(type) {
			case string:
				_ = enc.EncodeString(x)
			case []byte:
				_ = enc.EncodeBytesLen(len(x))
				buf.Write(x)
			case bool:
				_ = enc.EncodeBool(x)
			default:
				i, _ := extensionInt(x)
				_ = enc.EncodeInt(i)
			}
		}
		n++
	}
	binary.BigEndian.PutUint16(buf.Bytes()[start+1:start+3], uint16(n))
}

// DecodeEvent decodes and validates one envelope. Unknown keys are ignored;
// absent cwversion and attempt default to 1.
//
// It returns a *DecodeError (match with errors.Is: ErrTruncated, ErrMalformed, ...) on failure.
func DecodeEvent(b []byte) (*Event, error) {
	r := newReader(b)
	k, err := r.peek("")
	if err != nil {
		return nil, err
	}
	if k != kindMap {
		return nil, decodeErr(DecodeMalformed, "", "the envelope must be a map, got %s", k)
	}
	n, err := r.mapLen("")
	if err != nil {
		return nil, err
	}
	ev := &Event{Attempt: 1}
	var specversion string
	var haveSpec bool
	for i := 0; i < n; i++ {
		key, err := r.key("")
		if err != nil {
			if de, ok := err.(*DecodeError); ok && de.Code == DecodeWrongType {
				de.Msg = "envelope keys must be str: " + de.Msg
			}
			return nil, err
		}
		if err := decodeAttr(r, ev, key, &specversion, &haveSpec); err != nil {
			return nil, err
		}
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	if !haveSpec {
		return nil, decodeErr(DecodeMissingField, "specversion", "required attribute is absent")
	}
	ev.SpecVersion = specversion
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

// optStr reads an optional string attribute; nil counts as absent.
func optStr(r *reader, a stringAttr, dst *string) error {
	if !a.required && r.isNil() {
		return nil
	}
	v, err := r.str(a.name, a.max)
	if err != nil {
		return err
	}
	*dst = v
	return a.check(v)
}

func decodeAttr(r *reader, ev *Event, key string, specversion *string, haveSpec *bool) error {
	switch key {
	case "specversion":
		v, err := r.str(key, 64)
		if err != nil {
			return err
		}
		if v == "" {
			return decodeErr(DecodeMissingField, key, "required attribute is empty")
		}
		if v != SpecVersion {
			return decodeErr(DecodeInvalidValue, key, "must be %q, got %q", SpecVersion, v)
		}
		*specversion, *haveSpec = v, true
	case "id":
		return optStr(r, attrID, &ev.ID)
	case "source":
		return optStr(r, attrSource, &ev.Source)
	case "type":
		return optStr(r, attrType, &ev.Type)
	case "subject":
		return optStr(r, attrSubject, &ev.Subject)
	case "time":
		return optStr(r, attrTime, &ev.Time)
	case "datacontenttype":
		return optStr(r, attrDataContentType, &ev.DataContentType)
	case "dataschema":
		return optStr(r, attrDataSchema, &ev.DataSchema)
	case "correlationid":
		return optStr(r, attrCorrelationID, &ev.CorrelationID)
	case "causationid":
		return optStr(r, attrCausationID, &ev.CausationID)
	case "traceparent":
		return optStr(r, attrTraceParent, &ev.TraceParent)
	case "tracestate":
		return optStr(r, attrTraceState, &ev.TraceState)
	case "partitionkey":
		return optStr(r, attrPartitionKey, &ev.PartitionKey)
	case "idempotencykey":
		return optStr(r, attrIdempotencyKey, &ev.IdempotencyKey)
	case "data":
		if r.isNil() {
			return nil
		}
		v, err := r.bin(key, MaxData)
		if err != nil {
			return err
		}
		ev.Data = v
	case "cwversion":
		v, err := r.uint(key)
		if err != nil {
			if de, ok := err.(*DecodeError); ok && de.Code == DecodeInvalidValue {
				de.Code = DecodeUnsupportedVersion
			}
			return err
		}
		if v != EnvelopeVersion {
			return decodeErr(DecodeUnsupportedVersion, key,
				"envelope major version %d; this reader implements %d", v, EnvelopeVersion)
		}
	case "deadline":
		if r.isNil() {
			return nil
		}
		v, err := r.uint(key)
		if err != nil {
			return err
		}
		ev.Deadline = &v
	case "attempt":
		v, err := r.uint(key)
		if err != nil {
			return err
		}
		if v == 0 || v > math.MaxInt64 {
			return decodeErr(DecodeInvalidValue, key, "must be ≥ 1, got %d", v)
		}
		ev.Attempt = int(v)
	case "extensions":
		return decodeExtensions(r, ev)
	default:
		// A newer writer's key: ignored (but it must still be well-formed).
		return r.skip(key)
	}
	return nil
}

func decodeExtensions(r *reader, ev *Event) error {
	n, err := r.mapLen("extensions")
	if err != nil {
		return err
	}
	if n > MaxExtensions {
		return decodeErr(DecodeTooLarge, "extensions", "%d entries > max %d", n, MaxExtensions)
	}
	if n == 0 {
		return nil
	}
	ev.Extensions = make(map[string]any, n)
	for i := 0; i < n; i++ {
		name, err := r.key("extensions")
		if err != nil {
			return err
		}
		if !validExtensionName(name) {
			return decodeErr(DecodeInvalidExtensionName, name,
				"extension names are 1-20 of a-z0-9 and not an attribute name")
		}
		k, err := r.peek(name)
		if err != nil {
			return err
		}
		var v any
		switch k {
		case kindStr:
			v, err = r.str(name, MaxExtensionValue)
		case kindBin:
			v, err = r.bin(name, MaxExtensionValue)
		case kindBool:
			v, err = r.boolean(name)
		case kindInt, kindUint:
			v, err = r.int(name)
		default:
			err = decodeErr(DecodeWrongType, name, "extension values are str, int, bool or bin, got %s", k)
		}
		if err != nil {
			return err
		}
		ev.Extensions[name] = v
	}
	return nil
}
