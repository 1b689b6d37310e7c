# meshguard: `make demo` shows the whole loop, `make test` runs every test with real components.
SHELL := /bin/bash
GO ?= go
BIN := bin/meshguard
TOOLS := test/tools/install.sh
STATICCHECK_VERSION ?= v0.8.2
CACHE := $(or $(MESHGUARD_CACHE),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/meshguard)

# The real components the tests start, built or installed once per machine and cached outside
# the clone (see test/tools/install.sh).
export TEST_ASSET_KUBE_APISERVER = $(shell $(TOOLS) path kube-apiserver)
export TEST_ASSET_ETCD = $(shell $(TOOLS) path etcd)
export HELM_BIN = $(shell $(TOOLS) path helm)

# The container image: the chart's default image (repository in values.yaml, tag = appVersion).
VERSION ?= $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' charts/meshguard/Chart.yaml)
IMAGE_REPO ?= ghcr.io/meshguard/meshguard
IMAGE_TAR := bin/meshguard-image.tar
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)

.PHONY: all build tools test unit e2e vet staticcheck bench bench-conftest demo docs image clean

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/meshguard

tools:
	@$(TOOLS) all

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

staticcheck:
	@command -v staticcheck >/dev/null || GOBIN=$(CACHE)/staticcheck-$(STATICCHECK_VERSION) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$(CACHE)/staticcheck-$(STATICCHECK_VERSION):$$PATH" staticcheck ./...

# test: vet, unit tests, and the end-to-end tests against a real kube-apiserver + etcd,
# Prometheus, Alertmanager and Helm. Fails on any failure.
test: tools vet image
	MESHGUARD_IMAGE=$(CURDIR)/$(IMAGE_TAR) $(GO) test -count=1 -timeout 45m ./...

# unit: the fast tier, under a minute warm; it starts no process (tests that start one, such as
# the xmllint, image, chart and end-to-end tests, skip under -short).
unit:
	$(GO) test -count=1 -short ./internal/... ./policies/... ./cmd/... ./webhook/... ./checks/...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./internal/engine/ ./internal/lint/ ./internal/validate/

# bench-conftest: `meshguard lint` against `conftest test` on the same 10,000 generated objects,
# conftest running meshguard's per-object rules written in Rego (test/bench/conftest).
bench-conftest:
	test/bench/conftest/run.sh

docs: build
	$(BIN) policies list -o md > docs/rules.md

# demo: linting the examples (test/lint-demo.sh), then the whole loop (test/demo): the chart's webhook denying bad objects at kubectl apply,
# then plaintext and retry-storm alerts in Alertmanager. The compiled test binary prints each step
# as it happens.
demo: tools build
	@test/lint-demo.sh
	@$(GO) test -c -o bin/demo.test ./test/demo
	@cd test/demo && MESHGUARD_BIN=$(CURDIR)/$(BIN) ../../bin/demo.test -test.run '^TestDemo$$' -test.timeout 15m

# image: an OCI image layout tarball (oci-archive), built without Docker by go-containerregistry
# (test/tools/image, its own module); load it with `podman load -i`, push it with `crane push` or
# `skopeo copy oci-archive:bin/meshguard-image.tar docker://...`.
image:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags "-s -w -X main.version=v$(VERSION)" -o bin/linux-$(IMAGE_ARCH)/meshguard ./cmd/meshguard
	cd test/tools/image && $(GO) run . -binary $(CURDIR)/bin/linux-$(IMAGE_ARCH)/meshguard -out $(CURDIR)/$(IMAGE_TAR) \
		-ref $(IMAGE_REPO):$(VERSION) -arch $(IMAGE_ARCH) -version $(VERSION)
	@ls -l $(IMAGE_TAR)

clean:
	rm -rf bin
