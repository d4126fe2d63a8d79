package hostroute

import "github.com/vishvananda/netlink"

// errDumpInterrupted is returned by a dump the kernel interrupted because
// the table changed meanwhile; netlink defines it on Linux only.
var errDumpInterrupted error = netlink.ErrDumpInterrupted
