//go:build !linux

package journal

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return nil }
