GO ?= go
export CGO_ENABLED = 1

.PHONY: test demo generate bench lint

## test: every test of every package, with the race detector.
test:
	$(GO) test -race -count=1 -timeout 30m ./...

## demo: a device flow, a PKCE flow, a refresh rotation and a replay, on a
## fresh SQLite file (removed afterwards), printing each step.
demo:
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/authdb-demo.XXXXXX") && \
	$(GO) run ./cmd/authdb --db "sqlite://$$dir/demo.db" demo; \
	status=$$?; rm -rf "$$dir"; exit $$status

## generate: regenerate the ent code from ent/schema.
generate:
	$(GO) generate ./ent

## bench: benchmarks.
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./backend/...

## lint: gofmt and go vet.
lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
