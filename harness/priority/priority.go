// Package priority lets the rehearsal's own process (the load generator and
// the observer: the instruments) outrank the cluster it measures for the CPU.
//
// On a small machine the kind nodes share the CPUs with the load generator.
// When they are busy (a control-plane upgrade restarts etcd and the API
// server, images are imported) the generator can stall for most of a second;
// the verdict then rightly says "cannot judge" (a blind spot). Giving the
// instruments a higher scheduling priority than the cluster keeps them
// measuring: the cluster still gets every cycle they do not use.
//
// Linux schedules by autogroup (one per session, when the kernel enables
// it) before it looks at a thread's nice value, so both are raised. Lowering
// a nice value needs CAP_SYS_NICE (root); without it Raise reports why and
// changes nothing.
package priority

// Nice is the nice value Raise sets: high enough to win a contended CPU
// (a nice -10 entity weighs about 9 times a nice 0 one), far from the
// real-time range.
const Nice = -10

// Raised is what Raise changed; Restore puts it back.
type Raised struct {
	// Detail says what was raised, for the rehearsal's log.
	Detail  string
	restore func()
}

// Restore sets the priorities back to what they were before Raise.
func (r *Raised) Restore() {
	if r != nil && r.restore != nil {
		r.restore()
		r.restore = nil
	}
}
