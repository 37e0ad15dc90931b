package crosswire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// SDKName is sent in hello as the SDK name/version.
const SDKName = "crosswire-go/0.1.0"

// HandlerFunc handles one event. Its ctx expires at the delivery deadline and
// carries the event (EventFromContext), its trace context (TraceParent) and
// lets the handler Emit follow-up events. Return nil on success, a
// *HandlerError (Permanent, Retryable, RetryAfter, Reject) to choose the error
// envelope, or any other error for a retryable handler_error.
type HandlerFunc func(ctx context.Context, ev *Event) error

// Option configures a Worker.
type Option func(*options)

type options struct {
	maxInFlight int
	maxFrame    int
	versions    []uint64
	socket      string
	logger      *slog.Logger
	signals     bool
	handshake   time.Duration
}

// WithMaxInFlight sets how many deliveries may run at once (default 64): the
// credit announced in hello and the size of the handler goroutine pool.
func WithMaxInFlight(n int) Option { return func(o *options) { o.maxInFlight = n } }

// WithMaxFrame sets the largest frame this worker accepts (default 1 MiB + 64 KiB).
func WithMaxFrame(n int) Option { return func(o *options) { o.maxFrame = n } }

// WithProtocolVersions overrides the protocol versions announced in hello
// (default [1]); tests use it to force a version mismatch.
func WithProtocolVersions(v ...uint64) Option {
	return func(o *options) { o.versions = slices.Clone(v) }
}

// WithSocket sets the node's socket path (default $CROSSWIRE_SOCKET).
func WithSocket(path string) Option { return func(o *options) { o.socket = path } }

// WithLogger sets the logger for worker events (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithSignals controls whether Run drains on SIGTERM/SIGINT (default true).
func WithSignals(on bool) Option { return func(o *options) { o.signals = on } }

// Worker runs handlers for event types on behalf of a crosswire node.
// Register handlers and the warm-up hook before Run; they must not change after.
type Worker struct {
	name     string
	opts     options
	patterns []string
	handlers map[string]HandlerFunc
	warmup   func(context.Context) error
	stats    workerStats
}

// NewWorker returns a worker named name (the default source of emitted events).
func NewWorker(name string, opts ...Option) *Worker {
	o := options{
		maxInFlight: 64,
		maxFrame:    DefaultMaxFrame,
		versions:    []uint64{ProtocolVersion},
		socket:      os.Getenv("CROSSWIRE_SOCKET"),
		signals:     true,
		handshake:   30 * time.Second,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	return &Worker{name: name, opts: o, handlers: map[string]HandlerFunc{}}
}

// Name is the worker's name.
func (w *Worker) Name() string { return w.name }

// Handle registers h for an event type. The type may use NATS-style wildcards:
// `*` matches one dot-separated token, a final `>` one or more. An exact
// registration wins over a wildcard one; among wildcards the first registered wins.
func (w *Worker) Handle(eventType string, h HandlerFunc) {
	if _, ok := w.handlers[eventType]; !ok {
		w.patterns = append(w.patterns, eventType)
	}
	w.handlers[eventType] = h
}

// OnWarmup sets the hook run between init and ready (open connections, prime
// caches). If it fails, the worker reports an error frame and Run returns the error.
func (w *Worker) OnWarmup(fn func(ctx context.Context) error) { w.warmup = fn }

func (w *Worker) handlerFor(eventType string) HandlerFunc {
	if h, ok := w.handlers[eventType]; ok {
		return h
	}
	for _, p := range w.patterns {
		if matchType(p, eventType) {
			return w.handlers[p]
		}
	}
	return nil
}

// matchType matches a NATS-style subject pattern against an event type.
func matchType(pattern, eventType string) bool {
	pt := strings.Split(pattern, ".")
	et := strings.Split(eventType, ".")
	for i, p := range pt {
		if p == ">" && i == len(pt)-1 {
			return len(et) > i
		}
		if i >= len(et) || (p != "*" && p != et[i]) {
			return false
		}
	}
	return len(pt) == len(et)
}

// Stats is a snapshot of a worker's counters.
type Stats struct {
	InFlight  int64 // deliveries running now
	Delivered int64 // deliveries received
	Succeeded int64 // results with ok = true
	Failed    int64 // results with an error envelope
}

type workerStats struct {
	inFlight, delivered, succeeded, failed atomic.Int64
}

// Stats returns the worker's counters; safe to call while Run is running.
func (w *Worker) Stats() Stats {
	return Stats{
		InFlight:  w.stats.inFlight.Load(),
		Delivered: w.stats.delivered.Load(),
		Succeeded: w.stats.succeeded.Load(),
		Failed:    w.stats.failed.Load(),
	}
}

// ProtocolError ends a session abnormally: the node rejected the worker,
// broke the protocol, went silent, or the connection failed.
type ProtocolError struct {
	Msg string
	Err error // the underlying cause, if any (e.g. a *FrameError)
}

func (e *ProtocolError) Error() string { return "crosswire: " + e.Msg }
func (e *ProtocolError) Unwrap() error { return e.Err }

func protoErr(err error, format string, args ...any) *ProtocolError {
	return &ProtocolError{Msg: fmt.Sprintf(format, args...), Err: err}
}

// Run connects to the node, handshakes, and serves deliveries until the node
// says goodbye, a drain requested by SIGTERM/SIGINT (or by cancelling ctx)
// completes — both return nil — or the session fails, which returns a
// *ProtocolError naming the reason (e.g. "rejected by node: ...",
// "frame too large: N bytes > max M").
func (w *Worker) Run(ctx context.Context) error {
	if len(w.patterns) == 0 {
		return errors.New("crosswire: no handlers registered")
	}
	if w.opts.maxInFlight < 1 {
		return fmt.Errorf("crosswire: max in flight must be ≥ 1, got %d", w.opts.maxInFlight)
	}
	if w.opts.maxFrame < MinMaxFrame {
		return fmt.Errorf("crosswire: max frame must be ≥ %d, got %d", MinMaxFrame, w.opts.maxFrame)
	}
	if w.opts.socket == "" {
		return errors.New("crosswire: no socket path: set CROSSWIRE_SOCKET or use WithSocket")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", w.opts.socket)
	if err != nil {
		return fmt.Errorf("crosswire: connect to node at %s: %w", w.opts.socket, err)
	}
	defer conn.Close()
	s := &session{w: w, conn: conn, log: w.opts.logger.With("worker", w.name)}
	return s.run(ctx)
}
