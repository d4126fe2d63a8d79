package main

import (
	"bytes"
	"context"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is written by the watcher's goroutine and read by the test.
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

func waitDone(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatalf("%s was not ended", what)
	}
}

func requireLive(t *testing.T, ctx context.Context, what string) {
	t.Helper()
	// Long enough for a wrongly delivered cancellation to show.
	time.Sleep(20 * time.Millisecond)
	require.NoError(t, ctx.Err(), "%s was ended", what)
}

func TestFirstInterruptEndsTheWorkSecondTheReverting(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	var log syncBuffer
	released := make(chan struct{})
	in := watchInterrupts(context.Background(), sigs, rehearsalInterrupts, &log, func() { close(released) })
	defer in.stop()

	requireLive(t, in.work, "the work")
	sigs <- os.Interrupt
	waitDone(t, in.work, "the work")
	requireLive(t, in.cleanup, "reverting")
	assert.Equal(t, "interrupted: stopping the load and reverting (interrupt again to stop reverting)\n", log.String())

	sigs <- syscall.SIGTERM
	waitDone(t, in.cleanup, "reverting")
	<-released // a third signal now ends the process the default way
	assert.Contains(t, log.String(), "interrupted again: stopped reverting; what is left is in the cluster's journal: run `rehearse restore`\n")
}

func TestSecondInterruptExitsWhenAsked(t *testing.T) {
	sigs := make(chan os.Signal, 1)
	exited := make(chan struct{})
	say := plainInterrupts
	say.exit = func() { close(exited) }
	in := watchInterrupts(context.Background(), sigs, say, &syncBuffer{}, func() {})
	defer in.stop()
	sigs <- os.Interrupt
	waitDone(t, in.work, "the work")
	sigs <- os.Interrupt
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the second interrupt did not exit")
	}
}

func TestStopEndsBothAndReleases(t *testing.T) {
	released := make(chan struct{})
	in := watchInterrupts(context.Background(), make(chan os.Signal), rehearsalInterrupts, &syncBuffer{}, func() { close(released) })
	in.stop()
	in.stop() // twice is harmless: deferred and explicit stops meet
	<-released
	require.Error(t, in.work.Err())
	require.Error(t, in.cleanup.Err())
}

// The real thing: the process interrupts itself while the handler is in
// place, twice, and survives both.
func TestRealSignals(t *testing.T) {
	var log syncBuffer
	in := notifyInterrupts(context.Background(), rehearsalInterrupts, &log)
	defer in.stop()
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGINT))
	waitDone(t, in.work, "the work")
	requireLive(t, in.cleanup, "reverting")
	require.NoError(t, syscall.Kill(os.Getpid(), syscall.SIGTERM))
	waitDone(t, in.cleanup, "reverting")
	assert.Contains(t, log.String(), "interrupted: stopping")
	assert.Contains(t, log.String(), "interrupted again: stopped reverting")
}
