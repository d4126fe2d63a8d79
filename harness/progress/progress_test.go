package progress_test

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/kube-rehearse/rehearse/harness/progress"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// syncBuffer is a buffer the progress goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func busyTimeline() *timeline.Timeline {
	tl := timeline.New(time.Now().Add(-70 * time.Second))
	tl.BeginPhaseAt("fault", 5*time.Second)
	tl.AddEvent(timeline.Event{Offset: 6 * time.Second, Kind: timeline.EvActionStart, Name: "upgrade 2 nodes in batches of 1"})
	tl.AddEvent(timeline.Event{Offset: 7 * time.Second, Kind: timeline.EvDrainStarted, Node: "rehearse-worker2"})
	for i := 0; i < 40; i++ {
		r := timeline.Request{Offset: time.Duration(i) * time.Second, Client: timeline.ClientGateway, Code: 200}
		if i%10 == 0 {
			r.Err, r.Code = timeline.ErrReset, 0
		}
		tl.AddRequest(r)
	}
	return tl
}

func TestLiveLineOnATerminal(t *testing.T) {
	var out syncBuffer
	yes := true
	p := progress.Start(&out, busyTimeline(), progress.Options{Terminal: &yes})
	time.Sleep(1200 * time.Millisecond)
	fmt.Fprintln(p.Writer(), "  a status line")
	time.Sleep(600 * time.Millisecond)
	p.Stop()
	s := out.String()
	assert.Contains(t, s, "\r\x1b[K", "the line is redrawn in place")
	assert.Contains(t, s, "fault 1m0")
	assert.Contains(t, s, "gateway")
	assert.Contains(t, s, "4 failed of 40")
	assert.Contains(t, s, "upgrade 2 nodes in batches of 1 (")
	assert.Contains(t, s, "draining rehearse-worker2 (")
	assert.Contains(t, s, "\r\x1b[K  a status line\n", "a status line clears the live line first")
	assert.True(t, strings.HasSuffix(s, "\r\x1b[K"), "Stop leaves no live line behind: %q", s[max(0, len(s)-40):])
}

func TestPlainLinesElsewhere(t *testing.T) {
	var out syncBuffer
	no := false
	p := progress.Start(&out, busyTimeline(), progress.Options{Terminal: &no, Every: 300 * time.Millisecond})
	time.Sleep(800 * time.Millisecond)
	fmt.Fprintln(p.Writer(), "  a status line")
	p.Stop()
	s := out.String()
	assert.NotContains(t, s, "\r", "no redraws in a log")
	assert.NotContains(t, s, "\x1b")
	assert.Contains(t, s, "  progress: fault ")
	assert.Contains(t, s, "  a status line\n")
}
