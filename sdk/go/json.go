package crosswire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// EventToJSON returns the CloudEvents structured JSON form of ev: every present
// attribute at the top level, user extensions flattened beside them (bin
// values as base64), data embedded as JSON for JSON content types and as
// data_base64 otherwise.
func EventToJSON(ev *Event) ([]byte, error) {
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	field := func(name string) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeJSONString(&b, name)
		b.WriteByte(':')
	}
	str := func(name, v string) {
		if v != "" {
			field(name)
			writeJSONString(&b, v)
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
	str("correlationid", ev.CorrelationID)
	str("causationid", ev.CausationID)
	str("traceparent", ev.TraceParent)
	str("tracestate", ev.TraceState)
	str("partitionkey", ev.PartitionKey)
	str("idempotencykey", ev.IdempotencyKey)
	if ev.Deadline != nil {
		field("deadline")
		b.WriteString(strconv.FormatUint(*ev.Deadline, 10))
	}
	if ev.Attempt > 1 {
		field("attempt")
		b.WriteString(strconv.Itoa(ev.Attempt))
	}
	for _, name := range sortedExtensionNames(ev.Extensions) {
		field(name)
		switch x := ev.Extensions[name].(type) {
		case string:
			writeJSONString(&b, x)
		case []byte:
			writeJSONString(&b, base64.StdEncoding.EncodeToString(x))
		case bool:
			b.WriteString(strconv.FormatBool(x))
		default:
			i, _ := extensionInt(x)
			b.WriteString(strconv.FormatInt(i, 10))
		}
	}
	if ev.Data != nil {
		var compact bytes.Buffer
		if isJSONType(ev.DataContentType) && utf8.Valid(ev.Data) && json.Compact(&compact, ev.Data) == nil {
			field("data")
			b.Write(compact.Bytes())
		} else {
			field("data_base64")
			writeJSONString(&b, base64.StdEncoding.EncodeToString(ev.Data))
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	b.Truncate(b.Len() - 1) // Encode appends a newline
}

// MarshalJSON writes the CloudEvents structured JSON form (see EventToJSON).
func (e Event) MarshalJSON() ([]byte, error) { return EventToJSON(&e) }

// UnmarshalJSON reads the CloudEvents structured JSON form (see EventFromJSON).
func (e *Event) UnmarshalJSON(b []byte) error {
	ev, err := EventFromJSON(b)
	if err != nil {
		return err
	}
	*e = *ev
	return nil
}

// EventFromJSON parses the CloudEvents structured JSON form. data may be a JSON
// value (re-serialised compactly) or, with a non-JSON content type, a string
// taken as its UTF-8 bytes; data_base64 is standard base64. Unknown attributes
// become user extensions (string, integer or boolean; null is skipped).
//
// It returns a *DecodeError: malformed for invalid JSON, else as DecodeEvent.
func EventFromJSON(b []byte) (*Event, error) {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, decodeErr(DecodeMalformed, "", "invalid JSON object: %v", err)
	}
	if dec.More() {
		return nil, decodeErr(DecodeMalformed, "", "trailing data after the JSON object")
	}
	if obj == nil {
		return nil, decodeErr(DecodeMalformed, "", "a CloudEvent in JSON must be an object")
	}
	ev := &Event{Attempt: 1}
	var ct string
	if raw, ok := obj["datacontenttype"]; ok {
		if err := json.Unmarshal(raw, &ct); err != nil {
			return nil, decodeErr(DecodeWrongType, "datacontenttype", "must be a string")
		}
	}
	strs := map[string]*string{
		"specversion": &ev.SpecVersion, "id": &ev.ID, "source": &ev.Source, "type": &ev.Type,
		"subject": &ev.Subject, "time": &ev.Time, "datacontenttype": &ev.DataContentType,
		"dataschema": &ev.DataSchema, "correlationid": &ev.CorrelationID, "causationid": &ev.CausationID,
		"traceparent": &ev.TraceParent, "tracestate": &ev.TraceState, "partitionkey": &ev.PartitionKey,
		"idempotencykey": &ev.IdempotencyKey,
	}
	for name, raw := range obj {
		if dst, ok := strs[name]; ok {
			if string(raw) == "null" {
				continue
			}
			if err := json.Unmarshal(raw, dst); err != nil {
				return nil, decodeErr(DecodeWrongType, name, "must be a string")
			}
			continue
		}
		switch name {
		case "data":
			var s string
			if !isJSONType(ct) && json.Unmarshal(raw, &s) == nil {
				ev.Data = []byte(s)
				continue
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, raw); err != nil {
				return nil, decodeErr(DecodeMalformed, name, "%v", err)
			}
			ev.Data = compact.Bytes()
		case "data_base64":
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, decodeErr(DecodeWrongType, name, "must be a string")
			}
			data, err := base64.StdEncoding.Strict().DecodeString(s)
			if err != nil {
				return nil, decodeErr(DecodeInvalidValue, name, "%v", err)
			}
			ev.Data = data
		case "cwversion":
			v, err := jsonUint(name, raw)
			if err != nil {
				return nil, err
			}
			if v != EnvelopeVersion {
				return nil, decodeErr(DecodeUnsupportedVersion, name,
					"envelope major version %d; this reader implements %d", v, EnvelopeVersion)
			}
		case "deadline":
			v, err := jsonUint(name, raw)
			if err != nil {
				return nil, err
			}
			ev.Deadline = &v
		case "attempt":
			v, err := jsonUint(name, raw)
			if err != nil {
				return nil, err
			}
			if v == 0 || v > math.MaxInt64 {
				return nil, decodeErr(DecodeInvalidValue, name, "must be ≥ 1, got %d", v)
			}
			ev.Attempt = int(v)
		case "extensions":
			var inner map[string]json.RawMessage
			if err := json.Unmarshal(raw, &inner); err != nil {
				return nil, decodeErr(DecodeWrongType, name, "must be an object")
			}
			for k, v := range inner {
				if err := jsonExtension(ev, k, v); err != nil {
					return nil, err
				}
			}
		default:
			if err := jsonExtension(ev, name, raw); err != nil {
				return nil, err
			}
		}
	}
	if ev.SpecVersion == "" {
		return nil, decodeErr(DecodeMissingField, "specversion", "required attribute is absent")
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

func jsonUint(name string, raw json.RawMessage) (uint64, error) {
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return 0, decodeErr(DecodeWrongType, name, "must be an integer")
	}
	if i, err := strconv.ParseInt(n.String(), 10, 64); err == nil && i < 0 {
		return 0, decodeErr(DecodeInvalidValue, name, "must be ≥ 0, got %d", i)
	}
	v, err := strconv.ParseUint(n.String(), 10, 64)
	if err != nil {
		return 0, decodeErr(DecodeWrongType, name, "must be an unsigned integer, got %s", n)
	}
	return v, nil
}

func jsonExtension(ev *Event, name string, raw json.RawMessage) error {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return decodeErr(DecodeMalformed, name, "%v", err)
	}
	var val any
	switch x := v.(type) {
	case nil:
		return nil
	case string, bool:
		val = x
	case json.Number:
		i, err := strconv.ParseInt(x.String(), 10, 64)
		if err != nil {
			return decodeErr(DecodeWrongType, name, "extension numbers must be 64-bit integers, got %s", x)
		}
		val = i
	default:
		return decodeErr(DecodeWrongType, name, "extension %q must be a string, integer or boolean", name)
	}
	if !validExtensionName(name) {
		return decodeErr(DecodeInvalidExtensionName, name,
			"extension names are 1-20 of a-z0-9 and not an attribute name")
	}
	if ev.Extensions == nil {
		ev.Extensions = map[string]any{}
	}
	ev.Extensions[name] = val
	return nil
}

// MarshalJSON writes the JSON object of the error envelope's fields, in spec order.
func (e ErrorInfo) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"code":`)
	writeJSONString(&b, string(e.Code))
	b.WriteString(`,"message":`)
	writeJSONString(&b, e.Message)
	b.WriteString(`,"retryable":`)
	b.WriteString(strconv.FormatBool(e.Retryable))
	if e.RetryAfter != nil {
		b.WriteString(`,"retry_after":`)
		f, err := json.Marshal(*e.RetryAfter)
		if err != nil {
			return nil, err
		}
		b.Write(f)
	}
	if len(e.Details) > 0 {
		b.WriteString(`,"details":`)
		d, _ := json.Marshal(e.Details) // encoding/json sorts map keys
		b.Write(d)
	}
	b.WriteString(`,"runtime":`)
	writeJSONString(&b, e.Runtime)
	b.WriteByte('}')
	return b.Bytes(), nil
}
