package crosswire

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// The span and log vectors (spec/vectors/frames/observability): the SDK's encoders
// write the node's bytes.

type obsVector struct {
	Name  string          `json:"name"`
	Hex   string          `json:"hex"`
	Frame json.RawMessage `json:"frame"`
}

func readObsVector(t *testing.T, name string) (obsVector, []byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(vectorsDir, "frames", "observability", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var v obsVector
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	want, err := hex.DecodeString(v.Hex)
	if err != nil {
		t.Fatal(err)
	}
	return v, want
}

// orderedAttrs reads a JSON object keeping its key order (the wire order):
// integers as Int64, other numbers as Float64.
func orderedAttrs(t *testing.T, raw json.RawMessage) []attribute.KeyValue {
	t.Helper()
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	var out []attribute.KeyValue
	for dec.More() {
		k, _ := dec.Token()
		v, _ := dec.Token()
		key := attribute.Key(k.(string))
		switch x := v.(type) {
		case string:
			out = append(out, key.String(x))
		case bool:
			out = append(out, key.Bool(x))
		case json.Number:
			if i, err := x.Int64(); err == nil {
				out = append(out, key.Int64(i))
			} else {
				f, _ := x.Float64()
				out = append(out, key.Float64(f))
			}
		default:
			t.Fatalf("attr %s: %T", k, v)
		}
	}
	return out
}

func TestResultSpansVector(t *testing.T) {
	v, want := readObsVector(t, "result-spans")
	f, _, err := DecodeFrame(want, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	res := f.(ResultFrame) // spans are not decoded by a worker; encode them from the JSON
	var frame struct {
		Spans []struct {
			TraceID       string          `json:"trace_id"`
			SpanID        string          `json:"span_id"`
			ParentID      string          `json:"parent_id"`
			Name          string          `json:"name"`
			Kind          uint8           `json:"kind"`
			StartNS       uint64          `json:"start_ns"`
			EndNS         uint64          `json:"end_ns"`
			Attrs         json.RawMessage `json:"attrs"`
			Status        uint8           `json:"status"`
			StatusMessage string          `json:"status_message"`
			Events        []struct {
				Name   string          `json:"name"`
				TimeNS uint64          `json:"time_ns"`
				Attrs  json.RawMessage `json:"attrs"`
			} `json:"events"`
		} `json:"spans"`
	}
	if err := json.Unmarshal(v.Frame, &frame); err != nil {
		t.Fatal(err)
	}
	for _, s := range frame.Spans {
		r := SpanRecord{TraceID: s.TraceID, SpanID: s.SpanID, ParentID: s.ParentID, Name: s.Name, Kind: s.Kind,
			StartNS: s.StartNS, EndNS: s.EndNS, Attrs: orderedAttrs(t, s.Attrs), Status: s.Status, StatusMessage: s.StatusMessage}
		for _, e := range s.Events {
			r.Events = append(r.Events, SpanEventRecord{Name: e.Name, TimeNS: e.TimeNS, Attrs: orderedAttrs(t, e.Attrs)})
		}
		res.Spans = append(res.Spans, r)
	}
	if got := EncodeFrame(res); !bytes.Equal(got, want) {
		t.Fatalf("encoded\n got %x\nwant %x", got, want)
	}
}

func TestLogVectors(t *testing.T) {
	for _, name := range []string{"log", "log-minimal"} {
		t.Run(name, func(t *testing.T) {
			v, want := readObsVector(t, name)
			var frame struct {
				Level   string          `json:"level"`
				Msg     string          `json:"msg"`
				TimeNS  int64           `json:"time_ns"`
				ID      *uint64         `json:"id"`
				TraceID string          `json:"trace_id"`
				SpanID  string          `json:"span_id"`
				Attrs   json.RawMessage `json:"attrs"`
			}
			if err := json.Unmarshal(v.Frame, &frame); err != nil {
				t.Fatal(err)
			}
			levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}
			r := slog.NewRecord(time.Unix(0, frame.TimeNS), levels[frame.Level], frame.Msg, 0)
			var sc trace.SpanContext
			if frame.TraceID != "" {
				tid, _ := trace.TraceIDFromHex(frame.TraceID)
				sid, _ := trace.SpanIDFromHex(frame.SpanID)
				sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
			}
			var attrs []slog.Attr
			for _, kv := range orderedAttrs(t, frame.Attrs) {
				attrs = append(attrs, slog.Any(string(kv.Key), kv.Value.AsInterface()))
			}
			if frame.ID == nil {
				// a line outside any delivery: the Go SDK always names the delivery it
				// was written for, so this vector is for decoders only
				t.Skip("the Go SDK writes log frames only for a delivery")
			}
			got := encodeLog(*frame.ID, r, sc, attrs)
			if !bytes.Equal(got, want) {
				t.Fatalf("encoded\n got %x\nwant %x\n%s", got, want, fmt.Sprint(frame))
			}
		})
	}
}
