package crosswire

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

type wildcardVectors struct {
	Matches []struct {
		Pattern, Subject, Description string
		Matches                       bool
	} `json:"matches"`
	InvalidPatterns []struct {
		Pattern, Description string
	} `json:"invalid_patterns"`
	Routing []struct {
		Patterns    []string `json:"patterns"`
		Subject     string   `json:"subject"`
		Handler     *string  `json:"handler"`
		Description string   `json:"description"`
	} `json:"routing"`
}

func loadWildcards(t *testing.T) wildcardVectors {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(vectorsDir, "wildcards", "subjects.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v wildcardVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Matches) < 25 || len(v.InvalidPatterns) < 8 || len(v.Routing) < 5 {
		t.Fatalf("too few wildcard vectors: %d/%d/%d", len(v.Matches), len(v.InvalidPatterns), len(v.Routing))
	}
	return v
}

// patternWorker registers one handler per pattern; each returns its pattern as
// an error, so a routed call names the handler that was picked.
func patternWorker(t *testing.T, patterns ...string) *Worker {
	t.Helper()
	w, err := NewWorker("vectors", WithSocket("unused"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range patterns {
		if err := w.Handle(p, func(context.Context, *Event) error { return errors.New(p) }); err != nil {
			t.Fatalf("Handle(%q): %v", p, err)
		}
	}
	return w
}

func routedTo(w *Worker, subject string) *string {
	h := w.handlerFor(subject)
	if h == nil {
		return nil
	}
	name := h(context.Background(), nil).Error()
	return &name
}

func TestWildcardMatchVectors(t *testing.T) {
	for _, c := range loadWildcards(t).Matches {
		if got := matchType(c.Pattern, c.Subject); got != c.Matches {
			t.Errorf("matchType(%q, %q) = %v, want %v (%s)", c.Pattern, c.Subject, got, c.Matches, c.Description)
		}
		w := patternWorker(t, c.Pattern)
		if got := routedTo(w, c.Subject) != nil; got != c.Matches {
			t.Errorf("worker routing %q → %q = %v, want %v (%s)", c.Subject, c.Pattern, got, c.Matches, c.Description)
		}
	}
}

func TestWildcardInvalidPatternVectors(t *testing.T) {
	for _, c := range loadWildcards(t).InvalidPatterns {
		w := patternWorker(t)
		err := w.Handle(c.Pattern, func(context.Context, *Event) error { return nil })
		if !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("Handle(%q) = %v, want ErrInvalidPattern (%s)", c.Pattern, err, c.Description)
		}
	}
}

func TestWildcardRoutingVectors(t *testing.T) {
	for _, c := range loadWildcards(t).Routing {
		got := routedTo(patternWorker(t, c.Patterns...), c.Subject)
		if (got == nil) != (c.Handler == nil) || (got != nil && *got != *c.Handler) {
			t.Errorf("%v routes %q to %v, want %v (%s)", c.Patterns, c.Subject, deref2(got), deref2(c.Handler), c.Description)
		}
	}
}

func deref2(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}
