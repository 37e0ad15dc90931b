// Command crosswire-testworker is the Go SDK's conformance worker
// (spec/conformance-worker.md), built only on the SDK's public API. The node's
// end-to-end tests and benchmarks spawn it with CROSSWIRE_SOCKET set.
//
//	crosswire-testworker [--name NAME] [--max-in-flight N]
//	                     [--protocol-version V]... [--max-frame BYTES]
//
// It exits 0 after a clean drain or goodbye, and 1 with a one-line reason on
// stderr on any protocol error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	crosswire "github.com/crosswire-dev/crosswire/sdk/go"
)

// versionList is a repeatable --protocol-version flag.
type versionList []uint64

func (v *versionList) String() string {
	parts := make([]string, len(*v))
	for i, x := range *v {
		parts[i] = strconv.FormatUint(x, 10)
	}
	return strings.Join(parts, ",")
}

func (v *versionList) Set(s string) error {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return fmt.Errorf("protocol version must be a non-negative integer: %q", s)
	}
	*v = append(*v, n)
	return nil
}

func main() {
	name := flag.String("name", "testworker-go", "worker name")
	maxInFlight := flag.Int("max-in-flight", 64, "deliveries handled at once")
	maxFrame := flag.Int("max-frame", crosswire.DefaultMaxFrame, "largest frame accepted, in bytes")
	var versions versionList
	flag.Var(&versions, "protocol-version", "protocol version to offer (repeatable; default 1)")
	flag.Parse()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := []crosswire.Option{
		crosswire.WithMaxInFlight(*maxInFlight),
		crosswire.WithMaxFrame(*maxFrame),
		crosswire.WithLogger(logger),
	}
	if len(versions) > 0 {
		opts = append(opts, crosswire.WithProtocolVersions(versions...))
	}
	w, err := crosswire.NewWorker(*name, opts...)
	if err == nil {
		err = register(w)
	}
	if err == nil {
		err = w.Run(context.Background())
	}
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "crosswire: ") {
			msg = "crosswire: " + msg
		}
		fmt.Fprintln(os.Stderr, strings.ReplaceAll(msg, "\n", " "))
		os.Exit(1)
	}
}

// decodePayload fills v (holding the defaults) from the event's data, if any.
func decodePayload(ev *crosswire.Event, v any) error {
	if len(ev.Data) == 0 {
		return nil
	}
	if err := ev.Decode(v); err != nil {
		return crosswire.Permanent(crosswire.CodeInvalidArgument, err)
	}
	return nil
}

// register adds the handlers of spec/conformance-worker.md.
func register(w *crosswire.Worker) error {
	var errs []error
	handle := func(eventType string, h crosswire.HandlerFunc) { errs = append(errs, w.Handle(eventType, h)) }

	handle("test.echo", func(context.Context, *crosswire.Event) error { return nil })

	handle("test.fail_transient", func(ctx context.Context, ev *crosswire.Event) error {
		p := struct {
			FailUntil int `msgpack:"fail_until,omitempty"`
		}{FailUntil: 3}
		if err := decodePayload(ev, &p); err != nil {
			return err
		}
		if ev.Attempt < p.FailUntil {
			return crosswire.Retryable(crosswire.CodeUnavailable,
				fmt.Errorf("transient failure on attempt %d", ev.Attempt), 10*time.Millisecond)
		}
		return nil
	})

	handle("test.fail_permanent", func(context.Context, *crosswire.Event) error {
		return crosswire.Permanent(crosswire.CodeInvalidArgument, errors.New("permanent failure requested"))
	})

	handle("test.sleep", func(ctx context.Context, ev *crosswire.Event) error {
		p := struct {
			MS int `msgpack:"ms,omitempty"`
		}{MS: 500}
		if err := decodePayload(ev, &p); err != nil {
			return err
		}
		t := time.NewTimer(time.Duration(p.MS) * time.Millisecond)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done(): // the SDK reports an overrun deadline as timeout
			return ctx.Err()
		}
	})

	// test.hang ignores ctx on purpose: a handler that overruns its deadline and keeps
	// its delivery's credit (the node must reclaim it).
	handle("test.hang", func(_ context.Context, ev *crosswire.Event) error {
		p := struct {
			MS int `msgpack:"ms,omitempty"`
		}{MS: 60000}
		if err := decodePayload(ev, &p); err != nil {
			return err
		}
		time.Sleep(time.Duration(p.MS) * time.Millisecond)
		return nil
	})

	handle("test.emit", func(ctx context.Context, ev *crosswire.Event) error {
		out := crosswire.MustNewEvent("test.emitted", nil)
		out.Data, out.DataContentType = ev.Data, ev.DataContentType
		return crosswire.Emit(ctx, out)
	})

	handle("test.panic", func(context.Context, *crosswire.Event) error {
		panic("test.panic requested")
	})

	// test.payload.order / test.payload.numbers decode the payload into the test
	// schemas of spec/payloads.md and emit what they read as MessagePack, so the
	// node's tests can compare Go's decoding with the payload vectors.
	handle("test.payload.order", decodeAndEmit[order])
	handle("test.payload.numbers", decodeAndEmit[numbers])

	// test.versioned is built against version 1 of the test order schema only: the
	// node refuses to deliver events of another dataschema (hello schemas).
	errs = append(errs, w.Handle("test.versioned", func(context.Context, *crosswire.Event) error {
		return nil
	}, crosswire.Accepts(TestOrderDataSchema)))
	return errors.Join(errs...)
}

// TestOrderDataSchema is the one version of the test order schema test.versioned
// reads, as codegen writes such a constant.
const TestOrderDataSchema = "urn:crosswire:schema:crosswire.test.Order:1"

func decodeAndEmit[T any](ctx context.Context, ev *crosswire.Event) error {
	v, err := crosswire.Decode[T](ev)
	if err != nil {
		return err // invalid_argument
	}
	out, err := crosswire.NewEvent(ev.Type+".decoded", v)
	if err != nil {
		return err
	}
	return crosswire.Emit(ctx, out)
}

// The test schemas of spec/payloads.md.
type customer struct {
	ID    int64   `msgpack:"id"`
	Name  string  `msgpack:"name"`
	Email *string `msgpack:"email"`
}

type item struct {
	SKU   string  `msgpack:"sku"`
	Qty   uint32  `msgpack:"qty"`
	Price float64 `msgpack:"price"`
}

type order struct {
	OrderID  int64             `msgpack:"order_id"`
	Customer customer          `msgpack:"customer"`
	Items    []item            `msgpack:"items"`
	Note     *string           `msgpack:"note"`
	Tags     map[string]string `msgpack:"tags,omitempty"`
	PaidAt   *time.Time        `msgpack:"paid_at"`
	Blob     []byte            `msgpack:"blob,omitempty"`
}

type numbers struct {
	I8  int8    `msgpack:"i8"`
	U8  uint8   `msgpack:"u8"`
	I16 int16   `msgpack:"i16"`
	U16 uint16  `msgpack:"u16"`
	I32 int32   `msgpack:"i32"`
	U32 uint32  `msgpack:"u32"`
	I64 int64   `msgpack:"i64"`
	U64 uint64  `msgpack:"u64"`
	F64 float64 `msgpack:"f64"`
}
