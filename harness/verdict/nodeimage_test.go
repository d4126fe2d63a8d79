package verdict_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
	"github.com/kube-rehearse/rehearse/harness/timeline"
	tt "github.com/kube-rehearse/rehearse/harness/timeline/timelinetest"
	"github.com/kube-rehearse/rehearse/harness/verdict"
)

// imageUpgradeRun is a node-image upgrade in which the pods on the new
// image's node (w3, added at 6 s; web-c starts on it at 7 s, replacing
// web-b from w2) fail every request as fail says; the pods on the old
// image's node (w1) serve.
func imageUpgradeRun(fail func(r *timeline.Request)) *tt.Builder {
	b := tt.New()
	b.TL.SetMeta(verdict.RateMetaKey(timeline.ClientGateway), "100")
	b.Phase(timeline.PhaseBaseline, 0, S(5))
	b.Phase(timeline.PhaseFault, S(5), S(15))
	b.Phase(timeline.PhaseRecovery, S(15), S(20))
	info := func(name, image string) string {
		return nodeinfo.Info{Name: name, Pool: "workers", Image: image}.String()
	}
	for _, n := range []string{"w1", "w2"} {
		b.Event(timeline.Event{Offset: 0, Kind: timeline.EvNodeReady, Node: n, Detail: timeline.InitialState + "Ready; " + info(n, "old")})
	}
	b.Event(timeline.Event{Offset: S(6), Kind: timeline.EvNodeAdded, Node: "w3", Detail: info("w3", "new")})
	b.Event(timeline.Event{Offset: S(6), Kind: timeline.EvFaultInjected, Name: "add 1 surge node"})
	b.PodStart("web-a", "w1", "10.244.1.1", 0, 0)
	b.PodStart("web-b", "w2", "10.244.2.1", 0, 0)
	b.PodStart("web-c", "w3", "10.244.3.1", S(7), S(7))
	for _, p := range []string{"web-a", "web-b", "web-c"} {
		at := time.Duration(0)
		if p == "web-c" {
			at = S(7)
		}
		b.Event(timeline.Event{Offset: at, Kind: timeline.EvRouteAdded, Client: timeline.ClientGateway, Pod: p, IP: ""})
	}
	b.PodStop("web-b", "10.244.2.1", S(7), S(7)+100*time.Millisecond, S(8))
	for k, at := 0, time.Duration(0); at < S(20); k, at = k+1, at+10*time.Millisecond {
		pod := "web-a"
		if k%2 == 1 {
			pod = "web-b"
			if at >= S(7) {
				pod = "web-c"
			}
		}
		r := timeline.Request{Offset: at, Latency: 2 * time.Millisecond, Code: 200, Client: timeline.ClientGateway, Pod: pod, Via: timeline.ViaRoute}
		if pod == "web-c" {
			fail(&r)
		}
		b.Request(r)
	}
	return b
}

func TestFailuresOnTheNewNodeImageAreNamed(t *testing.T) {
	t.Run("the app says a name did not resolve: class 6, the node image's resolver", func(t *testing.T) {
		r := judge(t, imageUpgradeRun(func(r *timeline.Request) {
			r.Code, r.ErrText, r.Downstream = 502, "502 Bad Gateway", "dns"
			r.Err = timeline.ClassifyError(r.Code, r.ErrText)
		}))
		c, ok := r.Check(verdict.CheckErrorRate + "/gateway")
		require.True(t, ok)
		require.Equal(t, verdict.Fail, c.Status, c.Summary)
		require.NotNil(t, c.Diagnosis)
		assert.Equal(t, verdict.ClassDNS, c.Diagnosis.Class)
		assert.Contains(t, c.Diagnosis.Fix, "127.0.0.53")
		assert.Contains(t, strings.Join(evidenceTexts(c.Diagnosis), "\n"), "pods on nodes of the new image new failed")
	})
	t.Run("the app says nothing: the failures are the new image's", func(t *testing.T) {
		r := judge(t, imageUpgradeRun(func(r *timeline.Request) {
			r.Code, r.ErrText = 502, "502 Bad Gateway"
			r.Err = timeline.ClassifyError(r.Code, r.ErrText)
		}))
		c, _ := r.Check(verdict.CheckErrorRate + "/gateway")
		require.Equal(t, verdict.Fail, c.Status, c.Summary)
		require.NotNil(t, c.Diagnosis)
		assert.Equal(t, "the app failed on the nodes of the new node image", c.Diagnosis.Title)
		assert.Contains(t, c.Diagnosis.Fix, "hold the upgrade")
		assert.Contains(t, strings.Join(evidenceTexts(c.Diagnosis), "\n"), "image the cluster began with (old) 0 of")
	})
	t.Run("failures on both images are not the image's", func(t *testing.T) {
		b := imageUpgradeRun(func(r *timeline.Request) {})
		for at := S(9); at < S(10); at += 10 * time.Millisecond {
			b.Request(timeline.Request{Offset: at + 5*time.Millisecond, Latency: time.Millisecond, Code: 500, ErrText: "500 Internal Server Error",
				Err: timeline.ErrHTTP5xx, Client: timeline.ClientGateway, Pod: "web-a", Via: timeline.ViaRoute})
		}
		r := judge(t, b)
		c, _ := r.Check(verdict.CheckErrorRate + "/gateway")
		require.NotNil(t, c.Diagnosis)
		assert.NotContains(t, strings.Join(evidenceTexts(c.Diagnosis), "\n"), "follow the node image")
	})
}

// A pod that never served anyone (every request the gateway sent it failed)
// is not blamed by its shutdown for the failures of a client that cannot
// name pods: it failed before it was deleted.
func TestANeverServingPodIsNotBlamedOnItsShutdown(t *testing.T) {
	b := imageUpgradeRun(func(r *timeline.Request) {
		r.Code, r.ErrText = 502, "502 Bad Gateway"
		r.Err = timeline.ClassifyError(r.Code, r.ErrText)
	})
	b.TL.SetMeta(verdict.RateMetaKey(timeline.ClientService), "100")
	b.PodStop("web-c", "10.244.3.1", S(16), S(17), S(18))
	for at := S(16); at < S(17); at += 20 * time.Millisecond {
		b.Request(timeline.Request{Offset: at + 3*time.Millisecond, Latency: time.Millisecond, Code: 502, ErrText: "502 Bad Gateway",
			Err: timeline.ErrHTTP5xx, Client: timeline.ClientService})
	}
	// And while web-b, which served, shuts down (7-8 s), the Service's
	// answered errors are the broken web-c's.
	for at := S(7.2); at < S(8); at += 20 * time.Millisecond {
		b.Request(timeline.Request{Offset: at + 3*time.Millisecond, Latency: time.Millisecond, Code: 502, ErrText: "502 Bad Gateway",
			Err: timeline.ErrHTTP5xx, Client: timeline.ClientService})
	}
	s := b.Snapshot()
	for _, at := range verdict.Attribute(&s, verdict.DefaultThresholds()) {
		if s.Requests[at.Request].Client == timeline.ClientService {
			assert.NotEqual(t, verdict.CauseShutdown, at.Cause, "request at %s", s.Requests[at.Request].Offset)
		}
	}
}
