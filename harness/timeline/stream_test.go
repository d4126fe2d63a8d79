package timeline

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestAStreamReadsBackAsItWasWritten(t *testing.T) {
	start := time.Date(2026, 12, 7, 6, 0, 0, 123, time.UTC)
	var buf bytes.Buffer
	buf.WriteString("a line the program logged first\n")
	sw, err := NewStreamWriter(&buf, start, map[string]string{"pod": "load-1"})
	require.NoError(t, err)
	reqs := []Request{
		{Offset: time.Millisecond, Latency: 2 * time.Millisecond, Code: 200, Client: ClientInCluster, Pod: "web-1", Via: ViaHeaders},
		{Offset: 3 * time.Millisecond, Latency: time.Second, Err: ErrRefused, ErrText: "connect: connection refused", Client: ClientInCluster},
	}
	require.NoError(t, sw.Requests(reqs))
	require.NoError(t, sw.Event(Event{Offset: 5 * time.Millisecond, Kind: EvNote, Detail: "done"}))

	var gotStart time.Time
	var gotMeta map[string]string
	var got []Request
	var evs []Event
	require.NoError(t, ReadStream(&buf, Stream{
		Header:  func(s time.Time, m map[string]string) error { gotStart, gotMeta = s, m; return nil },
		Request: func(r Request) { got = append(got, r) },
		Event:   func(e Event) { evs = append(evs, e) },
	}))
	assert.True(t, start.Equal(gotStart))
	assert.Equal(t, "load-1", gotMeta["pod"])
	assert.Equal(t, reqs, got)
	require.Len(t, evs, 1)
	assert.Equal(t, "done", evs[0].Detail)

	assert.Error(t, ReadStream(bytes.NewBufferString("no header here\n"), Stream{}))
}
