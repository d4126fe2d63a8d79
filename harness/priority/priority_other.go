//go:build !linux

package priority

import "errors"

// Raise is available on Linux only.
func Raise() (*Raised, error) {
	return nil, errors.New("raising the scheduling priority is implemented for Linux only")
}
