// Package faults rehearses what breaks under an application without an
// upgrade, on one kind cluster, under both kinds of client at suite.Rate
// requests per second each:
//
//   - the cgroup audit (catalogue class 5): a runtime reading only cgroup v2
//     files is flagged on these cgroup v1 nodes, one reading both passes
//     (cgroup_test.go);
//   - broken name resolution (class 6): CoreDNS scaled to 0, answering
//     SERVFAIL, DNS packets dropped; a resilient app passes, a fragile one
//     fails the dns check (dns_test.go);
//   - a worker lost without a drain: a well-spread app keeps serving, one
//     with every replica on the lost node fails with class 10 and the
//     spread fix; a spot-style notice loses nothing (nodeloss_test.go, last:
//     it replaces a node).
//
// make test runs the core cases (each verdict's pass and fail at least
// once); REHEARSE_FULL=1 (make test-full) runs every case.
package faults

import (
	"os"
	"testing"

	"github.com/kube-rehearse/rehearse/suites/suite"
)

func TestMain(m *testing.M) {
	os.Exit(suite.Main(m, "rehearse-faults", suite.Options{PodSubnet: "10.241.0.0/16"}))
}
