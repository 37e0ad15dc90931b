package crosswire

import (
	"reflect"
	"sync"

	"github.com/vmihailenco/msgpack/v5"
)

// The msgpack library sorts the keys of map[string]any, map[string]string and
// map[string]bool only; any other map (map[string]float64, a map field of a
// generated struct) comes out in Go's random map order. MarshalMsgpack promises
// equal bytes for equal values, so a value whose type holds such a map is encoded,
// read back as generic values (whose maps the library does sort) and encoded again.

var mapTypes sync.Map // reflect.Type -> bool: the type holds a map somewhere

func holdsMap(t reflect.Type) bool {
	if t == nil {
		return false
	}
	if known, ok := mapTypes.Load(t); ok {
		return known.(bool)
	}
	mapTypes.Store(t, false) // a recursive type reaches itself: assume no map meanwhile
	found := false
	switch t.Kind() {
	case reflect.Map:
		found = true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		found = holdsMap(t.Elem())
	case reflect.Struct:
		for i := 0; i < t.NumField() && !found; i++ {
			found = holdsMap(t.Field(i).Type)
		}
	case reflect.Interface:
		found = true // whatever it holds may be a map
	}
	mapTypes.Store(t, found)
	return found
}

// canonical re-encodes data (the encoding of a value whose type holds a map) with
// every map's keys sorted.
func canonical(data []byte, encode func(any) ([]byte, error)) ([]byte, error) {
	var generic any
	if err := msgpack.Unmarshal(data, &generic); err != nil {
		return nil, err
	}
	return encode(generic)
}
