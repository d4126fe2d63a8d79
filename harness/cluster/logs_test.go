package cluster

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	kinderrors "sigs.k8s.io/kind/pkg/errors"
	kindexec "sigs.k8s.io/kind/pkg/exec"
)

func TestWithoutCrictlKeepsEveryOtherFailure(t *testing.T) {
	crictl := &kindexec.RunError{Command: []string{"docker", "exec", "--privileged", "w1", "crictl", "images"}, Inner: errors.New("exit status 127")}
	journal := &kindexec.RunError{Command: []string{"docker", "exec", "--privileged", "w1", "journalctl", "--no-pager"}, Inner: errors.New("exit status 1")}
	disk := errors.New("no space left on device")

	assert.Nil(t, withoutCrictl(nil))
	assert.Empty(t, withoutCrictl(kinderrors.NewAggregate([]error{crictl, crictl})), "only crictl failed: the export succeeded")
	assert.Equal(t, []error{journal, disk}, withoutCrictl(kinderrors.NewAggregate([]error{crictl, kinderrors.NewAggregate([]error{journal, disk})})))
	assert.Equal(t, []error{disk}, withoutCrictl(disk), "a plain error is kept")
	assert.Empty(t, withoutCrictl(kinderrors.Wrap(crictl, "collecting")), "wrapped by kind")
}
