package crosswire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/vmihailenco/msgpack/v5"
)

// Protocol constants (spec/protocol.md).
const (
	ProtocolVersion  = 1
	DefaultMaxFrame  = 1024*1024 + 64*1024
	MinMaxFrame      = 4096
	frameHeaderBytes = 4
)

// Frame is one worker-protocol frame. The concrete types are HelloFrame,
// WelcomeFrame, RejectFrame, InitFrame, ReadyFrame, DeliverFrame, ResultFrame,
// HeartbeatFrame, DrainFrame, DrainedFrame, GoodbyeFrame, ErrorFrame and
// UnknownFrame (a type this version does not know).
type Frame interface {
	FrameType() string
}

// HelloFrame is the worker's first frame.
type HelloFrame struct {
	Versions    []uint64
	Name        string
	Runtime     string
	Types       []string
	MaxInFlight uint64
	MaxFrame    uint64
	PID         uint64 // optional; 0 = absent
	SDK         string // optional
	// Schemas maps entries of Types to the dataschema URIs the worker accepts
	// for them (optional; nil or a missing type = any). Encoded in the order of Types.
	Schemas map[string][]string
	// Token is the spawn secret from $CROSSWIRE_TOKEN (optional; "" = absent).
	Token string
}

// WelcomeFrame accepts a worker.
type WelcomeFrame struct {
	Version     uint64
	MaxFrame    uint64
	HeartbeatMS uint64
	Node        string
}

// RejectFrame refuses a worker; the node closes after it.
type RejectFrame struct{ Reason string }

// InitFrame asks the worker to warm up.
type InitFrame struct{}

// ReadyFrame says warm-up finished.
type ReadyFrame struct{}

// DeliverFrame hands the worker one attempt.
type DeliverFrame struct {
	ID       uint64
	Envelope []byte
	Deadline uint64 // unix ms; 0 = none
}

// ResultFrame settles one delivery.
type ResultFrame struct {
	ID         uint64
	OK         bool
	Error      *ErrorInfo // present iff !OK
	StartNS    uint64
	DurationNS uint64
	Emitted    [][]byte     // encoded envelopes of follow-up events
	Spans      []SpanRecord // spans of the attempt (tracing.go)
}

// HeartbeatFrame keeps the session alive.
type HeartbeatFrame struct{}

// DrainFrame asks the worker to finish in-flight work and stop.
type DrainFrame struct{}

// DrainedFrame says every delivered id has its result.
type DrainedFrame struct{}

// GoodbyeFrame ends the session.
type GoodbyeFrame struct{ Reason string } // Reason optional

// ErrorFrame reports a protocol error; the sender closes after it.
type ErrorFrame struct{ Message string }

// UnknownFrame is a frame type this version does not know; ignored after the handshake.
type UnknownFrame struct{ T string }

func (HelloFrame) FrameType() string     { return "hello" }
func (WelcomeFrame) FrameType() string   { return "welcome" }
func (RejectFrame) FrameType() string    { return "reject" }
func (InitFrame) FrameType() string      { return "init" }
func (ReadyFrame) FrameType() string     { return "ready" }
func (DeliverFrame) FrameType() string   { return "deliver" }
func (ResultFrame) FrameType() string    { return "result" }
func (HeartbeatFrame) FrameType() string { return "heartbeat" }
func (DrainFrame) FrameType() string     { return "drain" }
func (DrainedFrame) FrameType() string   { return "drained" }
func (GoodbyeFrame) FrameType() string   { return "goodbye" }
func (ErrorFrame) FrameType() string     { return "error" }
func (f UnknownFrame) FrameType() string { return f.T }

// FrameOutcome says why a buffer did not yield a frame.
type FrameOutcome string

// Frame decode outcomes.
const (
	FrameIncomplete FrameOutcome = "incomplete"
	FrameTooLarge   FrameOutcome = "too_large"
	FrameEmpty      FrameOutcome = "empty"
	FrameMalformed  FrameOutcome = "malformed"
	FrameInvalid    FrameOutcome = "invalid"
)

// FrameError reports a frame that could not be decoded.
type FrameError struct {
	Outcome FrameOutcome
	Msg     string
}

func (e *FrameError) Error() string {
	if e.Msg == "" {
		return "crosswire: frame " + string(e.Outcome)
	}
	return "crosswire: " + e.Msg
}

// Is makes errors.Is match any *FrameError with the same Outcome.
func (e *FrameError) Is(target error) bool {
	t, ok := target.(*FrameError)
	return ok && t.Outcome == e.Outcome
}

// Sentinels for errors.Is. ErrIncomplete is not a failure: read more bytes.
var (
	ErrIncomplete     = &FrameError{Outcome: FrameIncomplete}
	ErrFrameTooLarge  = &FrameError{Outcome: FrameTooLarge}
	ErrFrameEmpty     = &FrameError{Outcome: FrameEmpty}
	ErrFrameMalformed = &FrameError{Outcome: FrameMalformed}
	ErrFrameInvalid   = &FrameError{Outcome: FrameInvalid}
)

