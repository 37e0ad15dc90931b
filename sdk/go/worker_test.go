package crosswire_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	crosswire "github.com/crosswire-dev/crosswire/sdk/go"
	"github.com/crosswire-dev/crosswire/sdk/go/crosswiretest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type order struct {
	OrderID int    `msgpack:"order_id"`
	SKU     string `msgpack:"sku"`
}

// start runs w against a fresh fake node and returns the node's side of the
// session and a channel with Run's result.
func start(t *testing.T, w func(socket string) *crosswire.Worker) (*crosswiretest.Conn, <-chan error) {
	t.Helper()
	node := crosswiretest.Listen(t)
	worker := w(node.Path)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { done <- worker.Run(ctx) }()
	return node.Accept(t), done
}

func newWorker(socket string, opts ...crosswire.Option) *crosswire.Worker {
	base := []crosswire.Option{crosswire.WithSocket(socket), crosswire.WithSignals(false), crosswire.WithLogger(quiet)}
	w, err := crosswire.NewWorker("pricing", append(base, opts...)...)
	if err != nil {
		panic(err)
	}
	return w
}

func runErr(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
		return nil
	}
}

func event(typ string, v any) *crosswire.Event {
	ev := crosswire.MustNewEvent(typ, v)
	ev.Source = "/test"
	return ev
}

func TestHandshakeAndWarmup(t *testing.T) {
	var warmed atomic.Bool
	conn, done := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s, crosswire.WithMaxInFlight(7))
		w.OnWarmup(func(context.Context) error { warmed.Store(true); return nil })
		w.Handle("order.validated", func(context.Context, *crosswire.Event) error { return nil })
		w.Handle("order.*", func(context.Context, *crosswire.Event) error { return nil })
		return w
	})
	hello := conn.Handshake(t, crosswiretest.Welcome())
	if hello.Name != "pricing" || hello.Runtime != "go" || hello.MaxInFlight != 7 ||
		hello.MaxFrame != crosswire.DefaultMaxFrame || len(hello.Versions) != 1 || hello.Versions[0] != 1 ||
		strings.Join(hello.Types, ",") != "order.validated,order.*" || hello.PID != uint64(os.Getpid()) ||
		!strings.HasPrefix(hello.SDK, "crosswire-go/") {
		t.Errorf("hello = %+v", hello)
	}
	if !warmed.Load() {
		t.Error("ready sent before the warm-up hook ran")
	}
	conn.Send(t, crosswire.GoodbyeFrame{Reason: "bye"})
	if err := runErr(t, done); err != nil {
		t.Errorf("Run after goodbye = %v, want nil", err)
	}
}

func TestRejectEndsRunWithTheReason(t *testing.T) {
	conn, done := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s, crosswire.WithProtocolVersions(2))
		w.Handle("a", func(context.Context, *crosswire.Event) error { return nil })
		return w
	})
	hello := crosswiretest.Expect[crosswire.HelloFrame](t, conn)
	if hello.Versions[0] != 2 {
		t.Fatalf("versions %v", hello.Versions)
	}
	reason := "unsupported protocol versions: worker speaks [2], node speaks [1]"
	conn.Send(t, crosswire.RejectFrame{Reason: reason})
	conn.C.Close()
	err := runErr(t, done)
	if err == nil || err.Error() != "crosswire: rejected by node: "+reason {
		t.Errorf("Run = %v", err)
	}
}

func TestWarmupFailure(t *testing.T) {
	conn, done := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.OnWarmup(func(context.Context) error { return errors.New("db unreachable") })
		w.Handle("a", func(context.Context, *crosswire.Event) error { return nil })
		return w
	})
	crosswiretest.Expect[crosswire.HelloFrame](t, conn)
	conn.Send(t, crosswiretest.Welcome())
	conn.Send(t, crosswire.InitFrame{})
	ef := crosswiretest.Expect[crosswire.ErrorFrame](t, conn)
	if !strings.Contains(ef.Message, "db unreachable") {
		t.Errorf("error frame %q", ef.Message)
	}
	if err := runErr(t, done); err == nil || !strings.Contains(err.Error(), "warm-up failed: db unreachable") {
		t.Errorf("Run = %v", err)
	}
}

