# agenttls: the two commands a new user needs are `make conformance` (the hermetic conformance
# matrix) and `make test` (the test suite). Everything else is for day-to-day work.
SHELL := /bin/bash
export TESTCONTAINERS_RYUK_DISABLED ?= true
export GOFLAGS ?= -buildvcs=false

# Unset variables are not passed on, so that agenttls's own defaults and its environment
# variables (AGENTTLS_SCENARIO, ARTIFACTS, ...) apply: scenarios/full.yaml, artifacts/.
SCENARIO ?=
SA_VERSION ?=
RANCHER_VERSION ?=
CELL ?=
PROCS ?=
ARTIFACTS ?=
ARGS ?=
RUN_ID ?=
ALL ?=

# q quotes a value as one shell word (paths with spaces or quotes).
q = '$(subst ','\'',$(1))'

# The built command, not `go run`, which turns every exit code into 1: make then reports
# agenttls's own code (Error 1: a cell differs, 2: refused, 3: skipped under -fail-on-skip).
AGENTTLS := bin/agenttls
RUN_FLAGS = $(if $(SCENARIO),-scenario $(call q,$(SCENARIO))) $(if $(ARTIFACTS),-artifacts $(call q,$(ARTIFACTS))) \
	$(if $(SA_VERSION),-sa-version $(SA_VERSION)) \
	$(if $(RANCHER_VERSION),-rancher-version $(RANCHER_VERSION)) \
	$(if $(CELL),-cell '$(CELL)') $(if $(PROCS),-procs $(PROCS)) $(ARGS)

.PHONY: conformance e2e test unit race bench list images sweep deps lint ci diff versions merge baseline $(AGENTTLS)

## conformance: the main job: every cell of SCENARIO against the real install script (hermetic tier)
conformance: deps $(AGENTTLS)
	$(AGENTTLS) run $(RUN_FLAGS)

## e2e: the same suite; with RANCHER_VERSION set it runs against the real rancher/rancher image,
## and fails (agenttls exits 3, make says Error 3) when that image cannot be had and the cells are skipped
e2e: deps $(AGENTTLS)
	$(AGENTTLS) run $(RUN_FLAGS) $(if $(RANCHER_VERSION),-backend rancher -fail-on-skip)

# Built on every use (go build's cache makes that cheap), so it is never stale.
$(AGENTTLS):
	@go build -o $@ ./cmd/agenttls

## test: unit tests, container integration tests and the suite's self-tests
test: deps
	go vet ./...
	go vet -tags e2e ./e2e
	go test -count=1 -timeout 40m ./...

## unit: the tests; those that need Docker are skipped (with the reason) only where no Docker answers
unit:
	go test -short -count=1 ./...

## race: the unit tests and the full matrix with the race detector (the testbed and the cells
## run concurrently in every suite process)
race: deps $(AGENTTLS)
	go test -race -count=1 ./harness/... ./cmd/agenttls-emulator ./cmd/agenttls-proxy ./cmd/rancher-system-agent
	$(AGENTTLS) run -race $(RUN_FLAGS)

## bench: full-matrix wall time, per-cell overhead and time-to-verdict (images built first)
bench: deps
	go test -count=1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./e2e/bench/...

## list: every cell of SCENARIO with its labels and the command that runs it alone
list: $(AGENTTLS)
	@$(AGENTTLS) list $(if $(SCENARIO),-scenario $(call q,$(SCENARIO)))

## images: build (or reuse) every image the runs need, locally
images: deps $(AGENTTLS)
	$(AGENTTLS) images

## sweep: remove what run RUN_ID left (the id a run prints, e.g. after -keep); ALL=1 instead
## removes what every agenttls run left, running ones included
sweep: $(AGENTTLS)
	@case $(call q,$(strip $(RUN_ID)))/$(call q,$(ALL)) in \
	  /1) set -x; $(AGENTTLS) sweep -all ;; \
	  /*) echo 'usage: make sweep RUN_ID=<the id a run printed>, or make sweep ALL=1 for every run (running ones included)' >&2; exit 2 ;; \
	  */) set -x; $(AGENTTLS) sweep -run-id $(call q,$(strip $(RUN_ID))) ;; \
	  *) echo 'make sweep: give RUN_ID or ALL=1, not both' >&2; exit 2 ;; \
	esac

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

# Reports (harness/report/README.md). OLD/NEW/RESULTS/PARTS name results files or the folders holding them.
BASELINE ?= fixtures/baseline/results.json
RUN_DIR = $(or $(ARTIFACTS),artifacts)
OLD ?= $(BASELINE)
NEW ?= $(RUN_DIR)/results.json
VERSIONS ?=
PARTS ?=
OUT ?= $(RUN_DIR)/merged
RESULTS ?=

## diff: compare two runs (default: the baseline and the last run); exit 1 on a regression, 2 on bad input
diff: $(AGENTTLS)
	$(AGENTTLS) report diff $(call q,$(OLD)) $(call q,$(NEW)) -md $(call q,$(RUN_DIR)/diff.md) -html $(call q,$(RUN_DIR)/diff.html)

## versions: the matrix once per system-agent version (VERSIONS=v0.3.4,v0.15.0; default: every served one) and the version table
versions: deps $(AGENTTLS)
	$(AGENTTLS) sweep-versions $(if $(VERSIONS),-versions $(call q,$(VERSIONS))) $(if $(SCENARIO),-scenario $(call q,$(SCENARIO))) -artifacts $(call q,$(RUN_DIR)/sweep) $(if $(ARGS),-- $(ARGS))

## merge: join the results of the shards of one run (PARTS="a/results.json b/results.json") into OUT
merge: $(AGENTTLS)
	@test -n "$(PARTS)" || { echo 'usage: make merge PARTS="shard1/results.json shard2/results.json ..." [OUT=dir]' >&2; exit 2; }
	$(AGENTTLS) report merge -o $(call q,$(OUT)) $(PARTS)

## baseline: accept RESULTS as the baseline the gate diffs against (shows the diff first; commit the file after)
baseline: $(AGENTTLS)
	@test -n "$(RESULTS)" || { echo 'usage: make baseline RESULTS=path/to/results.json' >&2; exit 2; }
	@if [ -f $(BASELINE) ]; then \
		$(AGENTTLS) report diff $(BASELINE) $(RESULTS); rc=$$?; \
		if [ $$rc -gt 1 ]; then echo "baseline: $(RESULTS) cannot be compared with $(BASELINE) (see above): fix that, or delete $(BASELINE) to start afresh" >&2; exit $$rc; fi; \
		if [ $$rc = 1 ]; then echo "baseline: accepting a run that REGRESSED against the current baseline: say why in the commit message"; fi; \
	else \
		tmp=$$(mktemp -d) && $(AGENTTLS) report render $(RESULTS) -o $$tmp >/dev/null; rc=$$?; rm -rf $$tmp; [ $$rc = 0 ] || exit 2; \
	fi
	@mkdir -p $(dir $(BASELINE))
	cp $(if $(filter %.json,$(RESULTS)),$(RESULTS),$(RESULTS)/results.json) $(BASELINE)
	@echo "baseline: $(BASELINE) replaced; review 'git diff --stat $(BASELINE)' and commit it with the reason"
