package daemon

import "syscall"

var errAddrInUse = syscall.EADDRINUSE
