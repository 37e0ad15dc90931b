// Command cloudevents-go speaks to crosswire's stream with the official CloudEvents Go
// SDK and its NATS JetStream binding, as a team's existing Go service would:
//
//	cloudevents-go send URL STREAM SUBJECT      publish one CloudEvent (binary mode)
//	cloudevents-go receive URL STREAM SUBJECT   print the first CloudEvent as JSON
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	cejsm "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	cloudevents "github.com/cloudevents/sdk-go/v2"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: cloudevents-go send|receive URL STREAM SUBJECT")
		os.Exit(2)
	}
	mode, url, stream, subject := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var err error
	switch mode {
	case "send":
		err = send(ctx, url, stream, subject)
	case "receive":
		err = receive(ctx, url, stream, subject)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cloudevents-go:", err)
		os.Exit(1)
	}
}

func send(ctx context.Context, url, stream, subject string) error {
	sender, err := cejsm.NewSender(url, stream, subject, nil, nil)
	if err != nil {
		return err
	}
	defer sender.Close(ctx)
	client, err := cloudevents.NewClient(sender)
	if err != nil {
		return err
	}
	event := cloudevents.NewEvent()
	event.SetID("go-sdk-1")
	event.SetSource("/go-service")
	event.SetType("order.created")
	event.SetSubject("order/7")
	event.SetTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	event.SetExtension("partitionkey", "order-7")
	event.SetExtension("correlationid", "checkout-7")
	event.SetExtension("region", "eu")
	if err := event.SetData(cloudevents.ApplicationJSON, map[string]any{"order_id": 7, "sku": "A-1"}); err != nil {
		return err
	}
	if result := client.Send(ctx, event); cloudevents.IsUndelivered(result) {
		return fmt.Errorf("send: %w", result)
	}
	return nil
}

func receive(ctx context.Context, url, stream, subject string) error {
	consumer, err := cejsm.NewConsumer(url, stream, subject, nil, nil, nil)
	if err != nil {
		return err
	}
	defer consumer.Close(ctx)
	client, err := cloudevents.NewClient(consumer)
	if err != nil {
		return err
	}
	got := make(chan map[string]any, 1)
	recvCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		_ = client.StartReceiver(recvCtx, func(event cloudevents.Event) {
			var data map[string]any
			dataErr := event.DataAs(&data)
			out := map[string]any{
				"id": event.ID(), "source": event.Source(), "type": event.Type(), "subject": event.Subject(),
				"datacontenttype": event.DataContentType(), "extensions": event.Extensions(), "data": data,
			}
			if dataErr != nil {
				out["data_error"] = dataErr.Error()
			}
			select {
			case got <- out:
			default:
			}
		})
	}()
	select {
	case out := <-got:
		return json.NewEncoder(os.Stdout).Encode(out)
	case <-ctx.Done():
		return fmt.Errorf("no event within the deadline")
	}
}
