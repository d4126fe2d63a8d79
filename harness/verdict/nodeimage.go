package verdict

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kube-rehearse/rehearse/harness/nodeinfo"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// A node-image upgrade can break an app on the new nodes only: their
// resolver, cgroup version or kernel differ, while everything else about
// the pods is the same. Failures that follow the image are told apart from
// the upgrade's usual harm (evictions, endpoint lag) by comparing the pods
// on nodes of an image the cluster did not run when the rehearsal began
// with the pods on nodes of the images it did.

// imageAt is one node's image from an offset on (a node reimaged in place
// keeps its name and gets a new image).
type imageAt struct {
	from  time.Duration
	image string
}

// nodeImages reads each node's image history from the timeline: the state
// found at the start and every node added since.
func nodeImages(events []timeline.Event) (history map[string][]imageAt, initial map[string]bool) {
	history, initial = map[string][]imageAt{}, map[string]bool{}
	for i := range events {
		e := &events[i]
		if e.Node == "" || (!e.Initial() && e.Kind != timeline.EvNodeAdded) {
			continue
		}
		info, ok := nodeinfo.Parse(e.Detail)
		if !ok || info.Image == "" {
			continue
		}
		if e.Initial() {
			initial[info.Image] = true
		}
		history[e.Node] = append(history[e.Node], imageAt{from: e.Offset, image: info.Image})
	}
	return history, initial
}

// imageOfPod is the image of the pod's node when the pod appeared.
func imageOfPod(history map[string][]imageAt, p *timeline.PodLifecycle) string {
	img := ""
	for _, h := range history[p.Node] {
		if h.from <= p.FirstSeen {
			img = h.image
		}
	}
	if img == "" && len(history[p.Node]) > 0 {
		img = history[p.Node][0].image
	}
	return img
}

// imageTally counts one side's requests.
type imageTally struct {
	images       map[string]bool
	sent, failed int
}

func (t *imageTally) add(image string, ok bool) {
	t.images[image] = true
	t.sent++
	if !ok {
		t.failed++
	}
}

func (t *imageTally) rate() float64 {
	if t.sent == 0 {
		return 0
	}
	return float64(t.failed) / float64(t.sent)
}

func (t *imageTally) names() string { return strings.Join(slices.Sorted(maps.Keys(t.images)), ", ") }

// nodeImageEvidence says, when it is so, that the client's failures in the
// window followed the node image: pods on nodes of a new image failed at
// least half of the client's requests they got (at least 10), pods on
// nodes of the images the cluster began with failed at most a tenth as
// often. ok is false otherwise, and when no node of a new image served.
func (a *analysis) nodeImageEvidence(w *window, client timeline.ClientKind) (Evidence, bool) {
	history, initial := nodeImages(a.s.Events)
	if len(initial) == 0 {
		return Evidence{}, false
	}
	fresh := imageTally{images: map[string]bool{}}
	old := imageTally{images: map[string]bool{}}
	first, last := timeline.Forever, time.Duration(0)
	for i := range a.s.Requests {
		r := &a.s.Requests[i]
		if r.Client != client || !w.contains(r.Offset) || r.Err == timeline.ErrClient {
			continue
		}
		p := a.podOf(r)
		if p == nil {
			continue
		}
		img := imageOfPod(history, p)
		switch {
		case img == "":
		case initial[img]:
			old.add(img, r.OK())
		default:
			fresh.add(img, r.OK())
			if !r.OK() {
				first, last = min(first, r.Offset), max(last, r.Offset)
			}
		}
	}
	if fresh.failed < 10 || fresh.rate() < 0.5 || old.rate()*10 > fresh.rate() {
		return Evidence{}, false
	}
	text := fmt.Sprintf("the failures follow the node image: pods on nodes of the new image %s failed %d of %d requests (%s)",
		fresh.names(), fresh.failed, fresh.sent, pct(fresh.rate()))
	if old.sent > 0 {
		text += fmt.Sprintf(", pods on nodes of the image the cluster began with (%s) %d of %d (%s)", old.names(), old.failed, old.sent, pct(old.rate()))
	}
	text += ": the new image changed something the app depends on"
	return Evidence{At: first, Until: last, Count: fresh.failed, Text: text}, true
}

// imageQuery and imageAnswer memoize nodeImageEvidence.
type imageQuery struct {
	w      *window
	client timeline.ClientKind
}

type imageAnswer struct {
	ev Evidence
	ok bool
}

// failuresFollowImage is nodeImageEvidence for the client of the failed
// requests (a check's failures are one client's), worked out once per
// window and client.
func (a *analysis) failuresFollowImage(w *window, failed []int) (Evidence, bool) {
	if len(failed) == 0 {
		return Evidence{}, false
	}
	q := imageQuery{w: w, client: a.s.Requests[failed[0]].Client}
	ans, done := a.imageMemo[q]
	if !done {
		if a.imageMemo == nil {
			a.imageMemo = map[imageQuery]imageAnswer{}
		}
		ans.ev, ans.ok = a.nodeImageEvidence(w, q.client)
		a.imageMemo[q] = ans
	}
	return ans.ev, ans.ok
}