func TestResultsAndErrorEnvelopes(t *testing.T) {
	conn, done := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.Handle("ok", func(ctx context.Context, ev *crosswire.Event) error {
			var o order
			if err := ev.Decode(&o); err != nil {
				return crosswire.Permanent(crosswire.CodeInvalidArgument, err)
			}
			if o.OrderID != 42 || o.SKU != "A-1" {
				return crosswire.Permanent(crosswire.CodeInvalidArgument, errors.New("wrong payload"))
			}
			return nil
		})
		w.Handle("permanent", func(context.Context, *crosswire.Event) error {
			return crosswire.Permanent(crosswire.CodeNotFound, errors.New("no such sku"))
		})
		w.Handle("retry", func(context.Context, *crosswire.Event) error {
			return crosswire.Retryable(crosswire.CodeUnavailable, errors.New("db down"), 250*time.Millisecond)
		})
		w.Handle("plain", func(context.Context, *crosswire.Event) error { return errors.New("oops") })
		w.Handle("after", func(context.Context, *crosswire.Event) error {
			return crosswire.RetryAfter(errors.New("slow down"), 2*time.Second)
		})
		w.Handle("reject", func(context.Context, *crosswire.Event) error { return crosswire.Reject("bad order") })
		return w
	})
	conn.Handshake(t, crosswiretest.Welcome())

	before := time.Now()
	conn.Deliver(t, 1, event("ok", order{OrderID: 42, SKU: "A-1"}), 0)
	r := conn.Result(t)
	if r.ID != 1 || !r.OK || r.Error != nil {
		t.Fatalf("ok result = %+v", r)
	}
	if start := time.Unix(0, int64(r.StartNS)); start.Before(before) || time.Since(start) > time.Minute {
		t.Errorf("start_ns %d is not the handler's start time", r.StartNS)
	}

	cases := []struct {
		typ       string
		code      crosswire.ErrorCode
		retryable bool
		after     float64
		msg       string
	}{
		{"permanent", crosswire.CodeNotFound, false, -1, "no such sku"},
		{"retry", crosswire.CodeUnavailable, true, 0.25, "db down"},
		{"plain", crosswire.CodeHandlerError, true, -1, "oops"},
		{"after", crosswire.CodeHandlerError, true, 2, "slow down"},
		{"reject", crosswire.CodeRejected, false, -1, "bad order"},
		{"no.handler", crosswire.CodeUnimplemented, false, -1, `no handler for "no.handler"`},
	}
	for i, c := range cases {
		id := uint64(10 + i)
		conn.Deliver(t, id, event(c.typ, nil), 0)
		r := conn.Result(t)
		if r.ID != id || r.OK || r.Error == nil {
			t.Fatalf("%s: result %+v", c.typ, r)
		}
		e := r.Error
		if e.Code != c.code || e.Retryable != c.retryable || e.Runtime != "go" || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s: error %+v", c.typ, e)
		}
		if (c.after < 0) != (e.RetryAfter == nil) || (e.RetryAfter != nil && *e.RetryAfter != c.after) {
			t.Errorf("%s: retry_after %v, want %v", c.typ, e.RetryAfter, c.after)
		}
	}
	// An envelope that does not decode is the event's fault: permanent.
	conn.Send(t, crosswire.DeliverFrame{ID: 99, Envelope: []byte{0xc1}})
	if r := conn.Result(t); r.ID != 99 || r.Error == nil || r.Error.Code != crosswire.CodeInvalidArgument || r.Error.Retryable {
		t.Errorf("bad envelope result %+v", r)
	}
	conn.Send(t, crosswire.GoodbyeFrame{})
	if err := runErr(t, done); err != nil {
		t.Error(err)
	}
}

func TestDeadlineBecomesTimeout(t *testing.T) {
	conn, _ := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.Handle("sleep", func(ctx context.Context, ev *crosswire.Event) error {
			if _, ok := ctx.Deadline(); !ok {
				return errors.New("ctx has no deadline")
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
				return nil
			}
		})
		return w
	})
	conn.Handshake(t, crosswiretest.Welcome())
	start := time.Now()
	conn.Deliver(t, 1, event("sleep", nil), uint64(time.Now().Add(100*time.Millisecond).UnixMilli()))
	r := conn.Result(t)
	if r.Error == nil || r.Error.Code != crosswire.CodeTimeout || !r.Error.Retryable {
		t.Fatalf("result %+v", r)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("timeout reported after %v", took)
	}
}

