package crosswire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"sync"
	"syscall"
	"time"
)

// session is one connection to the node. The run loop owns all session state;
// the reader goroutine, the handler pool and the writer talk to it over channels.
type session struct {
	w    *Worker
	conn net.Conn
	log  *slog.Logger

	out       *frameWriter
	peerMax   int           // largest frame the node accepts
	heartbeat time.Duration // interval agreed in welcome

	jobs     chan job
	results  chan jobResult
	abort    context.CancelFunc // cancels running handlers when the session ends
	running  sync.WaitGroup     // the handler pool and the warm-up hook: run waits for them
	inFlight int
	draining bool // no new work: drain frame, signal or ctx
	selfStop bool // drain started by this side: send drained+goodbye and exit
	drained  bool // drained sent
	initSeen bool
}

type job struct {
	id       uint64
	ev       *Event
	deadline time.Time // zero: none
	handler  HandlerFunc
}

type jobResult struct {
	id  uint64
	res ResultFrame
}

type readResult struct {
	f   Frame
	err error
}

func (s *session) run(ctx context.Context) error {
	w := s.w
	fr := NewFrameReader(s.conn, w.opts.maxFrame)
	// Registered before the handshake so that a signal arriving early is not
	// fatal: it is seen once the session is up, and drains it at once.
	var sigs chan os.Signal
	if w.opts.signals {
		sigs = make(chan os.Signal, 2)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		defer signal.Stop(sigs)
	}

	hello := HelloFrame{
		Versions:    w.opts.versions,
		Name:        w.name,
		Runtime:     Runtime,
		Types:       w.patterns,
		MaxInFlight: uint64(w.opts.maxInFlight),
		MaxFrame:    uint64(w.opts.maxFrame),
		PID:         uint64(os.Getpid()),
		SDK:         SDKName,
		Schemas:     w.schemas,
		Token:       w.opts.token,
	}
	if _, err := s.conn.Write(EncodeFrame(hello)); err != nil {
		return protoErr(err, "send hello: %v", err)
	}
	// Cancelling ctx during the handshake unblocks the read: nothing is in
	// flight yet, so that is a clean stop.
	stopWatch := context.AfterFunc(ctx, func() { _ = s.conn.SetReadDeadline(time.Now()) })
	welcome, err := s.handshake(fr)
	if !stopWatch() || (err != nil && ctx.Err() != nil) {
		return nil
	}
	if err != nil {
		return err
	}
	s.peerMax = int(min(welcome.MaxFrame, 1<<31))
	s.heartbeat = time.Duration(welcome.HeartbeatMS) * time.Millisecond
	if s.heartbeat <= 0 {
		s.heartbeat = time.Second
	}
	s.log.Debug("crosswire: welcomed", "node", welcome.Node, "version", welcome.Version)

	s.out = newFrameWriter(s.conn, w.opts.maxInFlight+16)
	defer s.out.close(time.Second)

	// Handlers run in a fixed pool of maxInFlight goroutines; their contexts
	// derive from handlerCtx, cancelled when the session ends. On the way out
	// (deferred, so in reverse): close jobs, cancel handlers, wait for every
	// handler and the warm-up hook to return, then flush the writer.
	defer s.running.Wait()
	handlerCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	s.abort = abort
	defer abort()
	s.jobs = make(chan job, w.opts.maxInFlight)
	s.results = make(chan jobResult, w.opts.maxInFlight)
	s.running.Add(w.opts.maxInFlight)
	for i := 0; i < w.opts.maxInFlight; i++ {
		go s.poolWorker(handlerCtx)
	}
	defer close(s.jobs)

	frames := make(chan readResult, 1)
	var lastRecv atomicTime
	lastRecv.store(time.Now())
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err == nil {
				lastRecv.store(time.Now())
			}
			select {
			case frames <- readResult{f, err}:
			case <-handlerCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()

	done := ctx.Done()
	ticker := time.NewTicker(s.heartbeat / 4)
	defer ticker.Stop()
	warmed := make(chan error, 1)

	for {
		select {
		case rr := <-frames:
			if rr.err != nil {
				return s.readFailed(rr.err)
			}
			stop, err := s.onFrame(handlerCtx, rr.f, warmed)
			if stop || err != nil {
				return err
			}
		case err := <-warmed:
			if err != nil {
				msg := fmt.Sprintf("warm-up failed: %v", err)
				s.out.send(ErrorFrame{Message: msg})
				return protoErr(err, "%s", msg)
			}
			s.out.send(ReadyFrame{})
			s.log.Debug("crosswire: ready")
		case jr := <-s.results:
			s.inFlight--
			w.stats.inFlight.Add(-1)
			s.sendResult(jr.res)
			if s.finishDrain() {
				return nil
			}
		case sig := <-sigs:
			if s.selfStop {
				return protoErr(nil, "interrupted by a second %v during drain", sig)
			}
			s.log.Info("crosswire: draining on signal", "signal", sig.String(), "in_flight", s.inFlight)
			s.beginSelfDrain()
			if s.finishDrain() {
				return nil
			}
		case <-done:
			done = nil
			if !s.selfStop {
				s.beginSelfDrain()
			}
			if s.finishDrain() {
				return nil
			}
		case now := <-ticker.C:
			if silent := now.Sub(lastRecv.load()); silent > 3*s.heartbeat {
				return protoErr(nil, "node silent for %v (3 heartbeat intervals of %v)", silent.Round(time.Millisecond), s.heartbeat)
			}
			if now.Sub(time.Unix(0, s.out.lastSent.Load())) >= s.heartbeat {
				s.out.send(HeartbeatFrame{})
			}
		case <-s.out.done:
			if s.out.err != nil {
				return protoErr(s.out.err, "write to node: %v", s.out.err)
			}
			return protoErr(nil, "writer stopped")
		}
	}
}

// handshake waits for welcome (or reject) with a deadline.
func (s *session) handshake(fr *FrameReader) (WelcomeFrame, error) {
	_ = s.conn.SetReadDeadline(time.Now().Add(s.w.opts.handshake))
	defer func() { _ = s.conn.SetReadDeadline(time.Time{}) }()
	f, err := fr.ReadFrame()
	if err != nil {
		var fe *FrameError
		if errors.As(err, &fe) {
			_, _ = s.conn.Write(EncodeFrame(ErrorFrame{Message: fe.Msg}))
			return WelcomeFrame{}, protoErr(fe, "%s", fe.Msg)
		}
		if errors.Is(err, io.EOF) {
			return WelcomeFrame{}, protoErr(err, "node closed the connection during the handshake")
		}
		return WelcomeFrame{}, protoErr(err, "handshake: %v", err)
	}
	switch x := f.(type) {
	case WelcomeFrame:
		if !slices.Contains(s.w.opts.versions, x.Version) {
			msg := fmt.Sprintf("node chose protocol version %d, worker speaks %v", x.Version, s.w.opts.versions)
			_, _ = s.conn.Write(EncodeFrame(ErrorFrame{Message: msg}))
			return x, protoErr(nil, "%s", msg)
		}
		if x.MaxFrame < MinMaxFrame {
			msg := fmt.Sprintf("node max_frame %d is below the minimum %d", x.MaxFrame, MinMaxFrame)
			_, _ = s.conn.Write(EncodeFrame(ErrorFrame{Message: msg}))
			return x, protoErr(nil, "%s", msg)
		}
		fr.SetMax(s.w.opts.maxFrame)
		return x, nil
	case RejectFrame:
		return WelcomeFrame{}, protoErr(nil, "rejected by node: %s", x.Reason)
	case ErrorFrame:
		return WelcomeFrame{}, protoErr(nil, "node reported a protocol error: %s", x.Message)
	default:
		msg := fmt.Sprintf("expected welcome or reject, got %q", f.FrameType())
		_, _ = s.conn.Write(EncodeFrame(ErrorFrame{Message: msg}))
		return WelcomeFrame{}, protoErr(nil, "%s", msg)
	}
}

// readFailed turns a read error into Run's result.
func (s *session) readFailed(err error) error {
	var fe *FrameError
	if errors.As(err, &fe) {
		s.out.send(ErrorFrame{Message: fe.Msg})
		return protoErr(fe, "%s", fe.Msg)
	}
	if errors.Is(err, io.EOF) && s.drained {
		return nil // the node closed after our drained: a clean end
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return protoErr(err, "node closed the connection")
	}
	return protoErr(err, "read from node: %v", err)
}

// onFrame handles one frame from the node; stop = end the session cleanly.
func (s *session) onFrame(ctx context.Context, f Frame, warmed chan<- error) (stop bool, err error) {
	switch x := f.(type) {
	case InitFrame:
		if s.initSeen {
			return false, nil
		}
		s.initSeen = true
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			var err error
			if s.w.warmup != nil {
				err = safeWarmup(ctx, s.w.warmup)
			}
			warmed <- err
		}()
	case DeliverFrame:
		s.onDeliver(x)
	case HeartbeatFrame, UnknownFrame:
	case DrainFrame:
		s.draining = true
		s.finishDrain()
	case GoodbyeFrame:
		if s.inFlight > 0 {
			s.log.Warn("crosswire: goodbye with deliveries in flight", "in_flight", s.inFlight, "reason", x.Reason)
		}
		return true, nil
	case ErrorFrame:
		return true, protoErr(nil, "node reported a protocol error: %s", x.Message)
	default:
		msg := fmt.Sprintf("unexpected %q frame from the node", f.FrameType())
		s.out.send(ErrorFrame{Message: msg})
		return true, protoErr(nil, "%s", msg)
	}
	return false, nil
}

