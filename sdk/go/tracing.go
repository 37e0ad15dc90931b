package crosswire

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Spans from handler code (spec/protocol.md, "Spans and logs").
//
// Each attempt runs inside a span "handle <type>" whose parent is the delivered
// traceparent (the node's CONSUMER span); the handler's ctx carries it, so handler
// code creates child spans with go.opentelemetry.io/otel as usual:
//
//	ctx, span := otel.Tracer("pricing").Start(ctx, "compute tax")
//	defer span.End()
//
// A span processor collects every span of the attempt that ends before the handler
// returns, and the SDK ships them in the result; the node exports them with its own
// exporter, so a worker needs no exporter configuration. The SDK installs an
// OpenTelemetry SDK tracer provider as the global one when none is set (or adds its
// processor to the one the program set).

// MaxSpans bounds the spans one result carries; MaxSpanEvents the events per span.
const (
	MaxSpans      = 256
	MaxSpanEvents = 64
)

// SpanRecord is one finished span as shipped in result.spans.
type SpanRecord struct {
	TraceID       string // 32 lower-case hex
	SpanID        string // 16 lower-case hex
	ParentID      string // 16 hex; "" = the span the delivered traceparent names
	Name          string
	Kind          uint8 // 0 internal, 1 server, 2 client, 3 producer, 4 consumer
	StartNS       uint64
	EndNS         uint64
	Attrs         []attribute.KeyValue
	Events        []SpanEventRecord
	Status        uint8 // 0 unset, 1 ok, 2 error
	StatusMessage string
}

// SpanEventRecord is one event of a SpanRecord.
type SpanEventRecord struct {
	Name   string
	TimeNS uint64
	Attrs  []attribute.KeyValue
}

type bucketKey struct{}

// spanBucket holds the finished spans of one attempt.
type spanBucket struct {
	mu    sync.Mutex
	spans []SpanRecord
}

func (b *spanBucket) add(r SpanRecord) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.spans) < MaxSpans {
		b.spans = append(b.spans, r)
	}
}

// spanCollector is the span processor: a span started under an attempt's context
// belongs to that attempt's bucket.
type spanCollector struct {
	mu   sync.Mutex
	open map[trace.SpanID]*spanBucket
}

func (c *spanCollector) OnStart(parent context.Context, s sdktrace.ReadWriteSpan) {
	b, _ := parent.Value(bucketKey{}).(*spanBucket)
	if b == nil {
		return
	}
	c.mu.Lock()
	c.open[s.SpanContext().SpanID()] = b
	c.mu.Unlock()
}

func (c *spanCollector) OnEnd(s sdktrace.ReadOnlySpan) {
	id := s.SpanContext().SpanID()
	c.mu.Lock()
	b := c.open[id]
	delete(c.open, id)
	c.mu.Unlock()
	if b != nil {
		b.add(recordOf(s))
	}
}

func (c *spanCollector) Shutdown(context.Context) error   { return nil }
func (c *spanCollector) ForceFlush(context.Context) error { return nil }

var tracing struct {
	once   sync.Once
	tracer trace.Tracer
}

func workerTracer() trace.Tracer {
	tracing.once.Do(func() {
		col := &spanCollector{open: map[trace.SpanID]*spanBucket{}}
		tp, ok := otel.GetTracerProvider().(*sdktrace.TracerProvider)
		if ok {
			tp.RegisterSpanProcessor(col)
		} else {
			tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(col))
			otel.SetTracerProvider(tp)
		}
		tracing.tracer = tp.Tracer("crosswire.worker.go")
	})
	return tracing.tracer
}

// attemptSpan is the worker-side span of one attempt.
type attemptSpan struct {
	span   trace.Span
	bucket *spanBucket
}

// startAttempt starts the attempt span under the event's traceparent; without
// one the attempt is not traced (ctx is returned as is).
func startAttempt(ctx context.Context, ev *Event, worker string) (context.Context, *attemptSpan) {
	if ev.TraceParent == "" {
		return ctx, nil
	}
	carrier := propagation.MapCarrier{"traceparent": ev.TraceParent}
	if ev.TraceState != "" {
		carrier["tracestate"] = ev.TraceState
	}
	ctx = propagation.TraceContext{}.Extract(ctx, carrier)
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx, nil
	}
	b := &spanBucket{}
	ctx = context.WithValue(ctx, bucketKey{}, b)
	ctx, span := workerTracer().Start(ctx, "handle "+ev.Type, trace.WithAttributes(
		attribute.String("crosswire.worker.name", worker),
		attribute.String("crosswire.worker.runtime", Runtime),
		attribute.Int("process.pid", os.Getpid()),
		attribute.Int64("crosswire.attempt", int64(ev.Attempt)),
		attribute.String("messaging.message.id", ev.ID),
	))
	return ctx, &attemptSpan{span: span, bucket: b}
}