func TestPanicIsHandlerErrorAndWorkerContinues(t *testing.T) {
	conn, _ := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.Handle("panic", func(context.Context, *crosswire.Event) error { panic("kaboom") })
		w.Handle("ok", func(context.Context, *crosswire.Event) error { return nil })
		return w
	})
	conn.Handshake(t, crosswiretest.Welcome())
	conn.Deliver(t, 1, event("panic", nil), 0)
	r := conn.Result(t)
	if r.Error == nil || r.Error.Code != crosswire.CodeHandlerError || !r.Error.Retryable || !strings.Contains(r.Error.Message, "kaboom") {
		t.Fatalf("panic result %+v", r)
	}
	conn.Deliver(t, 2, event("ok", nil), 0)
	if r := conn.Result(t); r.ID != 2 || !r.OK {
		t.Errorf("after panic: %+v", r)
	}
}

func TestEmitSetsCorrelationCausationTrace(t *testing.T) {
	conn, _ := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.Handle("order.validated", func(ctx context.Context, ev *crosswire.Event) error {
			if crosswire.TraceParent(ctx) != ev.TraceParent || crosswire.EventFromContext(ctx) != ev {
				return errors.New("context does not carry the event")
			}
			if err := crosswire.Emit(ctx, crosswire.MustNewEvent("order.priced", map[string]int{"total": 5})); err != nil {
				return err
			}
			custom := crosswire.MustNewEvent("order.audit", nil)
			custom.CorrelationID, custom.Source = "mine", "/audit"
			return crosswire.Emit(ctx, custom)
		})
		w.Handle("fail", func(ctx context.Context, ev *crosswire.Event) error {
			_ = crosswire.Emit(ctx, crosswire.MustNewEvent("never", nil))
			return errors.New("failed")
		})
		return w
	})
	conn.Handshake(t, crosswiretest.Welcome())
	in := event("order.validated", nil)
	in.ID, in.TraceParent, in.TraceState, in.PartitionKey = "evt-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "a=b", "order-42"
	conn.Deliver(t, 1, in, 0)
	r := conn.Result(t)
	if !r.OK || len(r.Emitted) != 2 {
		t.Fatalf("result %+v", r)
	}
	out, err := crosswire.DecodeEvent(r.Emitted[0])
	if err != nil {
		t.Fatal(err)
	}
	if out.Type != "order.priced" || out.Source != "pricing" || out.CorrelationID != "evt-1" || out.CausationID != "evt-1" ||
		out.TraceParent != in.TraceParent || out.TraceState != "a=b" || out.PartitionKey != "order-42" ||
		out.Time == "" || out.ID == "" || out.ID == "evt-1" || out.DataContentType != crosswire.ContentTypeMsgpack {
		t.Errorf("emitted %+v", out)
	}
	var payload map[string]int
	if err := out.Decode(&payload); err != nil || payload["total"] != 5 {
		t.Errorf("emitted data %v (%v)", payload, err)
	}
	custom, _ := crosswire.DecodeEvent(r.Emitted[1])
	if custom.CorrelationID != "mine" || custom.Source != "/audit" || custom.CausationID != "evt-1" {
		t.Errorf("handler-set attributes overwritten: %+v", custom)
	}
	// correlation already set on the incoming event is propagated as is
	in2 := event("order.validated", nil)
	in2.CorrelationID = "flow-7"
	conn.Deliver(t, 2, in2, 0)
	r = conn.Result(t)
	out, _ = crosswire.DecodeEvent(r.Emitted[0])
	if out.CorrelationID != "flow-7" || out.CausationID != in2.ID {
		t.Errorf("emitted %+v", out)
	}
	conn.Deliver(t, 3, event("fail", nil), 0)
	if r := conn.Result(t); r.OK || len(r.Emitted) != 0 {
		t.Errorf("a failed attempt must not emit: %+v", r)
	}
	if err := crosswire.Emit(context.Background(), in); !errors.Is(err, crosswire.ErrNoDelivery) {
		t.Errorf("Emit outside a handler = %v", err)
	}
}

func TestDrainFinishesInFlightThenDrained(t *testing.T) {
	release := make(chan struct{})
	conn, done := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.Handle("slow", func(ctx context.Context, ev *crosswire.Event) error { <-release; return nil })
		return w
	})
	conn.Handshake(t, crosswiretest.Welcome())
	conn.Deliver(t, 1, event("slow", nil), 0)
	conn.Deliver(t, 2, event("slow", nil), 0)
	conn.Send(t, crosswire.DrainFrame{})
	time.Sleep(50 * time.Millisecond)
	close(release)
	ids := map[uint64]bool{}
	for range 2 {
		r := conn.Result(t)
		if !r.OK {
			t.Errorf("result %+v", r)
		}
		ids[r.ID] = true
	}
	if !ids[1] || !ids[2] {
		t.Errorf("results for %v", ids)
	}
	crosswiretest.Expect[crosswire.DrainedFrame](t, conn)
	conn.Send(t, crosswire.GoodbyeFrame{})
	conn.C.Close()
	if err := runErr(t, done); err != nil {
		t.Errorf("Run after drain = %v", err)
	}
}

