package timeline

import "time"

// ForgetRequestsBefore drops stored requests sent before off, a whole chunk
// at a time (a chunk goes when all its requests are older), and returns how
// many went. A timeline that records for hours (`rehearse watch`) keeps
// memory bounded this way; events, few and needed to know what the cluster
// looked like, are kept. The running tallies are not changed.
func (t *Timeline) ForgetRequestsBefore(off time.Duration) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for len(t.chunks) > 1 || (len(t.chunks) == 1 && len(t.chunks[0]) == chunkSize) {
		c := t.chunks[0]
		newest := c[0].off
		for i := range c {
			newest = max(newest, c[i].off)
		}
		if newest >= off {
			break
		}
		n += len(c)
		t.chunks[0] = nil
		t.chunks = t.chunks[1:]
	}
	t.nreq -= n
	t.forgotten += n
	return n
}

// Window is the part of a snapshot from one offset to another as a
// timeline of its own, which starts at from: its requests are those sent in
// [from, to); its events those before to, the ones before from placed at
// its start (they say what the cluster looked like when the window opened:
// which pods and endpoints existed, which nodes were cordoned), except the
// kinds that only describe a moment (notes, watch lag, app log lines,
// resource samples, phases and actions), which are left out.
func Window(s *Snapshot, from, to time.Duration) *Timeline {
	w := New(s.Start.Add(from))
	for k, v := range s.Meta {
		w.SetMeta(k, v)
	}
	for _, r := range s.RequestsIn(from, to) {
		r.Offset -= from
		w.AddRequest(r)
	}
	for _, e := range s.Events {
		if e.Offset >= to {
			break
		}
		if e.Offset < from {
			if momentary(e.Kind) {
				continue
			}
			e.Offset = from
		}
		e.Offset -= from
		w.AddEvent(e)
	}
	return w
}

func momentary(k EventKind) bool {
	switch k {
	case EvNote, EvWatchLag, EvAppLog, EvResourceSample, EvPhaseStart, EvPhaseEnd, EvActionStart, EvActionEnd:
		return true
	}
	return false
}
