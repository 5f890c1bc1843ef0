# Developer shortcuts; CI runs .ci/run.
.PHONY: test race lint bench bench-e2e fuzz demo docs

test:
	go test ./...

# -short: the crash test samples its crash points (make test runs them all).
race:
	go test -race -short ./engine/... ./recipes/...

lint:
	test -z "$$(gofmt -l .)"
	go vet ./...

# Micro-benchmarks of every package.
bench:
	go test -run '^$$' -bench . -benchmem ./...

# The runner end to end: 100,000 members against the sandbox (docs/benchmarks.md).
bench-e2e:
	go run ./cmd/memberflow bench

# The fuzz tests of untrusted input, a minute each.
fuzz:
	go test ./recipes -run '^$$' -fuzz FuzzLoad -fuzztime 1m
	go test ./engine -run '^$$' -fuzz FuzzWebhook -fuzztime 1m
	go test ./engine -run '^$$' -fuzz FuzzSpoolReader -fuzztime 1m

demo:
	go run ./cmd/memberflow run --sandbox --once examples/

# Regenerate docs/connectors/*.md from the connector specs.
docs:
	go run ./internal/docgen -dir docs/connectors
