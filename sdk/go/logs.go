package crosswire

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"go.opentelemetry.io/otel/trace"
)

// Logs from handler code (spec/protocol.md, "Spans and logs").
//
// A record written with a handler's ctx (slog.InfoContext(ctx, ...), or any
// *slog.Logger whose handler is LogHandler) goes to the node as a log frame with
// the delivery id and the current span's trace and span ids; the node writes it
// in its own log format with the event id, correlation id, binding, worker,
// runtime and pid. Records without a handler's ctx go to the next handler.
// Worker.Run makes LogHandler the default slog handler.

// MaxLogAttrs bounds the attributes one log frame carries; MaxLogMessage its message.
const (
	MaxLogAttrs   = 32
	MaxLogMessage = 16 * 1024
)

// LogHandler returns a slog.Handler that sends records written while handling a
// delivery to the node, and passes every other record to next.
func LogHandler(next slog.Handler) slog.Handler { return &logHandler{next: next} }

type logHandler struct {
	next   slog.Handler
	attrs  []slog.Attr
	prefix string // from WithGroup, "a.b."
}

func (h *logHandler) Enabled(ctx context.Context, level slog.Level) bool {
	if d := deliveryFrom(ctx); d != nil && d.out != nil {
		return level >= slog.LevelInfo
	}
	return h.next.Enabled(ctx, level)
}

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	d := deliveryFrom(ctx)
	if d == nil || d.out == nil {
		return h.next.Handle(ctx, r)
	}
	attrs := make([]slog.Attr, 0, len(h.attrs)+r.NumAttrs())
	attrs = append(attrs, h.attrs...)
	r.Attrs(func(a slog.Attr) bool {
		a.Key = h.prefix + a.Key
		attrs = append(attrs, a)
		return len(attrs) < MaxLogAttrs
	})
	b := encodeLog(d.id, r, trace.SpanContextFromContext(ctx), attrs)
	defer func() { _ = recover() }() // a line logged after its session closed is dropped
	d.out.sendEncoded(b)
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := &logHandler{next: h.next.WithAttrs(as), prefix: h.prefix, attrs: slices.Clone(h.attrs)}
	for _, a := range as {
		a.Key = h.prefix + a.Key
		out.attrs = append(out.attrs, a)
	}
	return out
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &logHandler{next: h.next.WithGroup(name), prefix: h.prefix + name + ".", attrs: h.attrs}
}

var logForwarding sync.Once

// installLogForwarding makes LogHandler the default slog handler (once per process).
func installLogForwarding() {
	logForwarding.Do(func() {
		next := slog.Default().Handler()
		if _, ok := next.(*logHandler); ok {
			return
		}
		if fmt.Sprintf("%T", next) == "*slog.defaultHandler" {
			// slog's built-in handler writes through package log, which SetDefault
			// redirects to the new default: use a plain stderr handler instead.
			next = slog.NewTextHandler(os.Stderr, nil)
		}
		slog.SetDefault(slog.New(LogHandler(next)))
	})
}

func logLevel(l slog.Level) string {
	switch {
	case l >= slog.LevelError:
		return "error"
	case l >= slog.LevelWarn:
		return "warn"
	case l >= slog.LevelInfo:
		return "info"
	default:
		return "debug"
	}
}

// encodeLog returns one log frame, header included.
func encodeLog(id uint64, r slog.Record, sc trace.SpanContext, attrs []slog.Attr) []byte {
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0, 0})
	enc := msgpack.NewEncoder(&buf)
	n := 5
	if sc.IsValid() {
		n += 2
	}
	if len(attrs) > 0 {
		n++
	}
	msg := r.Message
	if len(msg) > MaxLogMessage {
		msg = msg[:MaxLogMessage]
	}
	_ = enc.EncodeMapLen(n)
	_ = enc.EncodeString("t")
	_ = enc.EncodeString("log")
	_ = enc.EncodeString("level")
	_ = enc.EncodeString(logLevel(r.Level))
	_ = enc.EncodeString("msg")
	_ = enc.EncodeString(msg)
	_ = enc.EncodeString("time_ns")
	_ = enc.EncodeUint(uint64(max(r.Time.UnixNano(), 0)))
	_ = enc.EncodeString("id")
	_ = enc.EncodeUint(id)
	if sc.IsValid() {
		_ = enc.EncodeString("trace_id")
		_ = enc.EncodeString(sc.TraceID().String())
		_ = enc.EncodeString("span_id")
		_ = enc.EncodeString(sc.SpanID().String())
	}
	if len(attrs) > 0 {
		_ = enc.EncodeString("attrs")
		_ = enc.EncodeMapLen(len(attrs))
		for _, a := range attrs {
			_ = enc.EncodeString(a.Key)
			v := a.Value.Resolve()
			switch v.Kind() {
			case slog.KindBool:
				_ = enc.EncodeBool(v.Bool())
			case slog.KindInt64:
				_ = enc.EncodeInt(v.Int64())
			case slog.KindUint64:
				_ = enc.EncodeUint(v.Uint64())
			case slog.KindFloat64:
				_ = enc.EncodeFloat64(v.Float64())
			default:
				s := v.String()
				if len(s) > 1024 {
					s = s[:1024]
				}
				_ = enc.EncodeString(s)
			}
		}
	}
	b := buf.Bytes()
	binary.BigEndian.PutUint32(b[:4], uint32(len(b)-4))
	return b
}
