// Package capfilter makes `docker run --privileged` work on hosts whose
// capability bounding set is smaller than the set of capabilities the kernel
// knows.
//
// Docker engines before 23 give a privileged container every capability the
// kernel knows. When the host itself runs without some of them (this happens
// in sandboxed VMs: CAP_SYS_RESOURCE is often dropped), runc cannot grant them
// and every privileged container fails with "unable to apply caps: operation
// not permitted". kind always runs its nodes privileged, so no cluster can
// start. The fix is an OCI runtime that sits in front of runc and removes the
// unobtainable capabilities from the container's process spec before runc
// sees it. Newer engines do this themselves; the engine bootstrap registers
// the wrapper only where the problem exists.
package capfilter

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Names lists the Linux capabilities by number, as they appear in OCI
// runtime specs.
var Names = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// Set is a set of capability names.
type Set map[string]bool

// ParseMask turns a hexadecimal capability mask, as printed in the CapBnd
// line of /proc/<pid>/status, into the set of named capabilities it holds.
func ParseMask(hex string) (Set, error) {
	mask, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
	if err != nil {
		return nil, fmt.Errorf("capability mask %q is not hexadecimal: %w", hex, err)
	}
	s := Set{}
	for i, name := range Names {
		if mask&(1<<uint(i)) != 0 {
			s[name] = true
		}
	}
	return s, nil
}

// BoundingSet reads the bounding set of the calling process.
func BoundingSet() (Set, error) {
	return maskFromStatus("/proc/self/status", "CapBnd:")
}

// EffectiveSet reads the effective capabilities of the calling process.
func EffectiveSet() (Set, error) {
	return maskFromStatus("/proc/self/status", "CapEff:")
}

func maskFromStatus(path, field string) (Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			return ParseMask(v)
		}
	}
	return nil, fmt.Errorf("%s has no %s line", path, field)
}

// Missing returns the capabilities the kernel knows (numbers 0..lastCap)
// that are absent from have. A non-empty result means privileged containers
// fail on engines that do not filter capabilities themselves.
func Missing(have Set, lastCap int) []string {
	var out []string
	for i := 0; i <= lastCap && i < len(Names); i++ {
		if !have[Names[i]] {
			out = append(out, Names[i])
		}
	}
	return out
}

// LastCap reads the highest capability number the running kernel knows.
func LastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// capabilityLists are the keys of an OCI process spec's "capabilities"
// object.
var capabilityLists = []string{"bounding", "effective", "inheritable", "permitted", "ambient"}

// FilterProcess removes from an OCI process object (a JSON object with an
// optional "capabilities" member) every capability not in allowed. Unknown
// fields are kept as they are.
func FilterProcess(process map[string]any, allowed Set) {
	caps, ok := process["capabilities"].(map[string]any)
	if !ok {
		return
	}
	for _, key := range capabilityLists {
		list, ok := caps[key].([]any)
		if !ok {
			continue
		}
		kept := make([]any, 0, len(list))
		for _, c := range list {
			if name, ok := c.(string); ok && !allowed[name] {
				continue
			}
			kept = append(kept, c)
		}
		caps[key] = kept
	}
}

// FilterBundleConfig rewrites an OCI bundle's config.json in place.
func FilterBundleConfig(path string, allowed Set) error {
	return rewriteJSON(path, func(doc map[string]any) {
		if p, ok := doc["process"].(map[string]any); ok {
			FilterProcess(p, allowed)
		}
	})
}

// FilterProcessFile rewrites the process file given to `runc exec --process`.
func FilterProcessFile(path string, allowed Set) error {
	return rewriteJSON(path, func(doc map[string]any) { FilterProcess(doc, allowed) })
}

func rewriteJSON(path string, edit func(map[string]any)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	edit(doc)
	out, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o600)
}

// Invocation is what the wrapper needs to know about one runc command line.
type Invocation struct {
	Command     string // create, run, exec, ...
	Bundle      string // bundle directory for create/run ("" = current directory)
	ProcessFile string // --process file for exec
}

// flagsWithValue are runc's global and sub-command flags that take a value
// in the next argument; knowing them lets us find the sub-command reliably.
var flagsWithValue = map[string]bool{
	"--root": true, "--log": true, "--log-format": true, "--criu": true,
}

// ParseArgs finds the sub-command and the files it will read from a runc
// command line (without the program name).
func ParseArgs(args []string) Invocation {
	var inv Invocation
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			inv.Command = a
			i++
			break
		}
		if flagsWithValue[a] && !strings.Contains(a, "=") {
			i++
		}
	}
	for ; i < len(args); i++ {
		a := args[i]
		name, value, hasValue := strings.Cut(a, "=")
		next := func() string {
			if hasValue {
				return value
			}
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch name {
		case "--bundle", "-b":
			inv.Bundle = next()
		case "--process", "-p":
			inv.ProcessFile = next()
		}
	}
	return inv
}
