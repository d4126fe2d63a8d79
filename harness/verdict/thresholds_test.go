package verdict_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/verdict"
)

func TestThresholdsSetByName(t *testing.T) {
	th := verdict.DefaultThresholds()
	require.NoError(t, th.Set("max-outage", "2s"))
	require.NoError(t, th.Set("max-error-rate", "1%"))
	require.NoError(t, th.Set("min-ready-endpoints", "2"))
	require.NoError(t, th.Set("allow-empty-phases", "true"))
	require.NoError(t, th.Set("phase-max-error-rate", "fault:0.05"))
	assert.Equal(t, 2*time.Second, th.MaxOutage)
	assert.InDelta(t, 0.01, th.MaxErrorRate, 1e-12)
	assert.Equal(t, 2, th.MinReadyEndpoints)
	assert.True(t, th.AllowEmptyPhases)
	assert.Equal(t, map[string]float64{"fault": 0.05}, th.PhaseMaxErrorRate)

	v, ok := th.Get("max-outage")
	assert.True(t, ok)
	assert.Equal(t, "2s", v)
	v, _ = th.Get("phase-max-error-rate")
	assert.Equal(t, "fault:0.05", v)

	for name, value := range map[string]string{
		"max-outage": "soon", "max-error-rate": "-1", "min-ready-endpoints": "1.5",
		"allow-empty-phases": "maybe", "phase-max-error-rate": "0.05", "no-such-threshold": "1",
	} {
		assert.Error(t, th.Set(name, value), "%s=%s", name, value)
	}
	err := th.Set("max-outages", "1s")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "max-outage,", "the error lists the names")
}

func TestThresholdNamesMatchTheSavedForm(t *testing.T) {
	b, err := json.Marshal(verdict.DefaultThresholds())
	require.NoError(t, err)
	var saved map[string]any
	require.NoError(t, json.Unmarshal(b, &saved))
	names := verdict.ThresholdNames()
	assert.Contains(t, names, "max-outage")
	assert.Contains(t, names, "prestop-margin")
	assert.Len(t, saved, len(names)-1, "every threshold but the empty phase map is saved")
	assert.Contains(t, saved, "max_outage_ns")
}
