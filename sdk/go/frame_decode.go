package crosswire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

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
// It returns the frame and the bytes it used; or ErrIncomplete when buf holds
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
// It returns a *FrameError, malformed or invalid, on failure.
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
			case "schemas":
				h.Schemas, err = readSchemas(r, key)
			case "token":
				h.Token, err = r.str(key, 256)
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

// readSchemas reads hello `schemas`: ≤ 1024 keys (≤ 256 chars), each ≤ 16 URIs of ≤ 1024 chars.
func readSchemas(r *reader, key string) (map[string][]string, error) {
	n, err := r.mapLen(key)
	if err != nil {
		return nil, err
	}
	if n > 1024 {
		return nil, fmt.Errorf("%s: %d keys, max 1024", key, n)
	}
	out := make(map[string][]string, n)
	for i := 0; i < n; i++ {
		t, err := r.str(key, 256)
		if err != nil {
			return nil, err
		}
		m, err := r.arrayLen(key)
		if err != nil {
			return nil, err
		}
		if m > 16 {
			return nil, fmt.Errorf("%s[%q]: %d URIs, max 16", key, t, m)
		}
		uris := make([]string, 0, m)
		for j := 0; j < m; j++ {
			v, err := r.str(key, 1024)
			if err != nil {
				return nil, err
			}
			uris = append(uris, v)
		}
		out[t] = uris
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
