// Package crosswire is the Go worker SDK of crosswire: the envelope codec
// (spec/envelope.md), the error envelope (spec/errors.md), the worker-protocol
// frame codec (spec/protocol.md) and a [Worker] that connects to a crosswire
// node over a Unix socket and runs handlers for event types.
//
// The SDK is deliberately thin: retries, backoff, breakers, deduplication and
// dead letters are decided by the node. A handler only says what happened, by
// returning nil, a [Permanent] or [Retryable] error, or any other error (which
// becomes a retryable handler_error).
//
// # Errors
//
// Decoding and validation failures are *[DecodeError] values whose Code is one
// of the spec's closed set; each code has a sentinel usable with errors.Is:
//
//	*DecodeError (envelope / error envelope)
//	    ErrTruncated, ErrMalformed, ErrWrongType, ErrMissingField, ErrInvalidValue,
//	    ErrUnsupportedVersion, ErrInvalidExtensionName, ErrTooLarge
//	*FrameError (worker-protocol frame)
//	    ErrFrameTooLarge, ErrFrameEmpty, ErrFrameMalformed, ErrFrameInvalid
//	    (ErrIncomplete is returned when more bytes are needed: not a failure)
//	*PayloadError (event data that does not decode into the requested type;
//	    errors.Is ErrInvalidPayload; a handler returning it fails with invalid_argument)
//	*ProtocolError (a session with the node ended abnormally; returned by Worker.Run)
//	*HandlerError (what a handler returns to choose the error envelope)
//	ErrInvalidOption, ErrDuplicateHandler, ErrInvalidPattern (NewWorker, Handle, Run)
//
// # Payloads
//
// [Decode] and [Event.Decode] read an event's data into a Go value with the
// same field names (the `msgpack` tags) and the same rules for JSON and
// MessagePack, as spec/payloads.md states for every SDK.
//
// # On NATS
//
// [ToBinary] and [FromBinary] map an event to and from the NATS message that
// carries it: CloudEvents binary content mode (ce-* headers, the data as the
// body), as spec/envelope.md states; FromBinary also reads structured mode and
// the previous crosswire format.
package crosswire
