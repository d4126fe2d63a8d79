// Package incluster runs the load from inside the cluster: a Job of pods,
// each running the harness's own generator (cmd/rehearse-load, an image
// built here without a registry) against the app's Service at its cluster
// address. It is for clusters whose nodes this machine cannot reach (a
// staging cluster in a private network) and for rates one machine cannot
// send.
//
// Each pod writes its results, as they come, to its log in the
// saved-timeline format; the client follows the logs and places every
// result on the rehearsal's timeline at this machine's time. A pod's clock
// may differ from this machine's: before following it, the client has the
// pod print its clock a few times through the API server (an exec) and
// notes when each line arrives; the difference is subtracted from every
// time the pod reports, and written on the timeline with its bound.
package incluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/kube-rehearse/rehearse/fixtures/ociimage"
	"github.com/kube-rehearse/rehearse/harness/load"
	"github.com/kube-rehearse/rehearse/harness/podexec"
	"github.com/kube-rehearse/rehearse/harness/timeline"
)

// Image is the reference the generator's image is loaded under in kind
// nodes (a fixed tag: the kubelet never pulls it). On a cluster that pulls
// from a registry, push the archive (BuildArchive) there and give its
// reference in Options.Image.
const Image = "rehearse.local/rehearse-load:v1"

// The generator's program: its path in the image, its clock subcommand,
// the note it ends its stream with, and the environment variable that
// skews the clock it reports (a test of the correction: set in this
// process's environment, it is passed to the pods).
const (
	Program      = "/rehearse-load"
	ClockCommand = "clock"
	NoteDone     = "in-cluster-load-done"
	SkewEnv      = "REHEARSE_LOAD_CLOCK_SKEW"
	container    = "load"
	// ClockReadings is how many readings `rehearse-load clock` prints,
	// ClockEvery apart.
	ClockReadings = 10
	ClockEvery    = 20 * time.Millisecond
)

// PodClock is the time a generator reports for now: the pod's clock, moved
// by $REHEARSE_LOAD_CLOCK_SKEW when set.
func PodClock(now time.Time) time.Time {
	if d, err := time.ParseDuration(os.Getenv(SkewEnv)); err == nil {
		return now.Add(d)
	}
	return now
}

// BuildArchive compiles cmd/rehearse-load from the checkout at moduleRoot
// and writes its image as a docker-archive in dir.
func BuildArchive(ctx context.Context, moduleRoot, dir string) (string, error) {
	return ociimage.GoProgram(ctx, moduleRoot, "./cmd/rehearse-load", Image, dir)
}

// MaxPods bounds the generator pods of one in-cluster load.
const MaxPods = 50

// Options describe the in-cluster load.
type Options struct {
	Namespace string // where the Job runs (the app's)
	Name      string // the Job's name (default rehearse-load)
	// Target is the URL the pods send to: the app's Service by its cluster
	// address (http://web.shop.svc.cluster.local:80/).
	Target   string
	Pods     int           // how many generator pods (default 1)
	Rate     int           // requests per second of all pods together, split evenly
	Duration time.Duration // each pod stops sending after this long at most
	Image    string        // default Image
	// NodeSelector places the pods. Without one they prefer control-plane
	// nodes (kind's; they are never drained by an upgrade) and otherwise
	// go where the scheduler puts them: a pod on a drained node is evicted
	// and its share of the load stops (the load check then says so).
	NodeSelector map[string]string
}

// Load is one in-cluster load run, a client like load.Generator.
type Load struct {
	client kubernetes.Interface
	rest   *rest.Config
	o      Options
	perPod int

	mu       sync.Mutex
	acc      load.Accumulator
	streams  sync.WaitGroup
	stopping bool
	stopped  string
	err      error
}

