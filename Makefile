# moat: build, test, demo. Targets that touch the kernel run only inside
# network namespaces they create.
GO        ?= go
BIN       := bin/moat
export CGO_ENABLED := 0
GOFLAGS_BUILD := -trimpath -ldflags='-s -w'

.PHONY: all build test test-unit test-kernel vet fuzz demo bench clean

all: build

build:
	$(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/moat

vet:
	$(GO) vet ./...

# Unit tests, then the kernel and end-to-end tests (root; in CI a skip there fails).
test: build vet test-unit
	MOAT_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -p 1 -timeout 30m ./e2e/...

# Everything but e2e: unit tests, goldens, and the kernel tier of internal/nft.
test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzParseArgs -fuzztime=30s ./internal/policy/
	$(GO) test -run=^$$ -fuzz=FuzzDecode -fuzztime=30s ./internal/config/
	$(GO) test -run=^$$ -fuzz=FuzzParse -fuzztime=30s ./internal/appprofile/
	$(GO) test -run=^$$ -fuzz=FuzzParse -fuzztime=30s ./internal/sensor/journal/
	$(GO) test -run=^$$ -fuzz=FuzzSSHDMatch -fuzztime=30s -fuzzminimizetime=3s ./internal/detect/authfail/
	$(GO) test -run=^$$ -fuzz=FuzzCompile -fuzztime=30s -fuzzminimizetime=3s ./internal/detect/authfail/

demo: build
	./scripts/demo.sh $(CURDIR)/$(BIN)

bench: build
	./bench/fw-apply.sh $(CURDIR)/$(BIN)

clean:
	rm -rf bin
