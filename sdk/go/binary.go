package crosswire

import (
	"encoding/base64"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Header names and content types of an event on NATS (spec/envelope.md, "On NATS:
// CloudEvents binary content mode").
const (
	// HeaderContentType carries datacontenttype in binary mode, as it is (in lower
	// case, as the CloudEvents Go SDK's NATS binding reads it), and tells
	// structured mode apart.
	HeaderContentType = "content-type"
	// HeaderExtTypes lists the user extensions that are not strings with their
	// type (name=int,flag=bool,blob=bytes), so a reader gets each back typed.
	HeaderExtTypes = "Crosswire-Ext-Types"
	// ContentTypeStructured is the CloudEvents structured mode: the JSON form as the body.
	// A reader also takes the bare media type application/cloudevents for it.
	ContentTypeStructured = "application/cloudevents+json"
	// ContentTypeBatch is CloudEvents batch mode, which crosswire does not accept.
	ContentTypeBatch = "application/cloudevents-batch+json"
)

// ceStringAttrs are the string attributes carried as ce-<name> headers, in
// the order they are written.
var ceStringAttrs = []string{
	"id", "source", "type", "subject", "time", "dataschema",
	"correlationid", "causationid", "traceparent", "tracestate", "partitionkey", "idempotencykey",
}

// ceStringField returns where a string attribute of ev lives.
func ceStringField(ev *Event, name string) *string {
	switch name {
	case "id":
		return &ev.ID
	case "source":
		return &ev.Source
	case "type":
		return &ev.Type
	case "subject":
		return &ev.Subject
	case "time":
		return &ev.Time
	case "dataschema":
		return &ev.DataSchema
	case "correlationid":
		return &ev.CorrelationID
	case "causationid":
		return &ev.CausationID
	case "traceparent":
		return &ev.TraceParent
	case "tracestate":
		return &ev.TraceState
	case "partitionkey":
		return &ev.PartitionKey
	case "idempotencykey":
		return &ev.IdempotencyKey
	}
	return nil
}

// ToBinary returns the event in CloudEvents binary content mode, as it travels
// on NATS: the headers (ce-specversion, every present attribute as ce-<name>,
// datacontenttype as Content-Type as it is (percent-encoded as ce-datacontenttype
// instead when it is not printable ASCII), user extensions
// as ce-<name> and Crosswire-Ext-Types for those that are not strings) and the
// body, which is Data itself (not copied; empty when there is no data).
// attempt is not written: on NATS the broker's delivery count says which
// attempt it is.
//
// String values are percent-encoded as the spec says (space, ", %, control
// characters, DEL and every non-ASCII character, as UTF-8 octets). ToBinary does
// not validate: call [Event.Validate] first for an event you built; for an
// invalid event the result is unspecified (extension values of an unsupported
// type are left out).
func ToBinary(ev *Event) (map[string]string, []byte) {
	headers := make(map[string]string, 8+len(ev.Extensions))
	headers["ce-specversion"] = SpecVersion
	for _, name := range ceStringAttrs {
		if v := *ceStringField(ev, name); v != "" {
			headers["ce-"+name] = escapeHeaderValue(v)
		}
	}
	if ev.Deadline != nil {
		headers["ce-deadline"] = strconv.FormatUint(*ev.Deadline, 10)
	}
	if ct := ev.DataContentType; ct != "" {
		if printableASCII(ct) {
			headers[HeaderContentType] = ct
		} else {
			headers[headerCEDataContentType] = escapeHeaderValue(ct)
		}
	}
	var types []string
	for _, name := range sortedExtensionNames(ev.Extensions) {
		var text, kind string
		switch x := ev.Extensions[name].(type) {
		case string:
			text = escapeHeaderValue(x)
		case bool:
			text, kind = strconv.FormatBool(x), "bool"
		case []byte:
			text, kind = base64.StdEncoding.EncodeToString(x), "bytes"
		default:
			i, ok := extensionInt(x)
			if !ok {
				continue
			}
			text, kind = strconv.FormatInt(i, 10), "int"
		}
		headers["ce-"+name] = text
		if kind != "" {
			types = append(types, name+"="+kind)
		}
	}
	if len(types) > 0 {
		headers[HeaderExtTypes] = strings.Join(types, ",")
	}
	return headers, ev.Data
}

// FromBinary returns the event a NATS message carries. It reads CloudEvents
// binary content mode (what [ToBinary] writes, and what other CloudEvents SDKs
// write), structured mode (a Content-Type of application/cloudevents+json or
// application/cloudevents, the JSON form as the body, see [EventFromJSON]) and
// the previous crosswire format (the whole MessagePack envelope as the body,
// with no ce-* headers or with a ce-id equal to its id, see [DecodeEvent]).
//
// Header names are case-insensitive. datacontenttype is ce-datacontenttype,
// else Content-Type. A string value may be RFC 7230 quoted ("..." with
// backslash escapes); it is unquoted, then percent-decoded. An empty body is no
// data; otherwise Data is a copy of body. attempt is 1: the caller knows the
// delivery count.
//
// It returns a *DecodeError with the codes of spec/envelope.md: a ce-* header
// that names an attribute no header carries (ce-attempt, ce-data,
// ce-extensions) is invalid_extension_name; an integer that is not ASCII
// decimal digits with an optional '-', a bool that is not true/false, bytes
// that are not base64 are wrong_type; an int extension beyond int64 is
// too_large; batch mode, structured mode in a format other than JSON, and two
// spellings of one header name with different values, are malformed.
func FromBinary(headers map[string]string, body []byte) (*Event, error) {
	h, err := foldHeaders(headers)
	if err != nil {
		return nil, err
	}
	if media := mediaType(h["content-type"]); strings.HasPrefix(media, contentTypeCloudEvents) {
		switch media {
		case ContentTypeStructured, contentTypeCloudEvents:
			return EventFromJSON(body)
		case ContentTypeBatch:
			return nil, decodeErr(DecodeMalformed, "",
				"CloudEvents batch mode is not accepted; send one event per message")
		}
		return nil, decodeErr(DecodeMalformed, "",
			"structured mode in %q: only the JSON event format is read", media)
	}
	if _, ok := h["ce-specversion"]; !ok || isPreviousFormat(h, body) {
		return DecodeEvent(body)
	}
	return fromHeaders(h, body)
}

const (
	// headerCEDataContentType is datacontenttype as the CloudEvents NATS binding
	// carries it; on reading it wins over Content-Type.
	headerCEDataContentType = "ce-datacontenttype"
	// contentTypeCloudEvents is the bare structured-mode media type, and the
	// prefix of every CloudEvents structured and batch format.
	contentTypeCloudEvents = "application/cloudevents"
)

// foldHeaders keys the headers by their lower-case names. Two spellings of one
// name are accepted only when they carry the same value.
func foldHeaders(headers map[string]string) (map[string]string, error) {
	h := make(map[string]string, len(headers))
	for name, value := range headers {
		lower := asciiLower(name)
		if prev, ok := h[lower]; ok && prev != value {
			return nil, decodeErr(DecodeMalformed, lower,
				"header sent twice (names are case-insensitive) with different values")
		}
		h[lower] = value
	}
	return h, nil
}

// asciiLower lower-cases A-Z only: header names are ASCII, and a non-ASCII
// letter must not fold into an ASCII name.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func mediaType(contentType string) string {
	media, _, _ := strings.Cut(contentType, ";")
	return asciiLower(strings.TrimSpace(media))
}

// isPreviousFormat reports whether body is the whole MessagePack envelope (a
// map16, 0xde) of the event the ce-id header names: the format before binary mode.
func isPreviousFormat(h map[string]string, body []byte) bool {
	if len(body) == 0 || body[0] != 0xde {
		return false
	}
	ev, err := DecodeEvent(body)
	return err == nil && ev.ID == h["ce-id"]
}

func fromHeaders(h map[string]string, body []byte) (*Event, error) {
	spec := h["ce-specversion"]
	if spec == "" {
		return nil, decodeErr(DecodeMissingField, "specversion", "header ce-specversion is empty")
	}
	if spec != SpecVersion {
		return nil, decodeErr(DecodeInvalidValue, "specversion", "must be %q, got %q", SpecVersion, spec)
	}
	types := map[string]string{}
	if declared := h[asciiLower(HeaderExtTypes)]; declared != "" {
		for _, item := range strings.Split(declared, ",") {
			name, kind, _ := strings.Cut(strings.TrimSpace(item), "=")
			types[name] = kind
		}
	}
	ev := &Event{SpecVersion: SpecVersion, Attempt: 1}
	// sorted, so that an event with several problems always reports the same one
	names := make([]string, 0, len(h))
	for key := range h {
		if name, ok := strings.CutPrefix(key, "ce-"); ok && name != "specversion" && name != "datacontenttype" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		raw := h["ce-"+name]
		if dst := ceStringField(ev, name); dst != nil {
			v, err := unescapeHeaderValue(name, raw)
			if err != nil {
				return nil, err
			}
			*dst = v
			continue
		}
		switch name {
		case "deadline":
			v, err := headerUint(name, raw)
			if err != nil {
				return nil, err
			}
			ev.Deadline = &v
		case "cwversion":
			v, err := headerUint(name, raw)
			if err != nil {
				if de, ok := err.(*DecodeError); ok && de.Code == DecodeInvalidValue {
					de.Code = DecodeUnsupportedVersion
				}
				return nil, err
			}
			if v != EnvelopeVersion {
				return nil, decodeErr(DecodeUnsupportedVersion, name,
					"envelope major version %d; this reader implements %d", v, EnvelopeVersion)
			}
		default:
			if reservedNames[name] {
				return nil, decodeErr(DecodeInvalidExtensionName, name,
					"header ce-%s is not an attribute a header carries", name)
			}
			if !validExtensionName(name) {
				return nil, decodeErr(DecodeInvalidExtensionName, name,
					"extension names are 1-20 of a-z0-9 and not an attribute name")
			}
			v, err := typedExtension(name, raw, types[name])
			if err != nil {
				return nil, err
			}
			if ev.Extensions == nil {
				ev.Extensions = map[string]any{}
			}
			ev.Extensions[name] = v
		}
	}
	// ce-datacontenttype (percent-encoded) wins; Content-Type is taken as it is.
	escaped, ok := h[headerCEDataContentType]
	if ok {
		v, err := unescapeHeaderValue("datacontenttype", escaped)
		if err != nil {
			return nil, err
		}
		ev.DataContentType = v
	} else if contentType, found := h["content-type"]; found {
		ev.DataContentType, ok = contentType, true
	}
	if len(body) > MaxData {
		return nil, decodeErr(DecodeTooLarge, "data", "%d bytes > max %d", len(body), MaxData)
	}
	if len(body) > 0 || ok {
		// An empty body is no data, unless a content type is given: then it is empty data.
		ev.Data = append([]byte{}, body...)
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

// typedExtension reads a user extension header as the type Crosswire-Ext-Types
// declares for it; undeclared ones are strings.
func typedExtension(name, raw, kind string) (any, error) {
	switch kind {
	case "int":
		if !isDecimal(raw) {
			return nil, decodeErr(DecodeWrongType, name, "header ce-%s must be a decimal integer, got %q", name, raw)
		}
		v, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return nil, decodeErr(DecodeTooLarge, name, "extension integer %s does not fit a 64-bit signed integer", raw)
		}
		return v, nil
	case "bool":
		switch raw {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, decodeErr(DecodeWrongType, name, "header ce-%s must be true or false, got %q", name, raw)
	case "bytes":
		if len(raw) > base64.StdEncoding.EncodedLen(MaxExtensionValue) {
			return nil, decodeErr(DecodeTooLarge, name, "extension value is %d base64 characters > max %d",
				len(raw), base64.StdEncoding.EncodedLen(MaxExtensionValue))
		}
		v, err := base64.StdEncoding.Strict().DecodeString(raw)
		if err != nil {
			return nil, decodeErr(DecodeWrongType, name, "header ce-%s must be standard base64, got %q", name, raw)
		}
		return v, nil
	}
	return unescapeHeaderValue(name, raw)
}

// isDecimal reports whether s is a decimal integer as the spec writes one: an
// optional '-' and one or more ASCII digits, nothing else (no '+', no
// whitespace, no '_', no other digits).
func isDecimal(s string) bool {
	digits := strings.TrimPrefix(s, "-")
	if digits == "" {
		return false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return false
		}
	}
	return true
}

// headerUint reads an unsigned integer header (deadline, cwversion): not a
// decimal integer is wrong_type, a negative or too large one invalid_value
// (deadline's bound of 2^63-1 is [Event.Validate]'s).
func headerUint(name, raw string) (uint64, error) {
	if !isDecimal(raw) {
		return 0, decodeErr(DecodeWrongType, name, "header ce-%s must be a decimal integer, got %q", name, raw)
	}
	if strings.HasPrefix(raw, "-") && strings.Trim(raw, "-0") != "" {
		return 0, decodeErr(DecodeInvalidValue, name, "must be ≥ 0, got %s", raw)
	}
	v, err := strconv.ParseUint(strings.TrimPrefix(raw, "-"), 10, 64)
	if err != nil {
		return 0, decodeErr(DecodeInvalidValue, name, "%s does not fit an unsigned 64-bit integer", raw)
	}
	return v, nil
}

// escapeHeaderValue percent-encodes as the CloudEvents bindings say: space, ",
// %, control characters, DEL and every byte outside ASCII (so a non-ASCII
// character becomes its UTF-8 octets), with upper-case hex. net/url's escaping
// functions encode a different set, hence this one.
func escapeHeaderValue(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if needsEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0x0f])
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func needsEscape(c byte) bool {
	return c <= ' ' || c > 0x7e || c == '%' || c == '"'
}

// unquoteHeaderValue undoes RFC 7230 quoting: a value that starts and ends with
// '"' is what lies between, with each backslash escape replaced by the
// character it escapes. Any other value is returned as it is.
func unquoteHeaderValue(s string) string {
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return s
	}
	s = s[1 : len(s)-1]
	if !strings.Contains(s, `\`) {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && s[i+1] != '\n' {
			i++
		}
		b = append(b, s[i])
	}
	return string(b)
}

// unescapeHeaderValue undoes RFC 7230 quoting (see [unquoteHeaderValue]), then
// decodes %XY sequences (either case of hex); a % not followed by two hex
// digits is kept as it is. The result must be UTF-8.
func unescapeHeaderValue(field, s string) (string, error) {
	s = unquoteHeaderValue(s)
	if !strings.Contains(s, "%") {
		return s, nil
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	if !utf8.Valid(b) {
		return "", decodeErr(DecodeInvalidValue, field, "header value %q is not UTF-8 once decoded", s)
	}
	return string(b), nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// printableASCII reports whether s is all printable ASCII (0x20-0x7E): a media
// type that a Content-Type header carries as it is.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
