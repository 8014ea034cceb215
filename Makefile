# The commands a newcomer needs; README.md explains them.
GO ?= go

.PHONY: build test gen gen-check bench lint

build:
	$(GO) build -o openvpc ./cmd/openvpc

# All tests: vet, every package, the end-to-end tests (test/e2e: hosts in
# namespaces, iperf3 at tens of Gbit/s) on their own so that their load
# does not starve the timing of the in-process ones, then the packages
# where concurrency lives again under the race detector.
test:
	$(GO) vet ./...
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/e2e)
	$(GO) test -count=1 ./test/e2e/
	$(GO) test -count=1 -race -short ./control/... ./node/... ./host/... ./edge/... ./underlay/... ./localcloud/... ./testcloud/...

# Regenerate the protobuf code (needs buf, protoc-gen-go, protoc-gen-connect-go
# on PATH: see .ci/run for the pinned versions).
gen:
	buf lint
	buf generate

gen-check: gen
	git diff --exit-code -- gen/

# Every performance figure next to its baseline, one markdown table.
bench:
	$(GO) run ./bench -out bench/results/latest.md

# Static analysis beyond vet.
lint:
	GOFLAGS= $(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
