package cluster

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

func TestConfigValidateNamesEveryProblem(t *testing.T) {
	err := Config{Name: "Bad_Name", Workers: -1, NodePorts: []PortMapping{{NodePort: 80}}}.Validate()
	require.Error(t, err)
	for _, want := range []string{"Bad_Name", "workers -1", "no node image", "node port 80"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NoError(t, Config{Name: "rehearse-dev", Image: "img", Workers: 2, NodePorts: []PortMapping{{NodePort: 30080}}}.Validate())
}

func TestKindConfigPerNodeImagesAndPorts(t *testing.T) {
	c := New(Config{Name: "x", Image: "a", WorkerImages: []string{"", "b"}, Workers: 2,
		NodePorts: []PortMapping{{NodePort: 30080, HostPort: 18080}}})
	k := c.kindConfig()
	require.Len(t, k.Nodes, 3)
	assert.Equal(t, "a", k.Nodes[0].Image)
	assert.Equal(t, "a", k.Nodes[1].Image)
	assert.Equal(t, "b", k.Nodes[2].Image)
	require.Len(t, k.Nodes[0].ExtraPortMappings, 1)
	pm := k.Nodes[0].ExtraPortMappings[0]
	assert.Equal(t, int32(30080), pm.ContainerPort)
	assert.Equal(t, int32(18080), pm.HostPort)
	assert.Equal(t, "127.0.0.1", pm.ListenAddress)
}

func TestKindConfigPodSubnet(t *testing.T) {
	assert.Equal(t, "10.244.0.0/16", New(Config{Name: "x", Image: "a"}).kindConfig().Networking.PodSubnet, "kind's default")
	assert.Equal(t, "10.241.0.0/16", New(Config{Name: "x", Image: "a", PodSubnet: "10.241.0.0/16"}).kindConfig().Networking.PodSubnet)
	for bad, says := range map[string]string{"10.241.0.0": "IPv4 range", "fd00::/64": "IPv4 range", "10.241.0.0/24": "/20 or wider"} {
		err := Config{Name: "x", Image: "a", PodSubnet: bad}.Validate()
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), says, bad)
	}
	require.NoError(t, Config{Name: "x", Image: "a", PodSubnet: "10.240.0.0/12"}.Validate())
}

func TestJoinConfigIsValidYAMLWithNodeSettings(t *testing.T) {
	conf := joinConfig(joinData{ControlPlane: "c-control-plane:6443", Token: "abcdef.0123456789abcdef",
		NodeIP: "172.18.0.5", NodeName: "c-worker3", ClusterName: "c", Labels: map[string]string{"b": "2", "a": "1"}})
	var doc map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(conf), &doc))
	reg := doc["nodeRegistration"].(map[string]any)
	args := reg["kubeletExtraArgs"].(map[string]any)
	assert.Equal(t, "c-worker3", reg["name"])
	assert.Equal(t, "172.18.0.5", args["node-ip"])
	assert.Equal(t, "kind://docker/c/c-worker3", args["provider-id"])
	assert.Equal(t, "a=1,b=2", args["node-labels"])
	disc := doc["discovery"].(map[string]any)["bootstrapToken"].(map[string]any)
	assert.Equal(t, "c-control-plane:6443", disc["apiServerEndpoint"])
}

func TestBootPatternMatchesSystemdAndCgroupV1Lines(t *testing.T) {
	assert.True(t, bootPattern.MatchString("[  OK  ] Reached target multi-user.target - Multi-User System."))
	assert.True(t, bootPattern.MatchString("rehearse-node: detected cgroup v1"))
	assert.False(t, bootPattern.MatchString("Starting systemd"))
}

func TestKindConfigRuntimeConfig(t *testing.T) {
	rc := map[string]string{"admissionregistration.k8s.io/v1beta1": "true"}
	assert.Equal(t, rc, New(Config{Name: "x", Image: "a", RuntimeConfig: rc}).kindConfig().RuntimeConfig)
}
