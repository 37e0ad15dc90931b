# crosswire — the two commands: `make demo` and `make test`.
# Everything they need is installed here, from the package registries: nothing by hand.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
GO     ?= go
CARGO  ?= cargo

GO_TESTWORKER   := sdk/go/bin/crosswire-testworker
GO_PRICING      := examples/orders/go-pricing/bin/go-pricing
RUST_TARGET     := $(CURDIR)/sdk/rust/target
RUST_TESTWORKER := $(RUST_TARGET)/release/examples/testworker
RUST_FRAUD      := $(RUST_TARGET)/release/rust-fraud

STATICCHECK := $(CURDIR)/.tools/staticcheck

export CROSSWIRE_GO_TESTWORKER   := $(CURDIR)/$(GO_TESTWORKER)
export CROSSWIRE_RUST_TESTWORKER := $(RUST_TESTWORKER)

.PHONY: help demo test test-python test-go test-rust lint build build-go build-rust soak bench vectors codegen clean

help:
	@echo "make demo   - build the Go and Rust workers and run the three-runtime order pipeline"
	@echo "make test   - lint and run every suite: Python, Go, Rust, spec vectors, conformance, end-to-end"
	@echo "make soak   - long fault loops and stress runs (not part of make test)"
	@echo "make bench  - run the benchmarks (quick mode) and print their JSON lines"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,bench,harness,otlp]'
	touch $(STAMP)

build-go:
	cd sdk/go && $(GO) build -o bin/crosswire-testworker ./cmd/crosswire-testworker
	cd examples/orders/go-pricing && $(GO) build -o bin/go-pricing .

build-rust:
	cd sdk/rust && $(CARGO) build --release --quiet --example testworker
	cd examples/orders/rust-fraud && CARGO_TARGET_DIR=$(RUST_TARGET) $(CARGO) build --release --quiet

build: $(STAMP) build-go build-rust

demo: build
	$(PY) examples/orders/demo.py

$(STATICCHECK):
	GOBIN=$(CURDIR)/.tools $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint: $(STAMP) $(STATICCHECK)
	$(VENV)/bin/ruff check src tests bench examples tools
	$(VENV)/bin/ruff format --check src tests bench examples tools
	$(VENV)/bin/mypy
	cd sdk/go && test -z "$$(gofmt -l .)" && $(GO) vet ./... && $(STATICCHECK) ./...
	cd examples/orders/go-pricing && $(GO) vet ./... && $(STATICCHECK) ./...
	cd bench/natsgo && test -z "$$(gofmt -l .)" && $(GO) vet ./... && $(STATICCHECK) ./...
	cd sdk/rust && $(CARGO) fmt --check && $(CARGO) clippy --quiet --all-targets -- -D warnings
	cd examples/orders/rust-fraud && $(CARGO) fmt --check && \
		CARGO_TARGET_DIR=$(RUST_TARGET) $(CARGO) clippy --quiet --all-targets -- -D warnings

test-go:
	cd sdk/go && $(GO) test -count=1 ./...
	cd examples/orders/go-pricing && $(GO) test -count=1 ./...

test-rust:
	cd sdk/rust && $(CARGO) test --quiet
	cd examples/orders/rust-fraud && CARGO_TARGET_DIR=$(RUST_TARGET) $(CARGO) test --quiet

test-python: $(STAMP)
	$(VENV)/bin/pytest -q

test: build lint test-go test-rust test-python

soak: build
	$(VENV)/bin/pytest -q -m soak -p no:cacheprovider -o addopts=""

bench: build
	$(PY) bench/envelope.py --quick
	$(PY) bench/dispatch.py --quick
	$(PY) bench/boundary.py --quick
	$(PY) bench/jetstream.py --quick
	$(PY) bench/harness.py --quick

vectors: $(STAMP)
	$(PY) tools/gen_vectors.py
	$(PY) tools/gen_header_vectors.py

# The order demo's contract, and the generated types its Go and Rust workers build with
# (tests/schema/test_demo_schema.py fails when any of them is stale).
codegen: $(STAMP)
	$(VENV)/bin/crosswire schema export examples.orders.app:app -o examples/orders/schema/asyncapi.json
	$(VENV)/bin/crosswire codegen --lang go --app examples.orders.app:app -o examples/orders/go-pricing --package main
	$(VENV)/bin/crosswire codegen --lang rust --app examples.orders.app:app -o examples/orders/rust-fraud/src

clean:
	rm -rf $(VENV) .tools sdk/go/bin examples/orders/go-pricing/bin sdk/rust/target .crosswire
