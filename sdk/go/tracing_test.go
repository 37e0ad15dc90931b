package crosswire

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

func TestAttemptSpanParentsHandlerSpansAndShipsThem(t *testing.T) {
	ev := &Event{ID: "e-1", Type: "order.validated", Attempt: 2,
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	ctx, attempt := startAttempt(context.Background(), ev, "pricing")
	if attempt == nil {
		t.Fatal("no attempt span for an event with a traceparent")
	}
	_, child := otel.Tracer("test").Start(ctx, "compute tax")
	child.SetAttributes(attribute.String("country", "DE"), attribute.Int("rate", 19))
	child.AddEvent("looked up rate")
	child.End()
	spans := attempt.end(&ErrorInfo{Code: CodeUnavailable, Message: "busy"})
	if len(spans) != 2 {
		t.Fatalf("got %d spans, want 2", len(spans))
	}
	handle, tax := spans[0], spans[1]
	if handle.Name != "handle order.validated" || handle.ParentID != "00f067aa0ba902b7" {
		t.Fatalf("attempt span %+v", handle)
	}
	if handle.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || tax.TraceID != handle.TraceID {
		t.Fatalf("trace ids %s %s", handle.TraceID, tax.TraceID)
	}
	if tax.ParentID != handle.SpanID || tax.Name != "compute tax" || len(tax.Events) != 1 {
		t.Fatalf("handler span %+v", tax)
	}
	if handle.Status != 2 || handle.StatusMessage != "busy" {
		t.Fatalf("attempt status %d %q", handle.Status, handle.StatusMessage)
	}

	var buf bytes.Buffer
	encodeSpans(msgpack.NewEncoder(&buf), spans)
	var decoded []map[string]any
	if err := msgpack.Unmarshal(buf.Bytes(), &decoded); err != nil {
		t.Fatal(err)
	}
	attrs := decoded[0]["attrs"].(map[string]any)
	if attrs["crosswire.worker.name"] != "pricing" || attrs["crosswire.worker.runtime"] != "go" || attrs["error.type"] != "unavailable" {
		t.Fatalf("attempt attrs %v", attrs)
	}
	if _, ok := attrs["process.pid"]; !ok {
		t.Fatalf("no pid in %v", attrs)
	}
	if decoded[1]["parent_id"] != handle.SpanID || decoded[1]["attrs"].(map[string]any)["country"] != "DE" {
		t.Fatalf("handler span on the wire %v", decoded[1])
	}
}

func TestNoTraceparentNoAttemptSpan(t *testing.T) {
	ctx := context.Background()
	got, attempt := startAttempt(ctx, &Event{ID: "e", Type: "x"}, "w")
	if attempt != nil || got != ctx || attempt.end(nil) != nil {
		t.Fatal("an untraced event got an attempt span")
	}
}

func TestLogFrameCarriesDeliveryAndSpan(t *testing.T) {
	ev := &Event{ID: "e-2", Type: "t", TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	ctx, attempt := startAttempt(context.Background(), ev, "w")
	defer attempt.end(nil)
	r := slog.NewRecord(time.Unix(0, 42), slog.LevelWarn, "priced", 0)
	r.AddAttrs(slog.Int("total", 2975), slog.String("country", "DE"))
	b := encodeLog(7, r, trace.SpanContextFromContext(ctx), []slog.Attr{slog.Int("total", 2975)})
	f, _, err := DecodeFrame(b, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if f.FrameType() != "log" {
		t.Fatalf("frame type %q", f.FrameType())
	}
	var body map[string]any
	if err := msgpack.Unmarshal(b[4:], &body); err != nil {
		t.Fatal(err)
	}
	if body["level"] != "warn" || body["msg"] != "priced" || body["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("log frame %v", body)
	}
	if body["span_id"] == "00f067aa0ba902b7" || body["span_id"] == "" {
		t.Fatalf("span id should be the attempt span's, got %v", body["span_id"])
	}
}
