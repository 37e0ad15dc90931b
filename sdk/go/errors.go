package crosswire

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// ErrorCode is one code of the closed set shared by every runtime (spec/errors.md).
type ErrorCode string

// The closed set of error codes. Adding one is a major version change.
const (
	CodeInvalidArgument    ErrorCode = "invalid_argument"
	CodeNotFound           ErrorCode = "not_found"
	CodeFailedPrecondition ErrorCode = "failed_precondition"
	CodePermissionDenied   ErrorCode = "permission_denied"
	CodeRejected           ErrorCode = "rejected"
	CodeUnimplemented      ErrorCode = "unimplemented"
	CodeTimeout            ErrorCode = "timeout"
	CodeUnavailable        ErrorCode = "unavailable"
	CodeResourceExhausted  ErrorCode = "resource_exhausted"
	CodeCancelled          ErrorCode = "cancelled"
	CodeWorkerLost         ErrorCode = "worker_lost"
	CodeHandlerError       ErrorCode = "handler_error"
	CodeInternal           ErrorCode = "internal"
)

// Valid reports whether c is in the closed set.
func (c ErrorCode) Valid() bool {
	switch c {
	case CodeInvalidArgument, CodeNotFound, CodeFailedPrecondition, CodePermissionDenied,
		CodeRejected, CodeUnimplemented, CodeTimeout, CodeUnavailable, CodeResourceExhausted,
		CodeCancelled, CodeWorkerLost, CodeHandlerError, CodeInternal:
		return true
	}
	return false
}

// DefaultRetryable is whether an error with this code is retryable when the
// handler did not say: the six "caller's fault" codes are permanent, the rest retryable.
func (c ErrorCode) DefaultRetryable() bool {
	switch c {
	case CodeInvalidArgument, CodeNotFound, CodeFailedPrecondition, CodePermissionDenied,
		CodeRejected, CodeUnimplemented:
		return false
	}
	return true
}

// Runtime is the value of ErrorInfo.Runtime for errors raised by this SDK.
const Runtime = "go"

// Limits of the error envelope.
const (
	MaxErrorMessage = 4096
	MaxErrorDetails = 32
	maxRuntimeName  = 32
)

// ErrorInfo is the error envelope: why an attempt failed, as data.
type ErrorInfo struct {
	Code      ErrorCode
	Message   string // ≤4096 bytes; may be empty
	Retryable bool
	// RetryAfter is the number of seconds the sender asks the node to wait
	// before the next attempt (≥0); nil when absent.
	RetryAfter *float64
	Details    map[string]string // ≤32 entries; written sorted by key bytes
	Runtime    string            // "python", "go", "rust" or "node"
}

// DecodeCode names why an envelope or error envelope failed to decode or validate
// (the table in spec/envelope.md).
type DecodeCode string

// Decode codes.
const (
	DecodeTruncated            DecodeCode = "truncated"
	DecodeMalformed            DecodeCode = "malformed"
	DecodeWrongType            DecodeCode = "wrong_type"
	DecodeMissingField         DecodeCode = "missing_field"
	DecodeInvalidValue         DecodeCode = "invalid_value"
	DecodeUnsupportedVersion   DecodeCode = "unsupported_version"
	DecodeInvalidExtensionName DecodeCode = "invalid_extension_name"
	DecodeTooLarge             DecodeCode = "too_large"
)

// DecodeError reports an envelope (or error envelope) that breaks the spec,
// found while decoding bytes or JSON, or while validating an Event to encode it.
// Compare with the sentinels: errors.Is(err, crosswire.ErrTruncated).
type DecodeError struct {
	Code  DecodeCode
	Field string // the attribute at fault, when there is one
	Msg   string
}

func (e *DecodeError) Error() string {
	var s string
	if e.Field != "" {
		s = fmt.Sprintf("crosswire: %s: %s", e.Code, e.Field)
	} else {
		s = fmt.Sprintf("crosswire: %s", e.Code)
	}
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	return s
}

// Is makes errors.Is match any *DecodeError with the same Code.
func (e *DecodeError) Is(target error) bool {
	t, ok := target.(*DecodeError)
	return ok && t.Code == e.Code
}

