package crosswire

import (
	"sync/atomic"
	"time"
)

// atomicTime is a time.Time readable and writable from several goroutines.
type atomicTime struct{ ns atomic.Int64 }

func (t *atomicTime) store(v time.Time) { t.ns.Store(v.UnixNano()) }
func (t *atomicTime) load() time.Time   { return time.Unix(0, t.ns.Load()) }
