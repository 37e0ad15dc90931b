package crosswire

import (
	"bytes"
	"math"
	"sort"

	"github.com/vmihailenco/msgpack/v5"
)

// Validate checks the error envelope against spec/errors.md.
func (e *ErrorInfo) Validate() error {
	switch {
	case !e.Code.Valid():
		return decodeErr(DecodeInvalidValue, "code", "%q is not in the closed set of codes", e.Code)
	case len(e.Message) > MaxErrorMessage:
		return decodeErr(DecodeTooLarge, "message", "%d bytes > max %d", len(e.Message), MaxErrorMessage)
	case e.RetryAfter != nil && (*e.RetryAfter < 0 || math.IsNaN(*e.RetryAfter) || math.IsInf(*e.RetryAfter, 0)):
		return decodeErr(DecodeInvalidValue, "retry_after", "must be a finite number ≥ 0, got %v", *e.RetryAfter)
	case len(e.Details) > MaxErrorDetails:
		return decodeErr(DecodeTooLarge, "details", "%d entries > max %d", len(e.Details), MaxErrorDetails)
	case e.Runtime == "":
		return decodeErr(DecodeMissingField, "runtime", "required field is absent or empty")
	case len(e.Runtime) > maxRuntimeName:
		return decodeErr(DecodeTooLarge, "runtime", "%d bytes > max %d", len(e.Runtime), maxRuntimeName)
	}
	return nil
}

// EncodeErrorInfo returns the canonical MessagePack bytes of an error envelope.
func EncodeErrorInfo(e *ErrorInfo) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	writeErrorInfo(msgpack.NewEncoder(&buf), e)
	return buf.Bytes(), nil
}

func writeErrorInfo(enc *msgpack.Encoder, e *ErrorInfo) {
	n := 4
	if e.RetryAfter != nil {
		n++
	}
	if len(e.Details) > 0 {
		n++
	}
	_ = enc.EncodeMapLen(n)
	_ = enc.EncodeString("code")
	_ = enc.EncodeString(string(e.Code))
	_ = enc.EncodeString("message")
	_ = enc.EncodeString(e.Message)
	_ = enc.EncodeString("retryable")
	_ = enc.EncodeBool(e.Retryable)
	if e.RetryAfter != nil {
		_ = enc.EncodeString("retry_after")
		_ = enc.EncodeFloat64(*e.RetryAfter)
	}
	if len(e.Details) > 0 {
		_ = enc.EncodeString("details")
		_ = enc.EncodeMapLen(len(e.Details))
		keys := make([]string, 0, len(e.Details))
		for k := range e.Details {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			_ = enc.EncodeString(k)
			_ = enc.EncodeString(e.Details[k])
		}
	}
	_ = enc.EncodeString("runtime")
	_ = enc.EncodeString(e.Runtime)
}

// DecodeErrorInfo decodes and validates one error envelope.
//
// It returns a *DecodeError on failure.
func DecodeErrorInfo(b []byte) (*ErrorInfo, error) {
	r := newReader(b)
	k, err := r.peek("")
	if err != nil {
		return nil, err
	}
	if k != kindMap {
		return nil, decodeErr(DecodeMalformed, "", "the error envelope must be a map, got %s", k)
	}
	e, err := readErrorInfo(r)
	if err != nil {
		return nil, err
	}
	if err := r.end(); err != nil {
		return nil, err
	}
	return e, nil
}

func readErrorInfo(r *reader) (*ErrorInfo, error) {
	n, err := r.mapLen("error")
	if err != nil {
		return nil, err
	}
	e := &ErrorInfo{}
	var haveCode, haveMessage, haveRetryable bool
	for i := 0; i < n; i++ {
		key, err := r.key("error")
		if err != nil {
			return nil, err
		}
		switch key {
		case "code":
			v, err := r.str(key, 64)
			if err != nil {
				return nil, err
			}
			e.Code, haveCode = ErrorCode(v), true
		case "message":
			v, err := r.str(key, MaxErrorMessage)
			if err != nil {
				return nil, err
			}
			e.Message, haveMessage = v, true
		case "retryable":
			v, err := r.boolean(key)
			if err != nil {
				return nil, err
			}
			e.Retryable, haveRetryable = v, true
		case "retry_after":
			if r.isNil() {
				continue
			}
			v, err := r.float(key)
			if err != nil {
				return nil, err
			}
			e.RetryAfter = &v
		case "details":
			m, err := r.mapLen(key)
			if err != nil {
				return nil, err
			}
			if m > MaxErrorDetails {
				return nil, decodeErr(DecodeTooLarge, key, "%d entries > max %d", m, MaxErrorDetails)
			}
			if m > 0 {
				e.Details = make(map[string]string, m)
			}
			for j := 0; j < m; j++ {
				dk, err := r.key(key)
				if err != nil {
					return nil, err
				}
				dv, err := r.str(dk, -1)
				if err != nil {
					return nil, err
				}
				e.Details[dk] = dv
			}
		case "runtime":
			v, err := r.str(key, maxRuntimeName)
			if err != nil {
				return nil, err
			}
			e.Runtime = v
		default:
			if err := r.skip(key); err != nil {
				return nil, err
			}
		}
	}
	switch {
	case !haveCode:
		return nil, decodeErr(DecodeMissingField, "code", "required field is absent")
	case !haveMessage:
		return nil, decodeErr(DecodeMissingField, "message", "required field is absent")
	case !haveRetryable:
		return nil, decodeErr(DecodeMissingField, "retryable", "required field is absent")
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}
