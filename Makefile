# Developer shortcuts; CI runs .ci/run.
.PHONY: test race lint bench fuzz demo

test:
	go test ./...

race:
	go test -race ./engine/... ./recipes/...

lint:
	gofmt -l . | tee /dev/stderr | (! read)
	go vet ./...

bench:
	go test -run '^$$' -bench . -benchmem ./...

demo:
	go run ./cmd/memberflow run --sandbox --once examples/
