package crosswire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

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
	Emitted    [][]byte // encoded envelopes of follow-up events
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

// checkFrameHeader decides from the 4-byte header alone.
func checkFrameHeader(hdr []byte, max int) (int, error) {
	n := binary.BigEndian.Uint32(hdr)
	if n == 0 {
		return 0, &FrameError{Outcome: FrameEmpty, Msg: "frame length is 0"}
	}
	if uint64(n) > uint64(max) {
		return 0, tooLargeError(uint64(n), uint64(max))
	}
	return int(n), nil
}

// DecodeFrame decodes the first frame in buf, whose body may be at most max bytes.
//
// :returns: the frame and the bytes it used; or ErrIncomplete when buf holds
// only part of a frame; or a *FrameError (too_large, decided from the header
// alone, empty, malformed, invalid).
func DecodeFrame(buf []byte, max int) (Frame, int, error) {
	if len(buf) < frameHeaderBytes {
		return nil, 0, ErrIncomplete
	}
	n, err := checkFrameHeader(buf[:frameHeaderBytes], max)
	if err != nil {
		return nil, 0, err
	}
	end := frameHeaderBytes + n
	if len(buf) < end {
		return nil, 0, ErrIncomplete
	}
	f, err := DecodeFrameBody(buf[frameHeaderBytes:end])
	if err != nil {
		return nil, 0, err
	}
	return f, end, nil
}

// DecodeFrameBody decodes one frame body (no header).
//
// :returns: a *FrameError, malformed or invalid, on failure.
func DecodeFrameBody(body []byte) (Frame, error) {
	t, err := frameTag(body)
	if err != nil {
		return nil, &FrameError{Outcome: FrameMalformed, Msg: "malformed frame: " + err.Error()}
	}
	f, err := decodeFrameFields(t, body)
	if err != nil {
		return nil, &FrameError{Outcome: FrameInvalid, Msg: fmt.Sprintf("invalid %s frame: %v", t, err)}
	}
	return f, nil
}

// frameTag checks that body is exactly one map with str keys and a str `t`.
func frameTag(body []byte) (string, error) {
	r := newReader(body)
	k, err := r.peek("")
	if err != nil {
		return "", err
	}
	if k != kindMap {
		return "", fmt.Errorf("the body must be a map, got %s", k)
	}
	n, err := r.mapLen("")
	if err != nil {
		return "", err
	}
	t, haveT := "", false
	for i := 0; i < n; i++ {
		key, err := r.key("")
		if err != nil {
			return "", fmt.Errorf("frame keys must be str: %w", err)
		}
		if key == "t" {
			if t, err = r.str("t", 256); err != nil {
				return "", fmt.Errorf("`t` must be a str: %w", err)
			}
			haveT = true
			continue
		}
		if err := r.skip(key); err != nil {
			return "", err
		}
	}
	if err := r.end(); err != nil {
		return "", err
	}
	if !haveT {
		return "", errors.New("no `t` key")
	}
	return t, nil
}

// fieldSet tracks which required fields a frame had.
type fieldSet map[string]bool

func (s fieldSet) require(names ...string) error {
	for _, n := range names {
		if !s[n] {
			return fmt.Errorf("missing required field %q", n)
		}
	}
	return nil
}

