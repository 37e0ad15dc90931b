package crosswire

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrNoDelivery is returned by Emit when ctx does not belong to a handler call.
var ErrNoDelivery = errors.New("crosswire: Emit outside a handler: ctx carries no delivery")

type deliveryKey struct{}

// delivery is the per-attempt state a handler's context carries.
type delivery struct {
	ev     *Event
	source string       // the worker name: default source of emitted events
	id     uint64       // the delivery id (log frames name it)
	out    *frameWriter // where log frames written with the handler's ctx go (logs.go)

	mu      sync.Mutex
	emitted [][]byte
	size    int
}

func withDelivery(ctx context.Context, d *delivery) context.Context {
	return context.WithValue(ctx, deliveryKey{}, d)
}

func deliveryFrom(ctx context.Context) *delivery {
	d, _ := ctx.Value(deliveryKey{}).(*delivery)
	return d
}

// EventFromContext returns the event a handler is handling, or nil outside a handler.
func EventFromContext(ctx context.Context) *Event {
	if d := deliveryFrom(ctx); d != nil {
		return d.ev
	}
	return nil
}

// TraceParent returns the W3C traceparent of the event being handled ("" if none).
func TraceParent(ctx context.Context) string {
	if ev := EventFromContext(ctx); ev != nil {
		return ev.TraceParent
	}
	return ""
}

// TraceState returns the W3C tracestate of the event being handled ("" if none).
func TraceState(ctx context.Context) string {
	if ev := EventFromContext(ctx); ev != nil {
		return ev.TraceState
	}
	return ""
}

// Emit records a follow-up event; it is sent to the node in the attempt's
// result, and only if the handler succeeds (a failed attempt is retried and
// would emit again). Attributes the handler left empty are filled in per the
// spec: a fresh id, source = the worker name, correlationid = the incoming
// correlationid (or its id), causationid = the incoming id, the incoming
// traceparent, tracestate and partitionkey, and time = now.
//
// Emit is safe to call from several goroutines of one handler.
//
// It returns ErrNoDelivery outside a handler, or a *DecodeError for an invalid event.
func Emit(ctx context.Context, ev *Event) error {
	d := deliveryFrom(ctx)
	if d == nil {
		return ErrNoDelivery
	}
	out := ev.Clone()
	in := d.ev
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&out.SpecVersion, SpecVersion)
	fill(&out.ID, NewID())
	fill(&out.Source, d.source)
	if in.CorrelationID != "" {
		fill(&out.CorrelationID, in.CorrelationID)
	} else {
		fill(&out.CorrelationID, in.ID)
	}
	fill(&out.CausationID, in.ID)
	fill(&out.TraceParent, in.TraceParent)
	fill(&out.TraceState, in.TraceState)
	fill(&out.PartitionKey, in.PartitionKey)
	fill(&out.Time, time.Now().UTC().Format(time.RFC3339Nano))
	b, err := EncodeEvent(out)
	if err != nil {
		return err
	}
	d.mu.Lock()
	d.emitted = append(d.emitted, b)
	d.size += len(b)
	d.mu.Unlock()
	return nil
}

func (d *delivery) takeEmitted() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := d.emitted
	d.emitted = nil
	return out
}
