// Command go-pricing is the order pipeline's pricing worker
// (examples/orders/README.md): it handles order.validated and emits
// order.priced with the subtotal, tax and total in cents. Its payload types,
// Order and Priced, are generated from the app's schema (payloads.go: make codegen).
//
// The node spawns it with CROSSWIRE_SOCKET set; SIGTERM drains it.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"

	crosswire "github.com/crosswire-dev/crosswire/sdk/go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
)

// taxRate is the tax in percent for a country.
func taxRate(country string) int64 {
	switch country {
	case "DE":
		return 19
	case "FR":
		return 20
	case "US":
		return 7
	}
	return 10
}

// price computes the totals; tax is rounded down (integer division).
func price(o Order) (Priced, error) {
	if o.Qty <= 0 {
		return Priced{}, fmt.Errorf("order %d: qty must be > 0, got %d", o.OrderID, o.Qty)
	}
	if o.UnitPriceCents < 0 {
		return Priced{}, fmt.Errorf("order %d: unit_price_cents must be ≥ 0, got %d", o.OrderID, o.UnitPriceCents)
	}
	subtotal := o.Qty * o.UnitPriceCents
	tax := subtotal * taxRate(o.Country) / 100
	return Priced{
		OrderID:       o.OrderID,
		SubtotalCents: subtotal,
		TaxCents:      tax,
		TotalCents:    subtotal + tax,
		Country:       o.Country,
	}, nil
}

func handleValidated(ctx context.Context, ev *crosswire.Event) error {
	o, err := crosswire.Decode[Order](ev)
	if err != nil {
		return err // a *PayloadError: invalid_argument, not retried
	}
	// A span of the handler's own, and a log line: both reach the node (no exporter here).
	spanCtx, span := otel.Tracer("go-pricing").Start(ctx, "compute price")
	p, err := price(o)
	span.SetAttributes(attribute.String("country", o.Country), attribute.Int64("total_cents", p.TotalCents))
	slog.InfoContext(spanCtx, "priced order", "order_id", o.OrderID, "total_cents", p.TotalCents)
	span.End()
	if err != nil {
		return crosswire.Permanent(crosswire.CodeInvalidArgument, err)
	}
	out, err := crosswire.NewEvent("order.priced", p)
	if err != nil {
		return crosswire.Permanent(crosswire.CodeInternal, err)
	}
	out.Subject, out.DataSchema = ev.Subject, PricedDataSchema
	return crosswire.Emit(ctx, out)
}

func newWorker(opts ...crosswire.Option) (*crosswire.Worker, error) {
	w, err := crosswire.NewWorker("pricing", append([]crosswire.Option{crosswire.WithMaxInFlight(64)}, opts...)...)
	if err != nil {
		return nil, err
	}
	// built against orders.Order v1: the node refuses it events of any other version
	if err := w.Handle("order.validated", handleValidated, crosswire.Accepts(OrderDataSchema)); err != nil {
		return nil, err
	}
	return w, nil
}

func main() {
	w, err := newWorker()
	if err == nil {
		err = w.Run(context.Background())
	}
	if err != nil {
		var pe *crosswire.ProtocolError
		if errors.As(err, &pe) {
			log.SetFlags(0)
		}
		log.Fatal(err)
	}
}
