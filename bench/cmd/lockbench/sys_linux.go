package main

import (
	"os/exec"
	"syscall"
	"time"
)

// setPdeathsig has the kernel kill the child when this process dies, so an
// interrupted benchmark never leaves a redis-server behind.
func setPdeathsig(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// selfCPU is this process's user+system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
