//go:build !unix

package hostroute

import (
	"context"
	"fmt"
	"os"
)

// lockDir only makes sure the directory exists: host routes are Linux-only
// (Available says so), and nothing here changes routes concurrently.
func lockDir(ctx context.Context, dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("hostroute: %w", err)
	}
	return func() {}, nil
}