func decodeFrameFields(t string, body []byte) (Frame, error) {
	r := newReader(body)
	n, _ := r.mapLen("") // checked by frameTag
	seen := fieldSet{}
	var f Frame
	var field func(key string) (bool, error)
	switch t {
	case "hello":
		h := &HelloFrame{}
		field = func(key string) (bool, error) {
			var err error
			switch key {
			case "versions":
				h.Versions, err = readUintList(r, key)
			case "name":
				h.Name, err = r.str(key, 256)
			case "runtime":
				h.Runtime, err = r.str(key, 256)
			case "types":
				h.Types, err = readStrList(r, key)
			case "max_in_flight":
				h.MaxInFlight, err = r.uint(key)
			case "max_frame":
				h.MaxFrame, err = r.uint(key)
			case "pid":
				h.PID, err = r.uint(key)
			case "sdk":
				h.SDK, err = r.str(key, 256)
			default:
				return false, nil
			}
			return true, err
		}
		f = h
	case "welcome":
		w := &WelcomeFrame{}
		field = func(key string) (bool, error) {
			var err error
			switch key {
			case "version":
				w.Version, err = r.uint(key)
			case "max_frame":
				w.MaxFrame, err = r.uint(key)
			case "heartbeat_ms":
				w.HeartbeatMS, err = r.uint(key)
			case "node":
				w.Node, err = r.str(key, 256)
			default:
				return false, nil
			}
			return true, err
		}
		f = w
	case "reject":
		x := &RejectFrame{}
		field = strField(r, "reason", &x.Reason)
		f = x
	case "error":
		x := &ErrorFrame{}
		field = strField(r, "message", &x.Message)
		f = x
	case "goodbye":
		x := &GoodbyeFrame{}
		field = strField(r, "reason", &x.Reason)
		f = x
	case "deliver":
		d := &DeliverFrame{}
		field = func(key string) (bool, error) {
			var err error
			switch key {
			case "id":
				d.ID, err = r.uint(key)
			case "envelope":
				d.Envelope, err = r.bin(key, -1)
			case "deadline":
				d.Deadline, err = r.uint(key)
			default:
				return false, nil
			}
			return true, err
		}
		f = d
	case "result":
		x := &ResultFrame{}
		field = func(key string) (bool, error) {
			var err error
			switch key {
			case "id":
				x.ID, err = r.uint(key)
			case "ok":
				x.OK, err = r.boolean(key)
			case "error":
				x.Error, err = readErrorInfo(r)
			case "start_ns":
				x.StartNS, err = r.uint(key)
			case "duration_ns":
				x.DurationNS, err = r.uint(key)
			case "emitted":
				var m int
				if m, err = r.arrayLen(key); err == nil {
					x.Emitted = make([][]byte, 0, m)
					for i := 0; i < m && err == nil; i++ {
						var b []byte
						b, err = r.bin(key, -1)
						x.Emitted = append(x.Emitted, b)
					}
				}
			default:
				return false, nil
			}
			return true, err
		}
		f = x
	case "init":
		f = &InitFrame{}
	case "ready":
		f = &ReadyFrame{}
	case "heartbeat":
		f = &HeartbeatFrame{}
	case "drain":
		f = &DrainFrame{}
	case "drained":
		f = &DrainedFrame{}
	default:
		return UnknownFrame{T: t}, nil
	}
	for i := 0; i < n; i++ {
		key, _ := r.key("")
		if key == "t" {
			_ = r.skip(key)
			continue
		}
		known := false
		if field != nil {
			var err error
			if known, err = field(key); err != nil {
				return nil, err
			}
		}
		if !known {
			if err := r.skip(key); err != nil {
				return nil, err
			}
		}
		seen[key] = true
	}
	var required []string
	switch t {
	case "hello":
		required = []string{"versions", "name", "runtime", "types", "max_in_flight", "max_frame"}
	case "welcome":
		required = []string{"version", "max_frame", "heartbeat_ms", "node"}
	case "reject":
		required = []string{"reason"}
	case "error":
		required = []string{"message"}
	case "deliver":
		required = []string{"id", "envelope", "deadline"}
	case "result":
		required = []string{"id", "ok", "start_ns", "duration_ns"}
	}
	if err := seen.require(required...); err != nil {
		return nil, err
	}
	return deref(f), nil
}

// deref returns frames by value, so callers switch on HelloFrame, not *HelloFrame.
func deref(f Frame) Frame {
	switch x := f.(type) {
	case *HelloFrame:
		return *x
	case *WelcomeFrame:
		return *x
	case *RejectFrame:
		return *x
	case *ErrorFrame:
		return *x
	case *GoodbyeFrame:
		return *x
	case *DeliverFrame:
		return *x
	case *ResultFrame:
		return *x
	case *InitFrame:
		return *x
	case *ReadyFrame:
		return *x
	case *HeartbeatFrame:
		return *x
	case *DrainFrame:
		return *x
	case *DrainedFrame:
		return *x
	}
	return f
}

func strField(r *reader, name string, dst *string) func(string) (bool, error) {
	return func(key string) (bool, error) {
		if key != name {
			return false, nil
		}
		v, err := r.str(key, -1)
		*dst = v
		return true, err
	}
}

func readUintList(r *reader, key string) ([]uint64, error) {
	n, err := r.arrayLen(key)
	if err != nil {
		return nil, err
	}
	out := make([]uint64, 0, n)
	for i := 0; i < n; i++ {
		v, err := r.uint(key)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func readStrList(r *reader, key string) ([]string, error) {
	n, err := r.arrayLen(key)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, n)
	for i := 0; i < n; i++ {
		v, err := r.str(key, 256)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
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
	default: // InitFrame, ReadyFrame, HeartbeatFrame, DrainFrame, DrainedFrame, UnknownFrame
		tag(1)
	}
	binary.BigEndian.PutUint32(buf.Bytes()[start:start+4], uint32(buf.Len()-start-4))
}
