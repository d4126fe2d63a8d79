# The two commands a new machine needs are `make rehearse` and `make test`;
# everything they need (Docker engine, node images) is prepared on the way.
GO        ?= go
REHEARSE  := $(GO) run ./cmd/rehearse
# End-to-end suites create real clusters: generous, bounded time.
E2E_TIMEOUT ?= 80m

.PHONY: rehearse test test-full test-vm unit e2e e2e-full example node-image engine bench repeat clean-clusters

## rehearse: a node-image surge upgrade rehearsed on a local kind cluster
## (cluster up, app under load, upgrade, verdict, cluster down)
rehearse:
	$(REHEARSE) upgrade --variant refresh

## test: every test, unit and end-to-end (real kind clusters)
test: unit e2e

## test-full: every test with every case of the end-to-end suites (the nightly
## run: about twice make test's time)
test-full: unit e2e-full

## test-vm: the VM-node suite (a cgroup v2 VM worker joins the kind
## cluster; the cgroup v1 -> v2 move rehearsed). VMs boot under QEMU: near
## native speed with KVM, about 15 times slower without, so make test
## leaves it out.
test-vm: engine node-image
	REHEARSE_VM=1 $(GO) test -count=1 -v -timeout $(E2E_TIMEOUT) ./suites/vmnode

## unit: unit and component tests (no cluster)
unit:
	$(GO) vet ./...
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /suites/)

## e2e: end-to-end suites (their core cases: each verdict's pass and fail at
## least once), one cluster per suite package, one package at a time, then
## the example of a user's own module (examples/shop)
e2e: engine node-image
	$(GO) test -count=1 -p 1 -timeout $(E2E_TIMEOUT) ./suites/...
	$(MAKE) example

## e2e-full: the end-to-end suites with every case (REHEARSE_FULL=1)
e2e-full:
	REHEARSE_FULL=1 $(MAKE) e2e

## example: the user's-own-module example rehearses its app through the public API
example:
	cd examples/shop && $(GO) test -count=1 -timeout 20m ./...

## node-image: kind node images of both rehearsal Kubernetes versions (cached)
node-image: engine
	$(REHEARSE) image node --all

## engine: make sure a Docker engine answers (installs/starts one when root)
engine:
	$(REHEARSE) engine

## bench: benchmarks that print speed and precision figures
bench:
	$(GO) test -run '^$$' -bench . -benchmem $$($(GO) list ./... | grep -v /suites/)

## repeat: run one suite N times and tabulate its verdicts (each must agree N of N),
## e.g. make repeat SUITE=rollingrestart N=5
SUITE ?= rollingrestart
N ?= 5
repeat: engine node-image
	$(GO) run ./cmd/repeat -n $(N) ./suites/$(SUITE)

## clean-clusters: delete every kind cluster this harness made (names rehearse-*)
clean-clusters:
	$(REHEARSE) cluster down --all
