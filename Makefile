# FungiStor. `make help` lists the targets.
GO        ?= go
BIN       := bin/fungi
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
# iterations, not seconds: a wall-clock -fuzztime can end in a spurious
# "context deadline exceeded" when the deadline hits a minimisation
FUZZTIME  ?= 30000x
# package:target pairs run for FUZZTIME each by `make test` (and `make fuzz`)
FUZZ      := ./store/resp:FuzzReadCommand ./store/resp:FuzzReadReply ./store/zdb:FuzzDecodeRecord ./store/zdb:FuzzDecodeCheckpoint ./fungi:FuzzManifest ./fungi:FuzzManifestLeaves ./fungi:FuzzParseFragmentHeader ./fungi:FuzzDecode ./fungi:FuzzCodecRoundTrip ./consensus:FuzzDecodeEntry ./consensus:FuzzReadSnapshot ./p2p:FuzzFragmentFrame ./p2p:FuzzPeerFromRemoteAddr ./testnet:FuzzParseLatency ./testnet:FuzzParseSetting ./node:FuzzConfigKey ./fungi:FuzzReadCAR ./fungi:FuzzDescribeNode ./consensus:FuzzLinkTarget ./node/mount:FuzzParseMountinfo ./node:FuzzTreePath ./node:FuzzParseRate ./node:FuzzObjectQuery ./node:FuzzCrossSite

TESTNET   ?= testnet-data

.PHONY: help build test test-short fuzz bench check deps run zdb testnet testnet-down clean

help:
	@echo "make build   build $(BIN)"
	@echo "make run     build and run a single-node daemon (repo in \$$FUNGI_PATH, default ~/.fungi; created if missing)"
	@echo "make zdb     build and run a standalone ZDB on :9900 (data in ./zdb-data, ./zdb-index)"
	@echo "make test    install test deps, run every test (race detector) and the fuzz targets briefly"
	@echo "make bench   run the benchmarks and write docs/benchmarks.md"
	@echo "make check   gofmt, go vet, go mod tidy diff"
	@echo "make testnet start a 5-node local testnet in $(TESTNET)/ (make testnet-down stops it)"

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/fungi

run: build
	@[ -f "$${FUNGI_PATH:-$$HOME/.fungi}/config.json" ] || ./$(BIN) init
	./$(BIN) daemon

zdb: build
	./$(BIN) zdb

testnet: build
	./$(BIN) testnet up -n 5 --dir $(TESTNET)
	./$(BIN) testnet status --dir $(TESTNET)

testnet-down:
	./$(BIN) testnet down --dir $(TESTNET)

deps:
	@scripts/deps.sh
	@scripts/kubo.sh

test: deps
	$(GO) test -race -count=1 -timeout 20m ./...
	@for f in $(FUZZ); do \
		pkg=$${f%%:*}; name=$${f##*:}; \
		echo "fuzz $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 2s $$pkg || exit 1; \
	done

test-short:
	$(GO) test -count=1 ./...

fuzz:
	$(MAKE) test FUZZTIME=5m

bench: deps build
	scripts/bench.sh

check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@cp go.mod /tmp/fungi-go.mod.bak; cp go.sum /tmp/fungi-go.sum.bak; \
	$(GO) mod tidy; \
	if ! git diff --quiet -- go.mod go.sum; then echo "go mod tidy changed go.mod/go.sum:"; git diff -- go.mod go.sum; \
		cp /tmp/fungi-go.mod.bak go.mod; cp /tmp/fungi-go.sum.bak go.sum; exit 1; fi
	@echo "check ok"

clean:
	rm -rf bin