func safeWarmup(ctx context.Context, fn func(context.Context) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn(ctx)
}

func (s *session) onDeliver(d DeliverFrame) {
	now := time.Now()
	fail := func(info ErrorInfo) {
		s.w.stats.delivered.Add(1)
		s.sendResult(ResultFrame{ID: d.ID, Error: &info, StartNS: uint64(now.UnixNano())})
	}
	if s.draining {
		fail(ErrorInfo{Code: CodeCancelled, Message: "worker is draining", Retryable: true, Runtime: Runtime})
		return
	}
	if s.inFlight >= s.w.opts.maxInFlight {
		// The node broke flow control; refusing keeps the pool bounded.
		fail(ErrorInfo{Code: CodeResourceExhausted, Retryable: true, Runtime: Runtime,
			Message: fmt.Sprintf("flow control: %d deliveries already in flight (max %d)", s.inFlight, s.w.opts.maxInFlight)})
		return
	}
	ev, err := DecodeEvent(d.Envelope)
	if err != nil {
		fail(ErrorInfo{Code: CodeInvalidArgument, Message: "undecodable envelope: " + err.Error(), Runtime: Runtime})
		return
	}
	h := s.w.handlerFor(ev.Type)
	if h == nil {
		fail(ErrorInfo{Code: CodeUnimplemented, Message: fmt.Sprintf("no handler for %q in worker %s", ev.Type, s.w.name), Runtime: Runtime})
		return
	}
	var deadline time.Time
	if d.Deadline > 0 {
		deadline = time.UnixMilli(int64(min(d.Deadline, 1<<62)))
	} else if t, ok := ev.DeadlineTime(); ok {
		deadline = t
	}
	s.inFlight++
	s.w.stats.inFlight.Add(1)
	s.w.stats.delivered.Add(1)
	s.jobs <- job{id: d.ID, ev: ev, deadline: deadline, handler: h} // never blocks: cap = maxInFlight
}

