package crosswire_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	crosswire "github.com/crosswire-dev/crosswire/sdk/go"
	"github.com/crosswire-dev/crosswire/sdk/go/crosswiretest"
)

const (
	orderV1 = "urn:crosswire:schema:orders.Order:1"
	orderV2 = "urn:crosswire:schema:orders.Order:2"
)

func TestHelloCarriesTheAcceptedSchemasInTypeOrder(t *testing.T) {
	conn, _ := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		ok := func(context.Context, *crosswire.Event) error { return nil }
		must(t, w.Handle("order.validated", ok, crosswire.Accepts(orderV1), crosswire.Accepts(orderV2, orderV1)))
		must(t, w.Handle("order.*", ok))
		must(t, w.Handle("payment.settled", ok, crosswire.Accepts()))
		return w
	})
	hello := crosswiretest.Expect[crosswire.HelloFrame](t, conn)
	want := map[string][]string{"order.validated": {orderV1, orderV2}, "payment.settled": {}}
	if !reflect.DeepEqual(hello.Schemas, want) {
		t.Errorf("hello schemas %#v, want %#v", hello.Schemas, want)
	}
	// keys follow `types`, before the token: the bytes of frames/valid/hello-schemas.json
	b := string(crosswire.EncodeFrame(hello))
	if i, j := strings.Index(b, "order.validated\x92"), strings.Index(b, "payment.settled\x90"); i < 0 || j < i {
		t.Errorf("schemas not in the order of types: %q", b)
	}
}

func TestHelloWithoutAcceptsHasNoSchemas(t *testing.T) {
	conn, _ := start(t, func(s string) *crosswire.Worker {
		w := newWorker(s)
		must(t, w.Handle("a", func(context.Context, *crosswire.Event) error { return nil }))
		return w
	})
	if hello := crosswiretest.Expect[crosswire.HelloFrame](t, conn); hello.Schemas != nil {
		t.Errorf("hello schemas %#v, want none", hello.Schemas)
	}
}

func TestAcceptsRefusesBadURIs(t *testing.T) {
	ok := func(context.Context, *crosswire.Event) error { return nil }
	many := make([]string, 17)
	for i := range many {
		many[i] = orderV1 + strings.Repeat("0", i)
	}
	for name, opt := range map[string]crosswire.HandleOption{
		"empty":    crosswire.Accepts(""),
		"too long": crosswire.Accepts(strings.Repeat("u", 1025)),
		"17":       crosswire.Accepts(many...),
	} {
		w := newWorker("/tmp/x.sock")
		if err := w.Handle("a", ok, opt); !errors.Is(err, crosswire.ErrInvalidOption) {
			t.Errorf("%s: Handle = %v, want ErrInvalidOption", name, err)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