// New checks the options and returns a Load; nothing is created until
// Start.
func New(client kubernetes.Interface, cfg *rest.Config, o Options) (*Load, error) {
	if o.Pods == 0 {
		o.Pods = 1
	}
	if o.Name == "" {
		o.Name = "rehearse-load"
	}
	if o.Image == "" {
		o.Image = Image
	}
	var errs []error
	if client == nil || cfg == nil {
		errs = append(errs, errors.New("no Kubernetes client"))
	}
	if o.Namespace == "" || !strings.HasPrefix(o.Target, "http") {
		errs = append(errs, fmt.Errorf("the in-cluster load needs a namespace and an http URL to send to (got %q in %q)", o.Target, o.Namespace))
	}
	if o.Pods < 1 || o.Pods > MaxPods {
		errs = append(errs, fmt.Errorf("in-cluster load pods %d: use 1 to %d", o.Pods, MaxPods))
	}
	if o.Rate < o.Pods || o.Rate > o.Pods*load.MaxRate {
		errs = append(errs, fmt.Errorf("in-cluster rate %d over %d pods: give each pod 1 to %d requests per second", o.Rate, o.Pods, load.MaxRate))
	}
	if o.Duration <= 0 {
		errs = append(errs, errors.New("the in-cluster load needs a duration"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("incluster: %w", err)
	}
	l := &Load{client: client, rest: cfg, o: o, perPod: o.Rate / o.Pods}
	l.acc.Rate = l.perPod * o.Pods
	return l, nil
}

// Kind is timeline.ClientInCluster.
func (l *Load) Kind() timeline.ClientKind { return timeline.ClientInCluster }

// Rate is what all pods send together.
func (l *Load) Rate() int { return l.perPod * l.o.Pods }

func (l *Load) String() string {
	return fmt.Sprintf("in-cluster: %d %s of Job %s/%s, GET %s at %d rps each (%d in all) for %v (new connection per request; results through the pods' logs)",
		l.o.Pods, plural(l.o.Pods, "pod", "pods"), l.o.Namespace, l.o.Name, l.o.Target, l.perPod, l.Rate(), l.o.Duration)
}

// Start creates the Job, waits until its pods run, measures each pod's
// clock and follows its log onto tl. An error leaves nothing behind.
func (l *Load) Start(ctx context.Context, tl *timeline.Timeline) error {
	jobs := l.client.BatchV1().Jobs(l.o.Namespace)
	_ = l.deleteJob(ctx) // one a killed run left
	if _, err := jobs.Create(ctx, l.job(), metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("in-cluster load: creating Job %s/%s: %w", l.o.Namespace, l.o.Name, err)
	}
	pods, err := l.running(ctx)
	if err != nil {
		_ = l.deleteJob(context.WithoutCancel(ctx))
		return err
	}
	for _, p := range pods {
		ahead, bound, err := l.clock(ctx, p.Name)
		if err != nil {
			_ = l.deleteJob(context.WithoutCancel(ctx))
			return fmt.Errorf("in-cluster load: reading pod %s's clock: %w", p.Name, err)
		}
		tl.Note(fmt.Sprintf("in-cluster load pod %s on node %s: %s; its results are placed at this machine's time",
			p.Name, p.Spec.NodeName, ClockText(ahead, bound)))
		l.streams.Add(1)
		go l.follow(context.WithoutCancel(ctx), tl, p.Name, ahead)
	}
	return nil
}

// Stop ends the load: the Job is deleted, its pods get SIGTERM, stop
// sending and write what is in flight before they exit.
func (l *Load) Stop() {
	l.mu.Lock()
	if l.stopping {
		l.mu.Unlock()
		return
	}
	l.stopping = true
	l.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := l.deleteJob(ctx); err != nil {
		l.mu.Lock()
		l.err = errors.Join(l.err, err)
		l.mu.Unlock()
	}
}

// Wait waits until every pod's log ended and returns what the pods did.
func (l *Load) Wait() (load.Summary, error) {
	done := make(chan struct{})
	go func() { l.streams.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		l.mu.Lock()
		l.err = errors.Join(l.err, errors.New("in-cluster load: a pod's log did not end within 2 minutes of the stop"))
		l.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.acc.Summary()
	s.Name, s.Target, s.Stopped = "in-cluster", l.o.Target, load.StoppedByStop
	return s, l.err
}

// follow reads one pod's log until it ends.
func (l *Load) follow(ctx context.Context, tl *timeline.Timeline, pod string, ahead time.Duration) {
	defer l.streams.Done()
	var podStart time.Time
	// The log is followed again if the stream breaks before the pod is
	// done (an API server restart): records already read are skipped.
	seen := 0
	for attempt := 0; attempt < 5; attempt++ {
		stream, err := l.client.CoreV1().Pods(l.o.Namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		n, done := 0, false
		err = timeline.ReadStream(stream, timeline.Stream{
			Header: func(start time.Time, _ map[string]string) error { podStart = start; return nil },
			Request: func(r timeline.Request) {
				n++
				if n <= seen {
					return
				}
				seen = n
				// The pod's time of sending, at this machine's clock.
				r.Offset = tl.Since(podStart.Add(r.Offset).Add(-ahead))
				r.Client = timeline.ClientInCluster
				tl.AddRequest(r)
				l.mu.Lock()
				l.acc.Add(&r)
				l.mu.Unlock()
			},
			Event: func(e timeline.Event) {
				if e.Name == NoteDone {
					done = true
					tl.Note(fmt.Sprintf("in-cluster load pod %s: %s", pod, e.Detail))
				}
			},
		})
		stream.Close()
		if done {
			return
		}
		l.mu.Lock()
		stopping := l.stopping
		l.mu.Unlock()
		if p, gerr := l.client.CoreV1().Pods(l.o.Namespace).Get(ctx, pod, metav1.GetOptions{}); gerr != nil || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			why := "its log ended before it said it was done"
			if err != nil {
				why += ": " + err.Error()
			}
			if !stopping {
				tl.Note(fmt.Sprintf("in-cluster load pod %s ended early (%s): evicted or deleted; its share of the load stopped", pod, why))
			}
			return
		}
		time.Sleep(time.Second)
	}
	tl.Note(fmt.Sprintf("in-cluster load pod %s: its log could not be followed to the end", pod))
}

// clock measures how far the pod's clock is ahead of this machine's. The
// pod prints its clock a few times, a little apart, and each line's
// arrival here is noted: a reading T that arrived at R was taken no later
// than R, so the pod is at least T-R ahead; the largest of these (the
// line that came back fastest) is the estimate. It is at most the first
// reading minus the moment the exec was sent: bound is the difference, how
// much later than estimated the pod's clock might be.
func (l *Load) clock(ctx context.Context, pod string) (ahead, bound time.Duration, err error) {
	lower, upper := time.Duration(math.MinInt64), time.Duration(math.MaxInt64)
	for try := 0; try < 2; try++ {
		ectx, cancel := context.WithTimeout(ctx, 20*time.Second)
		w := &arrivals{}
		sent := time.Now()
		err := podexec.Run(ectx, l.client, l.rest, l.o.Namespace, pod, container, w, Program, ClockCommand)
		cancel()
		if err != nil {
			return 0, 0, err
		}
		if len(w.readings) == 0 {
			return 0, 0, fmt.Errorf("the pod printed no clock reading (%q)", w.partial)
		}
		for i, r := range w.readings {
			lower = max(lower, r.pod.Sub(r.arrived))
			if i == 0 {
				upper = min(upper, r.pod.Sub(sent))
			}
		}
	}
	return lower, max(upper-lower, 0), nil
}

// ClockText says how far a pod's clock is from this machine's.
func ClockText(ahead, bound time.Duration) string {
	a, dir := ahead.Round(time.Millisecond), "ahead of"
	if a < 0 {
		a, dir = -a, "behind"
	}
	return fmt.Sprintf("its clock is %s %s this machine's (measured to within %s)", a, dir, bound.Round(time.Millisecond))
}

type reading struct{ pod, arrived time.Time }

// arrivals notes when each line of the pod's clock readings arrived.
type arrivals struct {
	partial  []byte
	readings []reading
}

func (a *arrivals) Write(b []byte) (int, error) {
	now := time.Now()
	a.partial = append(a.partial, b...)
	for {
		i := bytes.IndexByte(a.partial, '\n')
		if i < 0 {
			return len(b), nil
		}
		if ns, err := strconv.ParseInt(strings.TrimSpace(string(a.partial[:i])), 10, 64); err == nil {
			a.readings = append(a.readings, reading{pod: time.Unix(0, ns), arrived: now})
		}
		a.partial = a.partial[i+1:]
	}
}

// running waits until the Job's pods run, and says why if they do not.
func (l *Load) running(ctx context.Context) ([]corev1.Pod, error) {
	var pods []corev1.Pod
	why := "not created yet"
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := l.client.CoreV1().Pods(l.o.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + l.o.Name})
		if err != nil {
			why = err.Error()
			return false, nil
		}
		pods = pods[:0]
		for _, p := range list.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			switch {
			case p.Status.Phase == corev1.PodRunning:
				pods = append(pods, p)
			case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
				return false, fmt.Errorf("pod %s ended before the load began (%s): see kubectl logs -n %s %s", p.Name, p.Status.Phase, p.Namespace, p.Name)
			default:
				why = "pod " + p.Name + " " + waitingReason(&p)
			}
		}
		return len(pods) == l.o.Pods, nil
	})
	if err != nil {
		return nil, fmt.Errorf("in-cluster load: its %d pods did not run within 3 minutes (%s): %w", l.o.Pods, why, err)
	}
	return pods, nil
}

