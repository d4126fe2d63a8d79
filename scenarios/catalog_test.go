package scenarios

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckSettingsNamesTheProblem(t *testing.T) {
	assert.NoError(t, CheckSettings("rolling-restart", map[string]string{"timeout": "2m"}))
	err := CheckSettings("rolling-restrat", nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "rolling-restart")
	err = CheckSettings("node-cordon", map[string]string{"nod": "x"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "hold, node")
	err = CheckSettings("node-cordon", map[string]string{"hold": "forever"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "positive duration")
}

func TestBuildRollingRestart(t *testing.T) {
	s, err := Build(context.Background(), "rolling-restart", nil, Env{Namespace: "shop", Deployment: "web"})
	require.NoError(t, err)
	assert.Contains(t, s.String(), "restart deployment shop/web")
	_, err = Build(context.Background(), "rolling-restart", nil, Env{Namespace: "shop"})
	assert.Error(t, err, "no Deployment known and none set")
}

func TestBuildCordonWithNode(t *testing.T) {
	s, err := Build(context.Background(), "node-cordon", map[string]string{"node": "w2", "hold": "5s"}, Env{})
	require.NoError(t, err)
	assert.Len(t, s.Steps, 3)
	assert.Contains(t, s.String(), "cordon node w2")
}
