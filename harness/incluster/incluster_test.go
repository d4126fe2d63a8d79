package incluster

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
)

func TestNewChecksEverythingAtOnce(t *testing.T) {
	_, err := New(nil, nil, Options{Pods: 60, Rate: 1})
	require.Error(t, err)
	for _, want := range []string{"no Kubernetes client", "namespace and an http URL", "pods 60", "rate 1 over 60 pods", "duration"} {
		assert.Contains(t, err.Error(), want)
	}
}

func TestTheJobSplitsTheRateAndPrefersTheControlPlane(t *testing.T) {
	l, err := New(fake.NewSimpleClientset(), &rest.Config{}, Options{Namespace: "shop", Target: "http://web.shop.svc.cluster.local:80/",
		Pods: 3, Rate: 100, Duration: time.Minute})
	require.NoError(t, err)
	assert.Equal(t, 99, l.Rate(), "33 each")
	j := l.job()
	assert.Equal(t, int32(3), *j.Spec.Parallelism)
	c := j.Spec.Template.Spec.Containers[0]
	assert.Equal(t, Image, c.Image)
	assert.Equal(t, []string{Program, "-target", "http://web.shop.svc.cluster.local:80/", "-rate", "33", "-duration", "1m0s"}, c.Command)
	assert.NotNil(t, j.Spec.Template.Spec.Affinity.NodeAffinity)
	assert.Contains(t, l.String(), "33 rps each (99 in all)")

	t.Setenv(SkewEnv, "5s")
	j = l.job()
	assert.Equal(t, "5s", j.Spec.Template.Spec.Containers[0].Env[2].Value, "the skew of a test reaches the pods")
	assert.WithinDuration(t, time.Now().Add(5*time.Second), PodClock(time.Now()), time.Second)
}

func TestArrivalsReadLinesAsTheyCome(t *testing.T) {
	a := &arrivals{}
	_, _ = a.Write([]byte("1796628292027041541\n17966"))
	_, _ = a.Write([]byte("28292047041541\n"))
	require.Len(t, a.readings, 2)
	assert.Equal(t, int64(1796628292047041541), a.readings[1].pod.UnixNano())
	assert.Equal(t, "its clock is 3.001s behind this machine's (measured to within 220ms)", ClockText(-3001*time.Millisecond, 220*time.Millisecond))
}
