package hostroute

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// ErrUnavailable is wrapped by Available's answer when this process cannot
// manage host routes.
var ErrUnavailable = errors.New("hostroute: host routes unavailable")

// capNetAdmin is CAP_NET_ADMIN's bit in the capability sets.
const capNetAdmin = 12

// Available reports nil if this process can manage host routes: Linux,
// CAP_NET_ADMIN in its effective set (root has it), and netlink answering.
// Otherwise the error, wrapping ErrUnavailable, says why and what to do.
// It cannot see whether the kind nodes are on a network of this host; Sync
// refuses, with the reason, when they are not.
func Available() error {
	return available(runtime.GOOS, effectiveCaps, os.Geteuid(), defaultNetlink())
}

func available(goos string, caps func() (uint64, error), euid int, nl Netlink) error {
	if goos != "linux" {
		return fmt.Errorf("%w: not Linux (%s; Docker Desktop runs the kind nodes in a VM): pod IPs are not reachable from the host; use the in-container client",
			ErrUnavailable, goos)
	}
	eff, err := caps()
	if err != nil {
		// Without /proc, trust the user id: root has every capability.
		if euid != 0 {
			return fmt.Errorf("%w: not root: run as root, or use the in-container client", ErrUnavailable)
		}
	} else if eff&(1<<capNetAdmin) == 0 {
		if euid == 0 {
			return fmt.Errorf("%w: root but without CAP_NET_ADMIN (a container started without --cap-add NET_ADMIN?): grant it, or use the in-container client", ErrUnavailable)
		}
		return fmt.Errorf("%w: not root: run as root (or with CAP_NET_ADMIN), or use the in-container client", ErrUnavailable)
	}
	if _, err := hostRoutes(nl); err != nil {
		return fmt.Errorf("%w: netlink does not answer (%v): use the in-container client", ErrUnavailable, err)
	}
	return nil
}

// effectiveCaps reads this process's effective capability set.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff in /proc/self/status")
}
