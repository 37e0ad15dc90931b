"""The NATS JetStream transport, split by noun; public names are in :mod:`crosswire.jetstream`."""
