# ldapmux — an LDAP directory proxy.
GO        ?= go
TEST_FLAGS ?= -race -count=1 -timeout 30m

.PHONY: demo test deps build vet fuzz clean

## demo: run ldapmux in front of three local slapd replicas (installs slapd if missing)
demo: deps
	$(GO) run ./cmd/ldapmux demo

## test: install what the tests need, vet, and run every test with the race detector
test: deps vet
	$(GO) test $(TEST_FLAGS) ./...

## deps: install slapd and ldap-utils from Debian's packages when missing
deps:
	@./scripts/install-deps.sh

## build: build the ldapmux binary into ./bin
build:
	$(GO) build -o bin/ldapmux ./cmd/ldapmux

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) vet ./...

## fuzz: fuzz the frame decoder for a minute
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzReader -fuzztime=60s ./internal/ldapwire/

clean:
	rm -rf bin
