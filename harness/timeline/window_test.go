package timeline

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWindowCutsAndKeepsTheStateBeforeIt(t *testing.T) {
	start := time.Now()
	tl := New(start)
	for i := range 100 {
		tl.AddRequest(Request{Offset: time.Duration(i) * time.Second, Client: ClientService, Code: 200})
	}
	tl.AddEvent(Event{Offset: 5 * time.Second, Kind: EvEndpointAdded, IP: "10.0.0.1", Pod: "web-1"})
	tl.AddEvent(Event{Offset: 6 * time.Second, Kind: EvWatchLag, Value: time.Millisecond})
	tl.AddEvent(Event{Offset: 50 * time.Second, Kind: EvNodeCordoned, Node: "w1"})
	tl.AddEvent(Event{Offset: 95 * time.Second, Kind: EvNodeDeleted, Node: "w1"})
	tl.SetMeta("service", "web")
	s := tl.Snapshot()

	w := Window(&s, 40*time.Second, 90*time.Second)
	ws := w.Snapshot()
	assert.Equal(t, start.Add(40*time.Second), ws.Start)
	require.Len(t, ws.Requests, 50)
	assert.Equal(t, time.Duration(0), ws.Requests[0].Offset)
	assert.Equal(t, 49*time.Second, ws.Requests[49].Offset)
	require.Len(t, ws.Events, 2, "the endpoint (state, at the start) and the cordon; not the lag, nor what came after")
	assert.Equal(t, EvEndpointAdded, ws.Events[0].Kind)
	assert.Equal(t, time.Duration(0), ws.Events[0].Offset)
	assert.Equal(t, 10*time.Second, ws.Events[1].Offset)
	assert.Equal(t, "web", ws.Meta["service"])
}

func TestForgetRequestsBeforeDropsWholeOldChunks(t *testing.T) {
	tl := New(time.Now())
	for i := range 3*chunkSize + 10 {
		tl.AddRequest(Request{Offset: time.Duration(i) * time.Millisecond, Client: ClientGateway})
	}
	assert.Equal(t, 0, tl.ForgetRequestsBefore(time.Duration(chunkSize-1)*time.Millisecond), "the first chunk holds a newer one")
	assert.Equal(t, 2*chunkSize, tl.ForgetRequestsBefore(time.Duration(2*chunkSize+5)*time.Millisecond))
	n, _ := tl.Len()
	assert.Equal(t, chunkSize+10, n)
	s := tl.Snapshot()
	assert.Equal(t, time.Duration(2*chunkSize)*time.Millisecond, s.Requests[0].Offset)
	assert.Equal(t, chunkSize, tl.ForgetRequestsBefore(time.Hour), "the chunk being filled stays")
	n, _ = tl.Len()
	assert.Equal(t, 10, n)
	assert.Equal(t, 3*chunkSize+10, tl.Tally(ClientGateway).Sent)
}

func TestRequestsSinceFollowsALiveTimeline(t *testing.T) {
	tl := New(time.Now())
	add := func(from, to int) {
		for i := from; i < to; i++ {
			tl.AddRequest(Request{Offset: time.Duration(i) * time.Millisecond, Code: i})
		}
	}
	add(0, 10)
	got, n := tl.RequestsSince(0)
	require.Len(t, got, 10)
	assert.Equal(t, 10, n)
	add(10, 2*chunkSize+3)
	got, n = tl.RequestsSince(n)
	require.Len(t, got, 2*chunkSize-7)
	assert.Equal(t, 10, got[0].Code)
	assert.Equal(t, 2*chunkSize+3, n)
	tl.ForgetRequestsBefore(time.Hour)
	add(2*chunkSize+3, 2*chunkSize+5)
	got, n = tl.RequestsSince(n)
	assert.Equal(t, []int{2*chunkSize + 3, 2*chunkSize + 4}, []int{got[0].Code, got[1].Code}, "counts survive forgetting")
	assert.Equal(t, 2*chunkSize+5, n)
	got, _ = tl.RequestsSince(0)
	assert.Len(t, got, 5, "what was forgotten is skipped")
}
