package journal

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSelfIsThisProcess(t *testing.T) {
	o := self(time.Now())
	host, err := os.Hostname()
	require.NoError(t, err)
	assert.Equal(t, host, o.Host)
	assert.Equal(t, os.Getpid(), o.PID)
	assert.True(t, strings.HasPrefix(HostID(), host+"/"), HostID())
	assert.Equal(t, host+"/"+o.BootID, HostID())
	// From /proc: this test process started before now, and not long ago.
	assert.WithinDuration(t, time.Now(), o.Started, time.Hour)
	assert.False(t, o.Started.After(time.Now()))
	p, err := readProc(os.Getpid())
	require.NoError(t, err)
	assert.WithinDuration(t, o.Started, p.started, sameStartSlack)
}

func TestReadProcOfAnExitedProcess(t *testing.T) {
	_, err := readProc(deadOwner(t).PID)
	assert.ErrorIs(t, err, errNoProc)
	_, err = readProc(0)
	assert.ErrorIs(t, err, errNoProc)
}

func TestJudge(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	ci := Owner{Host: "ci-7", BootID: "b", PID: 1234}
	cases := []struct {
		name      string
		o         Owner
		heartbeat time.Time
		closed    time.Time
		gone      bool
		why       string
	}{
		{"fresh heartbeat", ci, now.Add(-5 * time.Second), time.Time{}, false, "owner pid 1234 on host ci-7 sent a heartbeat 5s ago"},
		{"stale heartbeat", ci, now.Add(-130 * time.Second), time.Time{}, true, "no heartbeat from host ci-7 (pid 1234) for 2m10s"},
		{"just inside the window", ci, now.Add(-30 * time.Second), time.Time{}, false, "owner pid 1234 on host ci-7 sent a heartbeat 30s ago"},
		{"never beat", ci, time.Time{}, time.Time{}, true, "no heartbeat was ever recorded by pid 1234 on host ci-7"},
		{"closed", ci, now, now.Add(-time.Minute), true, "closed by its owner (pid 1234 on host ci-7) at 2026-11-23T11:59:00Z with changes not undone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := judge(c.o, c.heartbeat, c.closed, now, DefaultStaleAfter)
			assert.Equal(t, c.gone, j.gone)
			assert.Equal(t, c.why, j.why)
		})
	}
}

func TestAnOwnerInAnotherPIDNamespaceIsJudgedByItsHeartbeat(t *testing.T) {
	// A container on this machine: same kernel, maybe the same host name,
	// but its pid 1 is not ours.
	o := self(time.Now())
	if o.PIDNamespace == "" {
		t.Skip("no /proc/self/ns/pid")
	}
	o.PIDNamespace = "pid:[1]"
	o.PID = deadOwner(t).PID
	now := time.Now()
	assert.False(t, judge(o, now, time.Time{}, now, DefaultStaleAfter).gone)
}
