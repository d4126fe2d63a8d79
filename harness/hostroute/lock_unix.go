//go:build unix

package hostroute

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockDir takes an exclusive lock on the record directory for one
// check-and-change: without it, two processes syncing two clusters with the
// same pod CIDR could both find no conflict and both add routes, and a
// Cleanup could rewrite a record a Sync is updating. flock is released by the
// kernel when the process dies, so a crash never leaves the directory locked.
func lockDir(ctx context.Context, dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("hostroute: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("hostroute: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("hostroute: locking %s: %w", f.Name(), err)
		}
		// Polled rather than blocking, so that ctx can end the wait.
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("hostroute: waiting for the lock on %s: %w", f.Name(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}
