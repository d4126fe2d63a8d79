package safety

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var staging = Cluster{Context: "staging-weu", Server: "https://Staging.example.com:443/"}

func TestPermits(t *testing.T) {
	for _, c := range []struct {
		entries string
		cluster Cluster
		want    bool
	}{
		{"", staging, false},
		{"", Cluster{Context: "kind-x", Server: "https://127.0.0.1:1", Owned: true}, true},
		{"staging-weu", staging, true},
		{"staging-*", staging, true},
		{"prod-*", staging, false},
		{"staging", staging, false},
		{"https://staging.example.com", staging, true},
		{"https://staging.example.com:6443", staging, false},
		{"staging-weu@https://staging.example.com", staging, true},
		// The context name now points at another server: refused.
		{"staging-weu@https://other.example.com", staging, false},
		{"dev, staging-weu", staging, true},
		{"dev staging-eus", staging, false},
	} {
		a, err := Parse(c.entries)
		require.NoError(t, err, c.entries)
		assert.Equal(t, c.want, a.Permits(c.cluster), "%q permits %+v", c.entries, c.cluster)
	}
}

func TestBadEntriesAreNamed(t *testing.T) {
	_, err := Parse("ok,[bad,@https://x,ftp://host,https://")
	require.Error(t, err)
	for _, bad := range []string{`"[bad"`, `"@https://x"`, `"ftp://host"`, `"https://"`} {
		assert.Contains(t, err.Error(), bad)
	}
	assert.NotContains(t, err.Error(), `"ok"`)
}

func TestCheckRefusesWithTheFix(t *testing.T) {
	var none AllowList
	assert.NoError(t, none.Check(staging, nil), "nothing to disrupt")
	err := none.Check(staging, []string{"cordon and drain a node"})
	require.True(t, errors.Is(err, ErrNotAllowed))
	for _, s := range []string{"staging-weu", "cordon and drain a node", "Nothing was changed", "--allow-cluster staging-weu", EnvVar} {
		assert.Contains(t, err.Error(), s)
	}
	t.Setenv(EnvVar, "staging-weu")
	env, err := FromEnv()
	require.NoError(t, err)
	assert.NoError(t, none.Merge(env).Check(staging, []string{"cordon and drain a node"}))
}
