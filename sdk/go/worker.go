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
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// SDKName is sent in hello as the SDK name/version.
const SDKName = "crosswire-go/0.1.0"

// HandlerFunc handles one event. Its ctx expires at the delivery deadline and
// carries the event (EventFromContext), its trace context (TraceParent) and
// lets the handler Emit follow-up events. Return nil on success, a
// *HandlerError (Permanent, Retryable, RetryAfter, Reject) to choose the error
// envelope, or any other error for a retryable handler_error.
type HandlerFunc func(ctx context.Context, ev *Event) error

// Option configures a Worker. NewWorker reports an invalid one as an error
// that errors.Is ErrInvalidOption.
type Option func(*options)

// Registration and configuration errors; compare with errors.Is.
var (
	// ErrInvalidOption: an option out of range, no socket path, or no handler.
	ErrInvalidOption = errors.New("crosswire: invalid option")
	// ErrDuplicateHandler: Handle for an event type that already has a handler.
	ErrDuplicateHandler = errors.New("crosswire: duplicate handler")
	// ErrInvalidPattern: an event type pattern that breaks the NATS subject rules.
	ErrInvalidPattern = errors.New("crosswire: invalid event type pattern")
)

type options struct {
	maxInFlight int
	maxFrame    int
	versions    []uint64
	socket      string
	logger      *slog.Logger
	signals     bool
	handshake   time.Duration
	token       string
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

// WithToken sets the token sent in hello (default $CROSSWIRE_TOKEN, which the
// node sets for the workers it spawns; an external worker uses the token its
// node was configured with).
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// WithLogger sets the logger for worker events (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithSignals controls whether Run drains on SIGTERM/SIGINT (default true).
func WithSignals(on bool) Option { return func(o *options) { o.signals = on } }

// Worker runs handlers for event types on behalf of a crosswire node.
// Register handlers and the warm-up hook before Run; Handle refuses
// registrations once Run has started.
type Worker struct {
	name     string
	opts     options
	mu       sync.Mutex // guards patterns, handlers and started until Run starts
	started  bool
	patterns []string
	handlers map[string]HandlerFunc
	schemas  map[string][]string // hello schemas, from Accepts
	warmup   func(context.Context) error
	stats    workerStats
}

// NewWorker returns a worker named name (the default source of emitted events).
//
// It returns an error that errors.Is ErrInvalidOption if name is empty or an
// option is out of range (max in flight < 1, max frame < MinMaxFrame, no
// protocol version, a token over 256 characters).
func NewWorker(name string, opts ...Option) (*Worker, error) {
	o := options{
		maxInFlight: 64,
		maxFrame:    DefaultMaxFrame,
		versions:    []uint64{ProtocolVersion},
		socket:      os.Getenv("CROSSWIRE_SOCKET"),
		signals:     true,
		handshake:   30 * time.Second,
		token:       os.Getenv("CROSSWIRE_TOKEN"),
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	switch {
	case name == "":
		return nil, fmt.Errorf("%w: the worker name is empty", ErrInvalidOption)
	case o.maxInFlight < 1:
		return nil, fmt.Errorf("%w: max in flight must be ≥ 1, got %d", ErrInvalidOption, o.maxInFlight)
	case o.maxFrame < MinMaxFrame:
		return nil, fmt.Errorf("%w: max frame must be ≥ %d, got %d", ErrInvalidOption, MinMaxFrame, o.maxFrame)
	case len(o.versions) == 0:
		return nil, fmt.Errorf("%w: no protocol version", ErrInvalidOption)
	case len([]rune(o.token)) > 256:
		return nil, fmt.Errorf("%w: the token is longer than 256 characters", ErrInvalidOption)
	}
	return &Worker{name: name, opts: o, handlers: map[string]HandlerFunc{}}, nil
}

// Name is the worker's name.
func (w *Worker) Name() string { return w.name }

// Handle registers h for an event type. The type may use NATS-style wildcards:
// `*` matches one dot-separated token, a final `>` one or more. An exact
// registration wins over a wildcard one; among wildcards the first registered wins.
//
// Options such as Accepts declare more about the registration.
//
// It returns an error that errors.Is ErrInvalidPattern for a malformed
// pattern, ErrDuplicateHandler if the type already has a handler, or
// ErrInvalidOption for a nil h, a bad option, or once Run has started.
func (w *Worker) Handle(eventType string, h HandlerFunc, opts ...HandleOption) error {
	if err := validatePattern(eventType); err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("%w: nil handler for %q", ErrInvalidOption, eventType)
	}
	var ho handleOptions
	for _, opt := range opts {
		opt(&ho)
	}
	if err := ho.check(eventType); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return fmt.Errorf("%w: Handle(%q) after Run started", ErrInvalidOption, eventType)
	}
	if _, ok := w.handlers[eventType]; ok {
		return fmt.Errorf("%w: a handler for %q is already registered", ErrDuplicateHandler, eventType)
	}
	w.patterns = append(w.patterns, eventType)
	w.handlers[eventType] = h
	if ho.accepts != nil {
		if w.schemas == nil {
			w.schemas = map[string][]string{}
		}
		w.schemas[eventType] = ho.accepts
	}
	return nil
}