// sendResult encodes a result; one larger than the node accepts becomes an error result.
func (s *session) sendResult(r ResultFrame) {
	r.OK = r.Error == nil
	if r.OK {
		s.w.stats.succeeded.Add(1)
	} else {
		s.w.stats.failed.Add(1)
		r.Emitted = nil
	}
	b := EncodeFrame(r)
	if n := frameBodyLen(b); n > s.peerMax {
		info := ErrorInfo{Code: CodeInternal, Runtime: Runtime, Retryable: false,
			Message: fmt.Sprintf("result frame of %d bytes exceeds the node's max frame %d", n, s.peerMax)}
		if r.OK {
			s.w.stats.succeeded.Add(-1)
			s.w.stats.failed.Add(1)
		}
		r.OK, r.Error, r.Emitted = false, &info, nil
		b = EncodeFrame(r)
	}
	s.out.sendEncoded(b)
}

func (s *session) beginSelfDrain() {
	s.draining = true
	s.selfStop = true
}

// finishDrain sends drained once nothing is in flight; it reports true when
// the session should end (a drain this side started: goodbye sent too).
func (s *session) finishDrain() bool {
	if !s.draining || s.inFlight > 0 {
		return false
	}
	if !s.drained {
		s.out.send(DrainedFrame{})
		s.drained = true
	}
	if s.selfStop {
		s.out.send(GoodbyeFrame{Reason: "drained"})
		return true
	}
	return false
}

// poolWorker runs handlers until jobs is closed.
func (s *session) poolWorker(ctx context.Context) {
	defer s.running.Done()
	for j := range s.jobs {
		res := s.runHandler(ctx, j)
		select {
		case s.results <- jobResult{id: j.id, res: res}:
		case <-ctx.Done():
			return
		}
	}
}

// runHandler runs one handler and turns its outcome into a result.
func (s *session) runHandler(base context.Context, j job) ResultFrame {
	d := &delivery{ev: j.ev, source: s.w.name, id: j.id, out: s.out}
	ctx, attempt := startAttempt(withDelivery(base, d), j.ev, s.w.name) // tracing.go
	cancel := context.CancelFunc(func() {})
	if !j.deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, j.deadline)
	}
	defer cancel()
	start := time.Now()
	err := callHandler(ctx, j.handler, j.ev, s.log)
	elapsed := time.Since(start)
	res := ResultFrame{ID: j.id, StartNS: uint64(start.UnixNano()), DurationNS: uint64(elapsed.Nanoseconds())}
	switch {
	case !j.deadline.IsZero() && !time.Now().Before(j.deadline):
		// Overran the deadline, whatever it returned: the node counts it as a timeout.
		res.Error = &ErrorInfo{Code: CodeTimeout, Retryable: true, Runtime: Runtime,
			Message: fmt.Sprintf("deadline exceeded after %v", elapsed.Round(time.Millisecond))}
	case err == nil:
		res.Emitted = d.takeEmitted()
	case base.Err() != nil && errors.Is(err, context.Canceled):
		res.Error = &ErrorInfo{Code: CodeCancelled, Message: "session ended before the handler finished", Retryable: true, Runtime: Runtime}
	default:
		info := ErrorInfoFromError(err)
		res.Error = &info
	}
	res.Spans = attempt.end(res.Error)
	return res
}

// callHandler runs h, turning a panic into a handler_error.
func callHandler(ctx context.Context, h HandlerFunc, ev *Event, log *slog.Logger) (err error) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("crosswire: handler panicked", "type", ev.Type, "id", ev.ID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = &HandlerError{Code: CodeHandlerError, Retryable: true, Err: fmt.Errorf("panic: %v", p)}
		}
	}()
	return h(ctx, ev)
}
