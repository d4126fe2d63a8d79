package timeline

import "encoding/json"

// ResourceSample is one pod's resources at one moment, as a
// ResourceSample event carries it (JSON in Detail): the limits its pod
// spec sets, the limits its runtime detected (what a JVM, .NET or Go
// sizes its heap and threads from), and what it used. A cgroup change
// under an app (v1 to v2 with a node image) shows as a runtime that no
// longer finds its limits, and as a jump in use.
type ResourceSample struct {
	// Cgroup is the node's cgroup version ("v1", "v2"; "" unknown).
	Cgroup string `json:"cgroup,omitempty"`

	// The pod spec's limits of the app container (0: none).
	CPULimit    float64 `json:"cpuLimit,omitempty"`    // cores
	MemoryLimit int64   `json:"memoryLimit,omitempty"` // bytes

	// What the runtime detected, when the app says (the rehearsal app's
	// /cgroup report): the files it reads ("v1-only", "v2-only", "both"),
	// the version its limits came from ("v1", "v2", "none": both from the
	// host), the limits, and whether each fell back to the host's.
	RuntimeMode  string  `json:"runtimeMode,omitempty"`
	RuntimeFrom  string  `json:"runtimeFrom,omitempty"`
	CPUSeen      float64 `json:"cpuSeen,omitempty"`
	MemorySeen   int64   `json:"memorySeen,omitempty"`
	CPUFromHost  bool    `json:"cpuFromHost,omitempty"`
	MemFromHost  bool    `json:"memoryFromHost,omitempty"`
	HeapBytes    int64   `json:"heapBytes,omitempty"`
	ContainerSee string  `json:"containerSees,omitempty"` // for an app that says nothing: the cgroup files readable in its container ("v1", "v2")

	// Use, from the kubelet's stats.
	CPUUsage         float64 `json:"cpuUsage,omitempty"`         // cores
	MemoryWorkingSet int64   `json:"memoryWorkingSet,omitempty"` // bytes

	// Unread says what could not be read, and why.
	Unread []string `json:"unread,omitempty"`
}

// Encode is the sample as an event's Detail.
func (s ResourceSample) Encode() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// DecodeResourceSample reads a ResourceSample event's Detail.
func DecodeResourceSample(detail string) (ResourceSample, error) {
	var s ResourceSample
	err := json.Unmarshal([]byte(detail), &s)
	return s, err
}
