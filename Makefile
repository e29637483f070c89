# ldapmux — an LDAP directory proxy.
GO        ?= go
TEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: demo test deps deps-test build vet fuzz bench bench-go bench-ryw clean release-snapshot chart-check tools

## demo: run ldapmux in front of three local slapd replicas (installs slapd if missing)
## from ./bin/ldapmux, the path the commands it prints use
demo: deps build
	./bin/ldapmux demo

## test: install what the tests need, vet, and run every test with the race detector
test: deps-test vet
	$(GO) test $(TEST_FLAGS) ./...

## deps: install slapd and ldap-utils from Debian's packages when missing
deps:
	@./scripts/install-deps.sh

## deps-test: deps, plus python-ldap (a client the tests drive), chromium for
## the status page's browser test, 389 DS and Samba for the tests against other
## directories, and the release tools
deps-test:
	@./scripts/install-deps.sh --with-clients --with-browser --with-directories --with-release
	@./scripts/tools.sh >/dev/null

## build: build the ldapmux binary into ./bin
build:
	$(GO) build -ldflags "-X github.com/ldapmux/ldapmux/internal/buildinfo.Version=$$(cat VERSION)" -o bin/ldapmux ./cmd/ldapmux

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

## bench: direct slapd vs ldapmux vs HAProxy under the same load, one table
## (about 7 minutes; BENCH_* variables, see docs/performance.md)
bench:
	@./scripts/bench.sh

## bench-ryw: stale reads, reads on the writer and latency of dependent reads with no affinity,
## affinity of 100 ms and 10 s, and affinity until replicated (docs/balancing.md; about 3 minutes)
bench-ryw:
	LDAPMUX_MEASURE_RYW=1 $(GO) test -count=1 -run='^TestReadYourWritesMeasure$$' -v -timeout 15m ./internal/e2e/

## bench-go: Go benchmarks of the forwarding hot path, with allocations
bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem ./internal/ldapwire/ ./internal/balancer/ ./internal/route/ ./internal/proxy/ ./internal/app/

## fuzz: fuzz the frame decoder, every request and control value decoder and
## the PROXY header parser, FUZZTIME each (seed corpus of real PDUs in
## internal/ldapwire/testdata/fuzz)
FUZZTIME ?= 60s
fuzz:
	@for t in FuzzReader FuzzReaderSizes FuzzParseBind FuzzTargetDN FuzzExtendedOID FuzzAbandonTarget FuzzCancelTarget FuzzEachControl FuzzParseResult FuzzValidateRequest FuzzControlValues; do \
		$(GO) test -run='^$$' -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) ./internal/ldapwire/ || exit 1; done
	$(GO) test -run='^$$' -fuzz='^FuzzProxyHeader$$' -fuzztime=$(FUZZTIME) ./internal/frontend/

## release-snapshot: static linux amd64/arm64 archives, .deb, .rpm, OCI images,
## SBOMs and SHA256SUMS into dist/, offline (scripts/release.sh, docs/deployment.md)
release-snapshot:
	@./scripts/install-deps.sh --with-release
	@./scripts/release.sh

## chart-check: helm lint, helm template and kubeconform of deploy/helm/ldapmux
chart-check:
	$(GO) test -count=1 -run 'Chart' ./internal/release/

## tools: install the pinned release and chart tools into .tools/bin
tools:
	@./scripts/tools.sh

clean:
	rm -rf bin bench-out dist