func waitingReason(p *corev1.Pod) string {
	for _, c := range p.Status.ContainerStatuses {
		if w := c.State.Waiting; w != nil && w.Reason != "" {
			if w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff" {
				return w.Reason + ": the cluster cannot pull " + c.Image + " (push the generator's image to its registry and name it)"
			}
			return w.Reason
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue {
			return "not scheduled: " + c.Message
		}
	}
	return string(p.Status.Phase)
}

func (l *Load) deleteJob(ctx context.Context) error {
	fg := metav1.DeletePropagationForeground
	err := l.client.BatchV1().Jobs(l.o.Namespace).Delete(ctx, l.o.Name, metav1.DeleteOptions{PropagationPolicy: &fg})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("in-cluster load: deleting Job %s/%s: %w", l.o.Namespace, l.o.Name, err)
	}
	return nil
}

// job is the generator's Job: its pods run once, each at its share of the
// rate, and stop by themselves after the duration.
func (l *Load) job() *batchv1.Job {
	n := int32(l.o.Pods)
	backoff := int32(0)
	grace := int64(15)
	env := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "NODE_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}},
	}
	if v := os.Getenv(SkewEnv); v != "" {
		env = append(env, corev1.EnvVar{Name: SkewEnv, Value: v})
	}
	spec := corev1.PodSpec{
		RestartPolicy:                 corev1.RestartPolicyNever,
		TerminationGracePeriodSeconds: &grace,
		NodeSelector:                  l.o.NodeSelector,
		Containers: []corev1.Container{{
			Name: container, Image: l.o.Image, ImagePullPolicy: corev1.PullIfNotPresent,
			Command: []string{Program, "-target", l.o.Target, "-rate", strconv.Itoa(l.perPod), "-duration", l.o.Duration.String()},
			Env:     env,
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
		}},
	}
	if len(l.o.NodeSelector) == 0 {
		spec.Tolerations = []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{
			Weight: 100, Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{
				Key: "node-role.kubernetes.io/control-plane", Operator: corev1.NodeSelectorOpExists}}}}}}}
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: l.o.Name, Namespace: l.o.Namespace, Labels: map[string]string{"app.kubernetes.io/name": "rehearse-load"}},
		Spec: batchv1.JobSpec{Parallelism: &n, Completions: &n, BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": "rehearse-load"}}, Spec: spec}},
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