// end ends the attempt span (an error status when the attempt failed) and
// returns the attempt's spans, the attempt span first.
func (a *attemptSpan) end(info *ErrorInfo) []SpanRecord {
	if a == nil {
		return nil
	}
	if info != nil {
		a.span.SetAttributes(attribute.String("error.type", string(info.Code)))
		a.span.SetStatus(codes.Error, info.Message)
	}
	a.span.End()
	a.bucket.mu.Lock()
	defer a.bucket.mu.Unlock()
	spans := a.bucket.spans
	a.bucket.spans = nil
	if n := len(spans); n > 1 { // the attempt span ends last: put it first
		spans = append([]SpanRecord{spans[n-1]}, spans[:n-1]...)
	}
	return spans
}

var spanKinds = map[trace.SpanKind]uint8{
	trace.SpanKindServer: 1, trace.SpanKindClient: 2, trace.SpanKindProducer: 3, trace.SpanKindConsumer: 4,
}

func recordOf(s sdktrace.ReadOnlySpan) SpanRecord {
	sc := s.SpanContext()
	r := SpanRecord{
		TraceID: sc.TraceID().String(),
		SpanID:  sc.SpanID().String(),
		Name:    s.Name(),
		Kind:    spanKinds[s.SpanKind()],
		StartNS: uint64(max(s.StartTime().UnixNano(), 0)),
		EndNS:   uint64(max(s.EndTime().UnixNano(), 0)),
		Attrs:   s.Attributes(),
	}
	if p := s.Parent(); p.IsValid() {
		r.ParentID = p.SpanID().String()
	}
	for i, e := range s.Events() {
		if i >= MaxSpanEvents {
			break
		}
		r.Events = append(r.Events, SpanEventRecord{Name: e.Name, TimeNS: uint64(max(e.Time.UnixNano(), 0)), Attrs: e.Attributes})
	}
	switch st := s.Status(); st.Code {
	case codes.Error:
		r.Status, r.StatusMessage = 2, st.Description
	case codes.Ok:
		r.Status = 1
	}
	return r
}

// encodeSpans writes the value of result.spans (keys in spec order, absent
// optional fields omitted).
func encodeSpans(enc *msgpack.Encoder, spans []SpanRecord) {
	_ = enc.EncodeArrayLen(len(spans))
	for _, r := range spans {
		n := 5 // trace_id, span_id, name, start_ns, end_ns
		for _, present := range []bool{r.ParentID != "", r.Kind != 0, len(r.Attrs) > 0, len(r.Events) > 0, r.Status != 0, r.StatusMessage != ""} {
			if present {
				n++
			}
		}
		_ = enc.EncodeMapLen(n)
		str := func(k, v string) { _ = enc.EncodeString(k); _ = enc.EncodeString(v) }
		uint := func(k string, v uint64) { _ = enc.EncodeString(k); _ = enc.EncodeUint(v) }
		str("trace_id", r.TraceID)
		str("span_id", r.SpanID)
		if r.ParentID != "" {
			str("parent_id", r.ParentID)
		}
		str("name", r.Name)
		if r.Kind != 0 {
			uint("kind", uint64(r.Kind))
		}
		uint("start_ns", r.StartNS)
		uint("end_ns", r.EndNS)
		if len(r.Attrs) > 0 {
			_ = enc.EncodeString("attrs")
			encodeAttrs(enc, r.Attrs)
		}
		if len(r.Events) > 0 {
			_ = enc.EncodeString("events")
			_ = enc.EncodeArrayLen(len(r.Events))
			for _, e := range r.Events {
				m := 2
				if len(e.Attrs) > 0 {
					m++
				}
				_ = enc.EncodeMapLen(m)
				str("name", e.Name)
				uint("time_ns", e.TimeNS)
				if len(e.Attrs) > 0 {
					_ = enc.EncodeString("attrs")
					encodeAttrs(enc, e.Attrs)
				}
			}
		}
		if r.Status != 0 {
			uint("status", uint64(r.Status))
		}
		if r.StatusMessage != "" {
			str("status_message", r.StatusMessage)
		}
	}
}

// encodeAttrs writes attributes as a map of str, int, float or bool (slices as text).
func encodeAttrs(enc *msgpack.Encoder, attrs []attribute.KeyValue) {
	_ = enc.EncodeMapLen(len(attrs))
	for _, kv := range attrs {
		_ = enc.EncodeString(string(kv.Key))
		switch kv.Value.Type() {
		case attribute.BOOL:
			_ = enc.EncodeBool(kv.Value.AsBool())
		case attribute.INT64:
			_ = enc.EncodeInt(kv.Value.AsInt64())
		case attribute.FLOAT64:
			_ = enc.EncodeFloat64(kv.Value.AsFloat64())
		case attribute.STRING:
			_ = enc.EncodeString(kv.Value.AsString())
		default:
			_ = enc.EncodeString(fmt.Sprint(kv.Value.AsInterface()))
		}
	}
}
