package clientlog

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"k8s.io/klog/v2"
)

// stderrOf runs f and returns what it wrote to stderr.
func stderrOf(t *testing.T, f func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	was := os.Stderr
	os.Stderr = w
	klog.SetOutput(w) // klog caches its stderr writer
	f()
	os.Stderr = was
	klog.SetOutput(was)
	w.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(r)
	return b.String()
}

func TestCapturesNestAndRestore(t *testing.T) {
	var outer, inner []byte
	printed := stderrOf(t, func() {
		a := Start()
		klog.ErrorS(nil, "Failed to watch", "resource", "pods")
		klog.Background().V(3).Info("Starting reflector")
		b := Start()
		klog.InfoS("Waited due to client-side throttling")
		inner = b.Stop()
		klog.Warning("after the inner capture")
		outer = a.Stop()
		assert.Equal(t, outer, a.Stop(), "a second Stop returns the same")
	})
	assert.Contains(t, string(outer), "Failed to watch")
	assert.Contains(t, string(outer), "client-side throttling")
	assert.Contains(t, string(outer), "after the inner capture")
	assert.NotContains(t, string(outer), "Starting reflector", "V(3): not at klog's default verbosity")
	assert.NotContains(t, string(inner), "Failed to watch", "before the inner capture began")
	assert.Contains(t, string(inner), "client-side throttling")
	assert.Empty(t, printed, "nothing reaches stderr while captured")

	after := stderrOf(t, func() { klog.ErrorS(nil, "after every capture"); klog.Flush() })
	assert.Contains(t, after, "after every capture", "klog prints again once the last capture stopped")
}

func TestLimit(t *testing.T) {
	c := Start()
	line := strings.Repeat("x", 4096)
	for i := 0; i < Limit/4096+10; i++ {
		klog.Info(line)
	}
	out := c.Stop()
	assert.LessOrEqual(t, len(out), Limit+100)
	assert.Contains(t, string(out), "more lines not kept")
}