func TestCancelledContextDrainsAndSaysGoodbye(t *testing.T) {
	node := crosswiretest.Listen(t)
	release := make(chan struct{})
	w := newWorker(node.Path)
	w.Handle("slow", func(context.Context, *crosswire.Event) error { <-release; return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	conn := node.Accept(t)
	conn.Handshake(t, crosswiretest.Welcome())
	conn.Deliver(t, 1, event("slow", nil), 0)
	for w.Stats().InFlight != 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	time.Sleep(20 * time.Millisecond)
	close(release)
	frames := conn.Closed(t)
	if len(frames) != 3 {
		t.Fatalf("frames before close: %#v", frames)
	}
	if r, ok := frames[0].(crosswire.ResultFrame); !ok || !r.OK {
		t.Errorf("first frame %#v, want the in-flight result", frames[0])
	}
	if _, ok := frames[1].(crosswire.DrainedFrame); !ok {
		t.Errorf("second frame %#v, want drained", frames[1])
	}
	if _, ok := frames[2].(crosswire.GoodbyeFrame); !ok {
		t.Errorf("third frame %#v, want goodbye", frames[2])
	}
	if err := runErr(t, done); err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestOversizedFrameFromNodeClosesWithClearError(t *testing.T) {
	conn, done := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.Handle("a", func(context.Context, *crosswire.Event) error { return nil })
		return w
	})
	conn.Handshake(t, crosswiretest.Welcome())
	hdr := make([]byte, 4)
	binary.BigEndian.PutUint32(hdr, 0xffffffff)
	conn.SendRaw(t, hdr) // no body follows: the worker must decide from the header
	frames := conn.Closed(t)
	want := "frame too large: 4294967295 bytes > max 1114112"
	if len(frames) != 1 || frames[0].(crosswire.ErrorFrame).Message != want {
		t.Errorf("frames %#v, want one error frame %q", frames, want)
	}
	err := runErr(t, done)
	if err == nil || err.Error() != "crosswire: "+want || !errors.Is(err, crosswire.ErrFrameTooLarge) {
		t.Errorf("Run = %v", err)
	}
}

func TestMalformedFrameFromNode(t *testing.T) {
	conn, done := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.Handle("a", func(context.Context, *crosswire.Event) error { return nil })
		return w
	})
	conn.Handshake(t, crosswiretest.Welcome())
	conn.SendRaw(t, []byte{0, 0, 0, 2, 0xc1, 0xc1})
	if frames := conn.Closed(t); len(frames) != 1 {
		t.Errorf("frames %#v, want one error frame", frames)
	}
	if err := runErr(t, done); !errors.Is(err, crosswire.ErrFrameMalformed) {
		t.Errorf("Run = %v", err)
	}
}

func TestFlowControlNeverExceedsMaxInFlight(t *testing.T) {
	const max = 3
	var running, peak atomic.Int64
	var blockPeak atomic.Int64
	block := make(chan struct{})
	conn, _ := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s, crosswire.WithMaxInFlight(max))
		w.Handle("work", func(ctx context.Context, ev *crosswire.Event) error {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(10 * time.Millisecond)
			running.Add(-1)
			return nil
		})
		w.Handle("block", func(ctx context.Context, ev *crosswire.Event) error {
			blockPeak.Add(1)
			<-block
			return nil
		})
		return w
	})
	hello := conn.Handshake(t, crosswiretest.Welcome())
	credit := int(hello.MaxInFlight)
	if credit != max {
		t.Fatalf("max_in_flight %d", credit)
	}
	// Keep the worker saturated: send whenever there is credit, as a node does.
	const total = 30
	sent, got := 0, 0
	for got < total {
		for sent < total && sent-got < credit {
			sent++
			conn.Deliver(t, uint64(sent), event("work", nil), 0)
		}
		if r := conn.Result(t); !r.OK {
			t.Fatalf("result %+v", r)
		}
		got++
	}
	if p := peak.Load(); p != max {
		t.Errorf("peak concurrency %d, want exactly %d", p, max)
	}
	// A node that breaks flow control gets a retryable refusal, not extra goroutines.
	defer close(block)
	for i := range max + 1 {
		conn.Deliver(t, uint64(100+i), event("block", nil), 0)
	}
	r := conn.Result(t)
	if r.ID != 100+max || r.Error == nil || r.Error.Code != crosswire.CodeResourceExhausted || !r.Error.Retryable {
		t.Errorf("delivery beyond credit: %+v", r)
	}
	if p := blockPeak.Load(); p > max {
		t.Errorf("%d handlers ran at once", p)
	}
}

