module github.com/crosswire-dev/crosswire/examples/orders/go-pricing

go 1.26

require github.com/crosswire-dev/crosswire/sdk/go v0.0.0

require (
	github.com/vmihailenco/msgpack/v5 v5.4.1 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
)

replace github.com/crosswire-dev/crosswire/sdk/go => ../../../sdk/go
