package crosswire

import (
	"bytes"
	"testing"
)

// Maps of any value type encode with sorted keys, so equal values give equal bytes
// (Go's map order is random; the msgpack library sorts only some map types).
func TestMarshalMsgpackSortsEveryMap(t *testing.T) {
	type inner struct {
		Scores map[string]float64 `msgpack:"scores"`
	}
	type outer struct {
		ByName map[string]inner `msgpack:"byName"`
		Counts map[string]int   `msgpack:"counts"`
	}
	v := outer{
		ByName: map[string]inner{"zed": {Scores: map[string]float64{"b": 2, "a": 1, "c": 3}}, "amy": {}},
		Counts: map[string]int{"y": 1, "x": 2, "w": 3, "v": 4},
	}
	first, err := MarshalMsgpack(v)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		again, err := MarshalMsgpack(v)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(first, again) {
			t.Fatalf("run %d encoded differently:\n%x\n%x", i, first, again)
		}
	}
	a, b, c := bytes.Index(first, []byte("\xa1a")), bytes.Index(first, []byte("\xa1b")), bytes.Index(first, []byte("\xa1c"))
	if a < 0 || !(a < b && b < c) {
		t.Fatalf("keys of scores not in order (a=%d b=%d c=%d): %x", a, b, c, first)
	}
}