func tooLargeError(n, max uint64) *FrameError {
	return &FrameError{Outcome: FrameTooLarge, Msg: fmt.Sprintf("frame too large: %d bytes > max %d", n, max)}
}

// EncodeFrame returns one frame, header included.
func EncodeFrame(f Frame) []byte {
	var buf bytes.Buffer
	AppendFrame(&buf, f)
	return buf.Bytes()
}

// AppendFrame writes one frame, header included, to buf: keys in spec order,
// `t` first, absent optional fields omitted, smallest integer widths.
func AppendFrame(buf *bytes.Buffer, f Frame) {
	start := buf.Len()
	buf.Write([]byte{0, 0, 0, 0})
	enc := msgpack.NewEncoder(buf)
	tag := func(n int) {
		_ = enc.EncodeMapLen(n)
		_ = enc.EncodeString("t")
		_ = enc.EncodeString(f.FrameType())
	}
	s := func(k, v string) { _ = enc.EncodeString(k); _ = enc.EncodeString(v) }
	u := func(k string, v uint64) { _ = enc.EncodeString(k); _ = enc.EncodeUint(v) }
	switch x := f.(type) {
	case HelloFrame:
		n := 7
		if x.PID != 0 {
			n++
		}
		if x.SDK != "" {
			n++
		}
		if len(x.Schemas) > 0 {
			n++
		}
		if x.Token != "" {
			n++
		}
		tag(n)
		_ = enc.EncodeString("versions")
		_ = enc.EncodeArrayLen(len(x.Versions))
		for _, v := range x.Versions {
			_ = enc.EncodeUint(v)
		}
		s("name", x.Name)
		s("runtime", x.Runtime)
		_ = enc.EncodeString("types")
		_ = enc.EncodeArrayLen(len(x.Types))
		for _, v := range x.Types {
			_ = enc.EncodeString(v)
		}
		u("max_in_flight", x.MaxInFlight)
		u("max_frame", x.MaxFrame)
		if x.PID != 0 {
			u("pid", x.PID)
		}
		if x.SDK != "" {
			s("sdk", x.SDK)
		}
		if len(x.Schemas) > 0 {
			_ = enc.EncodeString("schemas")
			_ = enc.EncodeMapLen(len(x.Schemas))
			for _, k := range schemaKeys(x.Types, x.Schemas) {
				_ = enc.EncodeString(k)
				_ = enc.EncodeArrayLen(len(x.Schemas[k]))
				for _, v := range x.Schemas[k] {
					_ = enc.EncodeString(v)
				}
			}
		}
		if x.Token != "" {
			s("token", x.Token)
		}
	case WelcomeFrame:
		tag(5)
		u("version", x.Version)
		u("max_frame", x.MaxFrame)
		u("heartbeat_ms", x.HeartbeatMS)
		s("node", x.Node)
	case RejectFrame:
		tag(2)
		s("reason", x.Reason)
	case ErrorFrame:
		tag(2)
		s("message", x.Message)
	case GoodbyeFrame:
		if x.Reason == "" {
			tag(1)
		} else {
			tag(2)
			s("reason", x.Reason)
		}
	case DeliverFrame:
		tag(4)
		u("id", x.ID)
		_ = enc.EncodeString("envelope")
		_ = enc.EncodeBytesLen(len(x.Envelope))
		buf.Write(x.Envelope)
		u("deadline", x.Deadline)
	case ResultFrame:
		n := 5
		if x.Error != nil {
			n++
		}
		if len(x.Emitted) > 0 {
			n++
		}
		if len(x.Spans) > 0 {
			n++
		}
		tag(n)
		u("id", x.ID)
		_ = enc.EncodeString("ok")
		_ = enc.EncodeBool(x.OK)
		if x.Error != nil {
			_ = enc.EncodeString("error")
			writeErrorInfo(enc, x.Error)
		}
		u("start_ns", x.StartNS)
		u("duration_ns", x.DurationNS)
		if len(x.Emitted) > 0 {
			_ = enc.EncodeString("emitted")
			_ = enc.EncodeArrayLen(len(x.Emitted))
			for _, b := range x.Emitted {
				_ = enc.EncodeBytesLen(len(b))
				buf.Write(b)
			}
		}
		if len(x.Spans) > 0 {
			_ = enc.EncodeString("spans")
			encodeSpans(enc, x.Spans)
		}
	default: // InitFrame, ReadyFrame, HeartbeatFrame, DrainFrame, DrainedFrame, UnknownFrame
		tag(1)
	}
	binary.BigEndian.PutUint32(buf.Bytes()[start:start+4], uint32(buf.Len()-start-4))
}

// schemaKeys orders the keys of hello schemas: as in types, then any others sorted.
func schemaKeys(types []string, schemas map[string][]string) []string {
	keys := make([]string, 0, len(schemas))
	done := make(map[string]bool, len(schemas))
	for _, t := range types {
		if _, ok := schemas[t]; ok && !done[t] {
			keys = append(keys, t)
			done[t] = true
		}
	}
	rest := make([]string, 0, len(schemas)-len(keys))
	for k := range schemas {
		if !done[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(keys, rest...)
}