// Sentinels for errors.Is, one per DecodeCode.
var (
	ErrTruncated            = &DecodeError{Code: DecodeTruncated}
	ErrMalformed            = &DecodeError{Code: DecodeMalformed}
	ErrWrongType            = &DecodeError{Code: DecodeWrongType}
	ErrMissingField         = &DecodeError{Code: DecodeMissingField}
	ErrInvalidValue         = &DecodeError{Code: DecodeInvalidValue}
	ErrUnsupportedVersion   = &DecodeError{Code: DecodeUnsupportedVersion}
	ErrInvalidExtensionName = &DecodeError{Code: DecodeInvalidExtensionName}
	ErrTooLarge             = &DecodeError{Code: DecodeTooLarge}
)

func decodeErr(code DecodeCode, field, format string, args ...any) *DecodeError {
	return &DecodeError{Code: code, Field: field, Msg: fmt.Sprintf(format, args...)}
}

// HandlerError is what a handler returns to choose its error envelope. Build one
// with Permanent, Retryable, RetryAfter or Reject; any other non-nil error a
// handler returns becomes code handler_error, retryable.
type HandlerError struct {
	Code      ErrorCode
	Err       error
	Retryable bool
	// RetryAfter, when positive, is the least time the node waits before retrying.
	RetryAfter time.Duration
	Details    map[string]string
}

func (e *HandlerError) Error() string {
	if e.Err == nil {
		return string(e.Code)
	}
	return fmt.Sprintf("%s: %v", e.Code, e.Err)
}

func (e *HandlerError) Unwrap() error { return e.Err }

// Permanent marks err as not retryable with the given code: the node dead-letters
// the event instead of retrying it.
func Permanent(code ErrorCode, err error) error {
	return &HandlerError{Code: code, Err: err, Retryable: false}
}

// Retryable marks err as retryable with the given code; after > 0 asks the node
// to wait at least that long before the next attempt.
func Retryable(code ErrorCode, err error, after time.Duration) error {
	return &HandlerError{Code: code, Err: err, Retryable: true, RetryAfter: after}
}

// RetryAfter asks for a retry no sooner than d. If err is already a
// *HandlerError its code is kept (and it becomes retryable); otherwise the
// code is handler_error.
func RetryAfter(err error, d time.Duration) error {
	var he *HandlerError
	if errors.As(err, &he) {
		c := *he
		c.Retryable = true
		c.RetryAfter = d
		return &c
	}
	return &HandlerError{Code: CodeHandlerError, Err: err, Retryable: true, RetryAfter: d}
}

// Reject refuses the event on purpose: code rejected, not retryable.
func Reject(reason string) error {
	return &HandlerError{Code: CodeRejected, Err: errors.New(reason), Retryable: false}
}

// ErrorInfoFromError turns what a handler returned into an error envelope
// (runtime "go"). A *HandlerError anywhere in err's chain decides code,
// retryable and retry_after; any other error is a retryable handler_error.
func ErrorInfoFromError(err error) ErrorInfo {
	var he *HandlerError
	if errors.As(err, &he) && he.Code.Valid() {
		info := ErrorInfo{Code: he.Code, Retryable: he.Retryable, Runtime: Runtime, Details: he.Details}
		if he.Err != nil {
			info.Message = truncateUTF8(he.Err.Error(), MaxErrorMessage)
		}
		if he.RetryAfter > 0 {
			s := he.RetryAfter.Seconds()
			info.RetryAfter = &s
		}
		return info
	}
	var pe *PayloadError
	if errors.As(err, &pe) {
		return ErrorInfo{Code: CodeInvalidArgument, Message: truncateUTF8(err.Error(), MaxErrorMessage), Runtime: Runtime}
	}
	return ErrorInfo{
		Code:      CodeHandlerError,
		Message:   truncateUTF8(err.Error(), MaxErrorMessage),
		Retryable: true,
		Runtime:   Runtime,
	}
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune, and
// replaces invalid UTF-8 so the result always encodes.
func truncateUTF8(s string, n int) string {
	if !utf8.ValidString(s) {
		s = string([]rune(s))
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
