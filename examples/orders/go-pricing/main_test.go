package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	crosswire "github.com/crosswire-dev/crosswire/sdk/go"
	"github.com/crosswire-dev/crosswire/sdk/go/crosswiretest"
)

func TestPrice(t *testing.T) {
	cases := []struct {
		country             string
		qty, unit           int64
		sub, tax, totalWant int64
	}{
		{"DE", 3, 999, 2997, 569, 3566}, // 2997*19/100 = 569.43 → 569
		{"FR", 1, 1000, 1000, 200, 1200},
		{"US", 2, 1234, 2468, 172, 2640},
		{"JP", 5, 100, 500, 50, 550},
		{"", 1, 1, 1, 0, 1},
	}
	for _, c := range cases {
		p, err := price(Order{OrderID: 1, Qty: c.qty, UnitPriceCents: c.unit, Country: c.country})
		if err != nil {
			t.Fatal(err)
		}
		if p.SubtotalCents != c.sub || p.TaxCents != c.tax || p.TotalCents != c.totalWant || p.Country != c.country {
			t.Errorf("%s: %+v", c.country, p)
		}
	}
	if _, err := price(Order{Qty: 0, UnitPriceCents: 1}); err == nil {
		t.Error("qty 0 accepted")
	}
}

func TestWorkerEmitsOrderPriced(t *testing.T) {
	node := crosswiretest.Listen(t)
	w, err := newWorker(crosswire.WithSocket(node.Path), crosswire.WithSignals(false),
		crosswire.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = w.Run(ctx) }()
	conn := node.Accept(t)
	hello := conn.Handshake(t, crosswiretest.Welcome())
	if hello.Name != "pricing" || len(hello.Types) != 1 || hello.Types[0] != "order.validated" {
		t.Fatalf("hello %+v", hello)
	}
	in := crosswire.MustNewEvent("order.validated", Order{OrderID: 42, Customer: "c", SKU: "A-1", Qty: 3, UnitPriceCents: 999, Country: "DE"})
	in.Source, in.PartitionKey = "/orders", "order-42"
	conn.Deliver(t, 1, in, 0)
	r := conn.Result(t)
	if !r.OK || len(r.Emitted) != 1 {
		t.Fatalf("result %+v", r)
	}
	out, err := crosswire.DecodeEvent(r.Emitted[0])
	if err != nil {
		t.Fatal(err)
	}
	var p Priced
	if err := out.Decode(&p); err != nil {
		t.Fatal(err)
	}
	if out.Type != "order.priced" || out.PartitionKey != "order-42" || out.CausationID != in.ID ||
		p != (Priced{OrderID: 42, SubtotalCents: 2997, TaxCents: 569, TotalCents: 3566, Country: "DE"}) {
		t.Errorf("emitted %+v / %+v", out, p)
	}
	bad := crosswire.MustNewEvent("order.validated", Order{OrderID: 7, Qty: 0})
	bad.Source = "/orders"
	conn.Deliver(t, 2, bad, 0)
	if r := conn.Result(t); r.OK || r.Error.Code != crosswire.CodeInvalidArgument || r.Error.Retryable {
		t.Errorf("bad order result %+v", r)
	}
}
