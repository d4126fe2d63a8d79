package timelinetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kube-rehearse/rehearse/fixtures/app/contract"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// A node powered off at 5 s: its pods answer nothing from then on (every
// failure a timeout, none refused or reset), stay Ready and routed until
// the node controller's grace ends (NotReady at 55 s, the endpoints not
// ready just after), and no kubelet reports an exit or signals the app,
// even once the taint manager deleted them. Their replacements on the
// other node serve.
func TestWorldPowerOff(t *testing.T) {
	w := NewWorld()
	fleet(w, wellBehaved)
	lost, repl := w.NodeLoss(S(5), "node-1", S(10), "node-2")
	require.Len(t, lost, 2)
	require.Len(t, repl, 2)
	s := w.Run(gatewayClient(0, S(80)), serviceClient(0, S(80))).Snapshot()

	late := 0
	for _, kind := range []timeline.ClientKind{timeline.ClientGateway, timeline.ClientService} {
		bad := failed(s, kind)
		require.NotEmpty(t, bad, "%s: requests to the dead pods fail", kind)
		assert.Equal(t, map[timeline.ErrorKind]int{timeline.ErrTimeout: len(bad)}, byKind(bad), "%s: nothing answers, so every failure is a timeout", kind)
		for _, r := range bad {
			assert.GreaterOrEqual(t, r.End(), S(5))
			if kind == timeline.ClientGateway {
				assert.Less(t, r.Offset, S(57), "the gateway routes around the pods once their endpoints are gone")
			} else if r.Offset > S(57) {
				late++
			}
		}
	}
	// Through the Service, a connection whose port matches a NAT entry of an
	// earlier attempt still goes to a dead pod, after the endpoints' removal.
	assert.Positive(t, late, "stale NAT entries send some service connections to the dead pods")
	for _, p := range lost {
		l := lifecycle(t, s, p.Name)
		require.True(t, l.EndpointGone.Known)
		assert.InDelta(t, S(55).Seconds(), l.EndpointGone.At.Seconds(), 0.2, "not ready when the node is noticed")
		assert.True(t, l.DeletionRequested.Known)
		assert.InDelta(t, S(65).Seconds(), l.DeletionRequested.At.Seconds(), 0.2, "deleted when its toleration ran out")
		assert.False(t, l.Exited.Known, "no kubelet reports its exit")
		_, signalled := appLog(s, p.Name, contract.MsgSIGTERM)
		assert.False(t, signalled)
	}
	var stopped, notReady bool
	for _, e := range s.Events {
		stopped = stopped || e.Kind == timeline.EvNodeStopped && e.Node == "node-1" && e.Offset == S(5)
		notReady = notReady || e.Kind == timeline.EvNodeNotReady && e.Node == "node-1"
	}
	assert.True(t, stopped && notReady)
	for _, p := range repl {
		l := lifecycle(t, s, p.Name)
		assert.Equal(t, "node-2", l.Node)
		assert.True(t, l.EndpointReady.Known, "the replacement %s serves", p.Name)
	}
}