func TestSilentNodeEndsRun(t *testing.T) {
	conn, done := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.Handle("a", func(context.Context, *crosswire.Event) error { return nil })
		return w
	})
	welcome := crosswiretest.Welcome()
	welcome.HeartbeatMS = 40
	conn.Handshake(t, welcome)
	start := time.Now()
	// Read (and count) the worker's heartbeats but send nothing back.
	frames := conn.Closed(t)
	if len(frames) != 0 {
		t.Errorf("unexpected frames %#v", frames)
	}
	if conn.Heartbeats == 0 {
		t.Error("the idle worker sent no heartbeat")
	}
	err := runErr(t, done)
	if err == nil || !strings.Contains(err.Error(), "node silent") {
		t.Errorf("Run = %v", err)
	}
	if took := time.Since(start); took < 120*time.Millisecond || took > 2*time.Second {
		t.Errorf("gave up after %v, want about 3 intervals", took)
	}
}

func TestUnknownFrameTypeIsIgnoredAfterHandshake(t *testing.T) {
	conn, _ := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.Handle("a", func(context.Context, *crosswire.Event) error { return nil })
		return w
	})
	conn.Handshake(t, crosswiretest.Welcome())
	conn.Send(t, crosswire.UnknownFrame{T: "future"})
	conn.Deliver(t, 5, event("a", nil), 0)
	if r := conn.Result(t); r.ID != 5 || !r.OK {
		t.Errorf("result %+v", r)
	}
}

func TestCancelDuringHandshakeReturnsNil(t *testing.T) {
	node := crosswiretest.Listen(t)
	w := newWorker(node.Path)
	w.Handle("a", func(context.Context, *crosswire.Event) error { return nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	conn := node.Accept(t)
	crosswiretest.Expect[crosswire.HelloFrame](t, conn)
	cancel() // the node never answers
	if err := runErr(t, done); err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestDeeplyNestedFrameFromNodeIsMalformedNamingTheLimit(t *testing.T) {
	conn, done := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.Handle("a", func(context.Context, *crosswire.Event) error { return nil })
		return w
	})
	conn.Handshake(t, crosswiretest.Welcome())
	// {"t": "heartbeat", "x": 100,000 nested arrays}
	body := append([]byte{0x82, 0xa1, 't', 0xa9}, "heartbeat"...)
	body = append(body, 0xa1, 'x')
	body = append(body, bytes.Repeat([]byte{0x91}, 100000)...)
	body = append(body, 0x90)
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(body)))
	conn.SendRaw(t, append(frame, body...))
	frames := conn.Closed(t)
	if len(frames) != 1 {
		t.Fatalf("frames %#v, want one error frame", frames)
	}
	if ef, ok := frames[0].(crosswire.ErrorFrame); !ok || !strings.Contains(ef.Message, "nesting limit") {
		t.Errorf("frame %#v, want an error naming the nesting limit", frames[0])
	}
	if err := runErr(t, done); !errors.Is(err, crosswire.ErrFrameMalformed) || !strings.Contains(err.Error(), "nested deeper than 64 levels") {
		t.Errorf("Run = %v", err)
	}
}

func TestRunWaitsForItsHandlers(t *testing.T) {
	var finished atomic.Bool
	started := make(chan struct{})
	conn, done := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		w.Handle("order.created", func(ctx context.Context, _ *crosswire.Event) error {
			close(started)
			<-ctx.Done()                       // the session ended...
			time.Sleep(100 * time.Millisecond) // ...and the handler still cleans up
			finished.Store(true)
			return ctx.Err()
		})
		return w
	})
	conn.Handshake(t, crosswiretest.Welcome())
	conn.Deliver(t, 1, event("order.created", order{OrderID: 1}), 0)
	<-started
	conn.C.Close() // the node goes away mid-delivery
	if err := runErr(t, done); err == nil {
		t.Fatal("Run = nil after the node vanished")
	}
	if !finished.Load() {
		t.Error("Run returned while a handler was still running")
	}
}

