package priority

import (
	"errors"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRaiseAndRestore(t *testing.T) {
	was, err := threadNice()
	require.NoError(t, err)
	groupWas, hasGroup, err := autogroupNice()
	require.NoError(t, err)

	r, err := Raise()
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		t.Skipf("not allowed to raise the priority here: %v", err)
	}
	require.NoError(t, err)
	t.Log(r.Detail)
	if was <= Nice {
		return // nothing to raise
	}
	now, err := threadNice()
	require.NoError(t, err)
	assert.Equal(t, Nice, now)
	if hasGroup {
		g, _, err := autogroupNice()
		require.NoError(t, err)
		assert.Equal(t, Nice, g)
	}

	r.Restore()
	now, err = threadNice()
	require.NoError(t, err)
	assert.Equal(t, was, now)
	if hasGroup {
		g, _, err := autogroupNice()
		require.NoError(t, err)
		assert.Equal(t, groupWas, g)
	}
	r.Restore() // a second time changes nothing
}
