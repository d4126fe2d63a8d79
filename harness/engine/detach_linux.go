package engine

import "syscall"

// detached puts the daemon in its own session so that an interrupt of the
// command that started it (Ctrl-C in make) does not stop it.
func detached() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
