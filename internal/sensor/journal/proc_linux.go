package journal

import "syscall"

// sysProcAttr kills journalctl if the daemon dies without stopping it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