func TestHandleRefusesDuplicatesAndBadPatterns(t *testing.T) {
	w := newWorker("unused")
	h := func(context.Context, *crosswire.Event) error { return nil }
	if err := w.Handle("order.*", h); err != nil {
		t.Fatal(err)
	}
	if err := w.Handle("order.*", h); !errors.Is(err, crosswire.ErrDuplicateHandler) {
		t.Errorf("duplicate Handle = %v, want ErrDuplicateHandler", err)
	}
	if err := w.Handle("order.>.eu", h); !errors.Is(err, crosswire.ErrInvalidPattern) || !strings.Contains(err.Error(), "last token") {
		t.Errorf("bad pattern = %v", err)
	}
	if err := w.Handle("order.x", nil); !errors.Is(err, crosswire.ErrInvalidOption) {
		t.Errorf("nil handler = %v", err)
	}
}

func TestHandleAfterRunIsRefused(t *testing.T) {
	w := newWorker("/nonexistent/socket")
	_ = w.Handle("a", func(context.Context, *crosswire.Event) error { return nil })
	_ = w.Run(context.Background()) // fails to connect, but Run has started
	if err := w.Handle("b", func(context.Context, *crosswire.Event) error { return nil }); !errors.Is(err, crosswire.ErrInvalidOption) {
		t.Errorf("Handle after Run = %v", err)
	}
}

func TestInvalidOptionsAreErrInvalidOption(t *testing.T) {
	for name, opts := range map[string][]crosswire.Option{
		"max in flight 0":  {crosswire.WithMaxInFlight(0)},
		"max frame 100":    {crosswire.WithMaxFrame(100)},
		"no versions":      {crosswire.WithProtocolVersions()},
		"token too long":   {crosswire.WithToken(strings.Repeat("t", 257))},
		"negative in flig": {crosswire.WithMaxInFlight(-1)},
	} {
		if _, err := crosswire.NewWorker("w", opts...); !errors.Is(err, crosswire.ErrInvalidOption) {
			t.Errorf("%s: NewWorker = %v, want ErrInvalidOption", name, err)
		}
	}
	if _, err := crosswire.NewWorker(""); !errors.Is(err, crosswire.ErrInvalidOption) {
		t.Errorf("empty name: %v", err)
	}
	w := newWorker("/tmp/x.sock")
	if err := w.Run(context.Background()); !errors.Is(err, crosswire.ErrInvalidOption) || !strings.Contains(err.Error(), "no handlers") {
		t.Errorf("Run without handlers = %v", err)
	}
	w = newWorker("", crosswire.WithSocket(""))
	_ = w.Handle("a", func(context.Context, *crosswire.Event) error { return nil })
	if err := w.Run(context.Background()); !errors.Is(err, crosswire.ErrInvalidOption) || !strings.Contains(err.Error(), "socket") {
		t.Errorf("Run without socket = %v", err)
	}
}

func TestHelloCarriesTheSpawnToken(t *testing.T) {
	for _, tc := range []struct {
		env  string
		opts []crosswire.Option
		want string
	}{
		{env: "s3cr3t-token", want: "s3cr3t-token"},
		{env: "", want: ""},
		{env: "from-env", opts: []crosswire.Option{crosswire.WithToken("explicit")}, want: "explicit"},
	} {
		t.Setenv("CROSSWIRE_TOKEN", tc.env)
		conn, _ := start(t, func(s string) *crosswire.Worker {
			w := newWorker(s, tc.opts...)
			w.Handle("a", func(context.Context, *crosswire.Event) error { return nil })
			return w
		})
		hello := crosswiretest.Expect[crosswire.HelloFrame](t, conn)
		if hello.Token != tc.want {
			t.Errorf("env %q: hello token %q, want %q", tc.env, hello.Token, tc.want)
		}
	}
}

func TestHelloTokenIsWrittenLast(t *testing.T) {
	b := crosswire.EncodeFrame(crosswire.HelloFrame{Versions: []uint64{1}, Name: "w", Runtime: "go", Types: []string{"a"},
		MaxInFlight: 1, MaxFrame: 4096, SDK: "x", Token: "tok"})
	if !strings.HasSuffix(string(b), "\xa5token\xa3tok") {
		t.Errorf("hello %x does not end with the token", b)
	}
	f, _, err := crosswire.DecodeFrame(b, crosswire.DefaultMaxFrame)
	if h, ok := f.(crosswire.HelloFrame); err != nil || !ok || h.Token != "tok" {
		t.Errorf("decoded %#v, %v", f, err)
	}
}
