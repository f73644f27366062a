//go:build !linux

package main

import (
	"os/exec"
	"time"
)

func setPdeathsig(*exec.Cmd) {}

// selfCPU is not measured off Linux.
func selfCPU() time.Duration { return 0 }
