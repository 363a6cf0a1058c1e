//go:build unix

package logtail

import (
	"io/fs"
	"os"
	"syscall"
)

// ident is the (device, inode) pair that names a file whatever its path.
func ident(fi fs.FileInfo) (dev, ino uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint64(st.Dev), uint64(st.Ino), true //nolint:unconvert // Dev is int32 on some systems
}

// openFlags keeps a FIFO swapped in at the log's path from blocking the
// open; the caller then refuses anything but a regular file.
const openFlags = os.O_RDONLY | syscall.O_NONBLOCK | syscall.O_CLOEXEC
