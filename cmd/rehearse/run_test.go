package main

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kube-rehearse/rehearse/harness"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

func TestConclude(t *testing.T) {
	failed := verdict.Check{Name: "graceful-shutdown", Status: verdict.Fail}
	passed := verdict.Check{Name: "load", Status: verdict.Pass}
	report := func(o verdict.Status, reason string, checks ...verdict.Check) *harness.Result {
		return &harness.Result{Report: verdict.Report{Outcome: o, Reason: reason, Checks: checks}, Dir: "out/run-1"}
	}
	for _, tc := range []struct {
		name        string
		res         *harness.Result
		err         error
		interrupted bool
		closeErr    error
		line        string
		code        int
	}{
		{"passed", report(verdict.Pass, "", passed), nil, false, nil, "rehearsal passed", 0},
		{"failed", report(verdict.Fail, "", passed, failed, failed), nil, false, nil,
			"rehearsal FAILED: 2 checks failed (see above and out/run-1)", 1},
		{"one failed", report(verdict.Fail, "", failed), nil, false, nil,
			"rehearsal FAILED: 1 check failed (see above and out/run-1)", 1},
		{"cannot judge", report(verdict.CannotJudge, "the baseline was not clean"), nil, false, nil,
			"CANNOT JUDGE: the baseline was not clean", 3},
		{"cannot judge without a reason", report(verdict.CannotJudge, "", verdict.Check{Name: "baseline", Status: verdict.CannotJudge}), nil, false, nil,
			"CANNOT JUDGE: these checks could not judge: baseline", 3},
		{"interrupted, judged", report(verdict.Pass, "", passed), context.Canceled, true, nil,
			"CANNOT JUDGE: interrupted before the rehearsal ended; what was observed until then is judged above", 3},
		{"interrupted before anything", nil, context.Canceled, true, nil,
			"CANNOT JUDGE: interrupted before the rehearsal ended", 3},
		{"could not run", nil, errors.New("no Docker engine answers"), false, nil,
			"CANNOT JUDGE: the rehearsal could not run: no Docker engine answers", 3},
		{"passed, revert failed", &harness.Result{Report: verdict.Report{Outcome: verdict.Pass}, RevertErr: errors.New("node gone")}, nil, false, nil,
			"CANNOT JUDGE: the verdict passed, but a change could not be reverted (node gone): run `rehearse restore`", 3},
		{"passed, cluster not deleted", report(verdict.Pass, ""), nil, false, errors.New("deleting cluster x: boom"),
			"CANNOT JUDGE: the verdict passed, but deleting cluster x: boom", 3},
		{"failed, revert failed", &harness.Result{Report: verdict.Report{Outcome: verdict.Fail, Checks: []verdict.Check{failed}}, RevertErr: errors.New("node gone")}, nil, false, nil,
			"rehearsal FAILED: 1 check failed (see above); also a change could not be reverted (node gone): run `rehearse restore`", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			line, code := conclude(tc.res, tc.err, tc.interrupted, tc.closeErr)
			assert.Equal(t, tc.line, line)
			assert.Equal(t, tc.code, code)
		})
	}
}
