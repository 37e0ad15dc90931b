// Command natsgo is bench/jetstream.py's client limit: a nats.go jetstream pull
// consumer that decodes each pre-published event's MessagePack payload into a struct,
// acks it, and prints one JSON line once it has handled -n events.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vmihailenco/msgpack/v5"
)

// Payload is bench/jetstream.py's Payload (a msgspec Struct: a map by field name).
type Payload struct {
	OrderID int64  `msgpack:"order_id"`
	SKU     string `msgpack:"sku"`
	Note    string `msgpack:"note"`
}

// Result is the line printed at the end.
type Result struct {
	Handled    int `json:"handled"`
	Unique     int `json:"unique"`
	Duplicates int `json:"duplicates"`
	Failed     int `json:"failed"`
}

func main() {
	url := flag.String("url", nats.DefaultURL, "server URL")
	stream := flag.String("stream", "", "stream name")
	subject := flag.String("subject", "", "filter subject")
	n := flag.Int("n", 0, "events to handle")
	batch := flag.Int("batch", 256, "messages per pull")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after")
	flag.Parse()
	if err := run(*url, *stream, *subject, *n, *batch, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "natsgo:", err)
		os.Exit(1)
	}
}

func run(url, stream, subject string, n, batch int, timeout time.Duration) error {
	if n <= 0 || stream == "" || subject == "" {
		return fmt.Errorf("-stream, -subject and -n > 0 are required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       "bench",
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
	})
	if err != nil {
		return err
	}
	seen := make([]bool, n)
	var (
		mu     sync.Mutex // Consume calls back from one goroutine; main reads at the end
		result Result
	)
	done := make(chan struct{})
	handler := func(p *Payload) { // the no-op handler
		if p.OrderID < 0 || p.OrderID >= int64(n) {
			result.Failed++
			return
		}
		if seen[p.OrderID] {
			result.Duplicates++
		} else {
			seen[p.OrderID] = true
			result.Unique++
		}
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		mu.Lock()
		defer mu.Unlock()
		var p Payload
		if err := msgpack.Unmarshal(msg.Data(), &p); err != nil {
			result.Failed++
		} else {
			handler(&p)
		}
		if err := msg.Ack(); err != nil {
			result.Failed++
		}
		result.Handled++
		if result.Handled == n {
			close(done)
		}
	}, jetstream.PullMaxMessages(batch))
	if err != nil {
		return err
	}
	select {
	case <-done:
	case <-ctx.Done():
		cc.Stop()
		mu.Lock()
		defer mu.Unlock()
		return fmt.Errorf("handled %d of %d events in %s", result.Handled, n, timeout)
	}
	cc.Stop()
	if err := nc.FlushWithContext(ctx); err != nil { // every ack written
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	return json.NewEncoder(os.Stdout).Encode(result)
}
