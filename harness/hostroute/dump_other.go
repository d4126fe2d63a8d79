//go:build !linux

package hostroute

import "errors"

// errDumpInterrupted stands in for netlink's, which exists on Linux only;
// nothing returns it elsewhere.
var errDumpInterrupted = errors.New("dump interrupted")
