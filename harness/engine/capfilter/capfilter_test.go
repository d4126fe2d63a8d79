package capfilter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseMaskAndMissing(t *testing.T) {
	// This machine's bounding set: every capability up to 40 but 24 (CAP_SYS_RESOURCE).
	have, err := ParseMask("000001fffeffffff")
	require.NoError(t, err)
	assert.True(t, have["CAP_SYS_ADMIN"])
	assert.False(t, have["CAP_SYS_RESOURCE"])
	assert.Equal(t, []string{"CAP_SYS_RESOURCE"}, Missing(have, 40))

	full, err := ParseMask("000001ffffffffff")
	require.NoError(t, err)
	assert.Empty(t, Missing(full, 40))

	_, err = ParseMask("not-hex")
	assert.ErrorContains(t, err, "not hexadecimal")
}

func TestParseArgs(t *testing.T) {
	cases := []struct {
		args []string
		want Invocation
	}{
		{[]string{"--root", "/run/runc", "--log", "/x.log", "create", "--bundle", "/b", "--pid-file", "p", "id"}, Invocation{Command: "create", Bundle: "/b"}},
		{[]string{"--root=/run/runc", "create", "-b", "/b2", "id"}, Invocation{Command: "create", Bundle: "/b2"}},
		{[]string{"exec", "--process", "/tmp/p.json", "--detach", "id"}, Invocation{Command: "exec", ProcessFile: "/tmp/p.json"}},
		{[]string{"exec", "--process=/tmp/q.json", "id"}, Invocation{Command: "exec", ProcessFile: "/tmp/q.json"}},
		{[]string{"--root", "/r", "delete", "id"}, Invocation{Command: "delete"}},
		{[]string{"create", "id"}, Invocation{Command: "create"}},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, ParseArgs(c.args), "%v", c.args)
	}
}

func TestFilterBundleConfigKeepsEverythingElse(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.json")
	spec := `{"ociVersion":"1.0.2","process":{"args":["sh"],"capabilities":{
	  "bounding":["CAP_CHOWN","CAP_SYS_RESOURCE","CAP_SYS_ADMIN"],
	  "effective":["CAP_SYS_RESOURCE"],"permitted":["CAP_CHOWN","CAP_SYS_RESOURCE"]}},
	  "root":{"path":"rootfs"}}`
	require.NoError(t, os.WriteFile(path, []byte(spec), 0o600))
	allowed := Set{"CAP_CHOWN": true, "CAP_SYS_ADMIN": true}
	require.NoError(t, FilterBundleConfig(path, allowed))

	var doc struct {
		OCIVersion string `json:"ociVersion"`
		Process    struct {
			Args         []string            `json:"args"`
			Capabilities map[string][]string `json:"capabilities"`
		} `json:"process"`
		Root map[string]string `json:"root"`
	}
	b, _ := os.ReadFile(path)
	require.NoError(t, json.Unmarshal(b, &doc))
	assert.Equal(t, "1.0.2", doc.OCIVersion)
	assert.Equal(t, []string{"sh"}, doc.Process.Args)
	assert.Equal(t, "rootfs", doc.Root["path"])
	assert.Equal(t, []string{"CAP_CHOWN", "CAP_SYS_ADMIN"}, doc.Process.Capabilities["bounding"])
	assert.Empty(t, doc.Process.Capabilities["effective"])
	assert.Equal(t, []string{"CAP_CHOWN"}, doc.Process.Capabilities["permitted"])
}

func TestFilterProcessFileWithoutCapabilities(t *testing.T) {
	path := filepath.Join(t.TempDir(), "process.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"args":["ls"]}`), 0o600))
	require.NoError(t, FilterProcessFile(path, Set{}))
	b, _ := os.ReadFile(path)
	assert.JSONEq(t, `{"args":["ls"]}`, string(b))
}

func TestFilterRejectsBrokenJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.json")
	require.NoError(t, os.WriteFile(path, []byte(`{`), 0o600))
	assert.Error(t, FilterBundleConfig(path, Set{}))
}
