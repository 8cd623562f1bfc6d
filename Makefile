# agenttls: the two commands a new user needs are `make conformance` (the hermetic conformance
# matrix) and `make test` (the test suite). Everything else is for day-to-day work.
SHELL := /bin/bash
export TESTCONTAINERS_RYUK_DISABLED ?= true
export GOFLAGS ?= -buildvcs=false

SCENARIO ?= scenarios/full.yaml
SA_VERSION ?=
RANCHER_VERSION ?=
CELL ?=
PROCS ?=
ARTIFACTS ?= artifacts
ARGS ?=

AGENTTLS := go run ./cmd/agenttls
RUN_FLAGS = -scenario $(SCENARIO) -artifacts $(ARTIFACTS) \
	$(if $(SA_VERSION),-sa-version $(SA_VERSION)) \
	$(if $(RANCHER_VERSION),-rancher-version $(RANCHER_VERSION)) \
	$(if $(CELL),-cell '$(CELL)') $(if $(PROCS),-procs $(PROCS)) $(ARGS)

.PHONY: conformance e2e test unit bench list images sweep deps lint ci diff versions

## conformance: the main job: every cell of SCENARIO against the real install script (hermetic tier)
conformance: deps
	$(AGENTTLS) run $(RUN_FLAGS)

## e2e: the same suite; with RANCHER_VERSION set it runs against the real rancher/rancher image
e2e: deps
	$(AGENTTLS) run $(RUN_FLAGS) $(if $(RANCHER_VERSION),-backend rancher)

## test: unit tests, container integration tests and the suite's self-tests
test: deps
	go vet ./...
	go vet -tags e2e ./e2e
	go test -count=1 -timeout 40m ./...

## unit: the tests; those that need Docker are skipped (with the reason) only where no Docker answers
unit:
	go test -short -count=1 ./...

## bench: full-matrix wall time, per-cell overhead and time-to-verdict (images built first)
bench: deps
	go test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./bench/...

## list: every cell of SCENARIO with its labels and the command that runs it alone
list:
	@$(AGENTTLS) list -scenario $(SCENARIO)

## images: build (or reuse) every image the runs need, locally
images: deps
	$(AGENTTLS) images

## sweep: remove every container, network and image any agenttls run left behind
sweep:
	$(AGENTTLS) sweep -all

## deps: what a fresh machine lacks (debootstrap for the node image); needs root
deps:
	@command -v debootstrap >/dev/null 2>&1 || { echo "installing debootstrap (node image build)"; \
		(apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null) || \
		{ echo "could not install debootstrap: run 'apt-get install -y debootstrap' as root" >&2; exit 1; }; }
	@command -v docker >/dev/null 2>&1 || { echo "docker CLI not found: install Docker Engine first" >&2; exit 1; }

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt wants changes" >&2; exit 1; }
	go vet ./...

ci:
	bash .ci/run