// HandleOption configures one registration of [Worker.Handle].
type HandleOption func(*handleOptions)

type handleOptions struct {
	accepts []string // nil: any dataschema
}

// Accepts declares the payload schema versions the handler reads: the
// dataschema URIs (urn:crosswire:schema:<id>:<version>) of its payload types,
// usually the generated constants:
//
//	w.Handle("order.validated", price, crosswire.Accepts(OrderDataSchema))
//
// They are sent in hello `schemas`. The node then refuses to deliver events of
// this type whose dataschema is not one of them: such an event is dead-lettered
// with invalid_argument, naming both versions, and the handler never sees it.
// Events without a dataschema are delivered. Without Accepts, any version is
// delivered. Repeated Accepts options add up; at most 16 URIs, each 1–1024 bytes.
func Accepts(dataschemas ...string) HandleOption {
	return func(o *handleOptions) {
		if o.accepts == nil {
			o.accepts = make([]string, 0, len(dataschemas))
		}
		for _, d := range dataschemas {
			if !slices.Contains(o.accepts, d) {
				o.accepts = append(o.accepts, d)
			}
		}
	}
}

func (o handleOptions) check(eventType string) error {
	if len(o.accepts) > 16 {
		return fmt.Errorf("%w: Accepts for %q: %d schema versions, max 16", ErrInvalidOption, eventType, len(o.accepts))
	}
	for _, d := range o.accepts {
		if d == "" || len(d) > 1024 {
			return fmt.Errorf("%w: Accepts for %q: a dataschema URI must be 1-1024 bytes, got %q", ErrInvalidOption, eventType, d)
		}
	}
	return nil
}

// validatePattern applies the subject rules of spec/vectors/wildcards: tokens
// are non-empty and hold no whitespace; `*` and `>` are whole tokens; `>` is last.
func validatePattern(p string) error {
	bad := func(why string) error { return fmt.Errorf("%w %q: %s", ErrInvalidPattern, p, why) }
	if p == "" {
		return bad("empty")
	}
	if strings.IndexFunc(p, unicode.IsSpace) >= 0 {
		return bad("contains whitespace")
	}
	tokens := strings.Split(p, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return bad(fmt.Sprintf("empty token at position %d", i+1))
		case t == ">" && i != len(tokens)-1:
			return bad("'>' must be the last token")
		case t != "*" && t != ">" && strings.ContainsAny(t, "*>"):
			return bad(fmt.Sprintf("wildcards must be whole tokens, got %q", t))
		}
	}
	return nil
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
// "frame too large: N bytes > max M"). Run returns only after every handler
// it started has returned (a handler that ignores its ctx delays it).
//
// It returns an error that errors.Is ErrInvalidOption, before connecting, if
// no handler is registered or there is no socket path.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	w.started = true
	n := len(w.patterns)
	w.mu.Unlock()
	if n == 0 {
		return fmt.Errorf("%w: no handlers registered", ErrInvalidOption)
	}
	if w.opts.socket == "" {
		return fmt.Errorf("%w: no socket path: set CROSSWIRE_SOCKET or use WithSocket", ErrInvalidOption)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", w.opts.socket)
	if err != nil {
		return fmt.Errorf("crosswire: connect to node at %s: %w", w.opts.socket, err)
	}
	defer conn.Close()
	installLogForwarding() // logs.go: slog records written with a handler's ctx go to the node
	s := &session{w: w, conn: conn, log: w.opts.logger.With("worker", w.name)}
	return s.run(ctx)
}
