# userhook: receiver for identity-provider user events.
GO        ?= go
BIN       ?= bin/userhook
GOFLAGS   ?=
export CGO_ENABLED = 1

.PHONY: run build test test-crash test-integration bench bench-scaleout bench-tools lint fmt vet clean

## run: serve on the embedded default (SQLite file in ./data, in-process Watermill) with --dev credentials
run: build
	./$(BIN) serve --dev

## build: compile the binary into bin/
build:
	$(GO) build -o $(BIN) ./cmd/userhook

## test: every test; integration tests need USERHOOK_TEST_POSTGRES / USERHOOK_TEST_NATS and skip with a message without them
test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

## test-crash: the kill -9 test against the real binary, with more kill/restart rounds than make test runs
test-crash:
	USERHOOK_CRASH_ROUNDS=5 $(GO) test -count=1 -run TestCrashLosesNoAcknowledgedEvent -v ./cmd/userhook

## test-integration: only the tests that talk to PostgreSQL and NATS (defaults to this machine's services)
test-integration:
	USERHOOK_TEST_POSTGRES=$${USERHOOK_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable} \
	USERHOOK_TEST_NATS=$${USERHOOK_TEST_NATS:-nats://127.0.0.1:4222} \
	$(GO) test -count=1 -timeout 15m -run Integration ./...

# The scale-out part of the bench runs on these servers (this machine's by default); it is skipped, with a
# message, when one cannot be reached.
BENCH_SERVERS = USERHOOK_BENCH_POSTGRES=$${USERHOOK_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable} \
	USERHOOK_BENCH_NATS=$${USERHOOK_BENCH_NATS:-nats://127.0.0.1:4222}

## bench: the load benchmark against the real binary (C0, C1, the SQLite ceilings C2 and C3, userhook embedded; the replay; the memory after 1,000,000 users; the scale-out part on PostgreSQL + NATS JetStream with C2-PG; wrk installed if missing), then Go benchmarks
bench: build bench-tools
	$(BENCH_SERVERS) ./bin/userhook-bench --bin $(BIN) $(BENCHFLAGS)
	$(GO) test -run '^$$' -bench . -benchmem -count 3 ./eventstore/... ./aggregate/... ./transport/... | tee bin/bench-go.txt

## bench-scaleout: the scale-out part of the bench only (C2-PG, userhook on PostgreSQL + JetStream, one and two instances, embedded beside)
bench-scaleout: build bench-tools
	$(BENCH_SERVERS) ./bin/userhook-bench --bin $(BIN) --only scaleout $(BENCHFLAGS)

bench-tools:
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) || (echo "install wrk" && exit 1)
	$(GO) build -o bin/userhook-bench ./cmd/userhook-bench

## lint: vet plus a gofmt check
lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

## fmt: format the code
fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin data
