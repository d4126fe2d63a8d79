package cluster

import (
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestArchiveIdentity(t *testing.T) {
	img, err := random.Image(64, 1)
	require.NoError(t, err)
	tag, err := name.NewTag("rehearse.local/app:v1")
	require.NoError(t, err)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.tar"), filepath.Join(dir, "b.tar")
	require.NoError(t, tarball.WriteToFile(a, tag, img))
	require.NoError(t, tarball.WriteToFile(b, tag, img))

	da, tags, err := archiveIdentity(a)
	require.NoError(t, err)
	assert.Equal(t, []string{"rehearse.local/app:v1"}, tags)
	db, _, err := archiveIdentity(b)
	require.NoError(t, err)
	assert.Equal(t, da, db, "the same content, the same identity")

	_, _, err = archiveIdentity(filepath.Join(dir, "missing.tar"))
	assert.Error(t, err)
}

func TestListsAll(t *testing.T) {
	have := []string{"rehearse.local/app:v1", "docker.io/library/busybox:1", "sha256:abc"}
	assert.True(t, listsAll(have, []string{"rehearse.local/app:v1", "busybox:1"}))
	assert.False(t, listsAll(have, []string{"rehearse.local/app:v2"}))
	assert.True(t, listsAll(have, nil))
}
