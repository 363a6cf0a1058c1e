package config

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkOwner refuses a policy file that someone other than root (or the
// user running moat) could have written: whoever can write the policy
// controls the firewall.
func checkOwner(st fs.FileInfo) error {
	if st.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("file is world-writable (mode %v); run chmod o-w on it", st.Mode().Perm())
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		if uid := int(sys.Uid); uid != 0 && uid != os.Geteuid() {
			return fmt.Errorf("file is owned by uid %d, not by root or the user running moat", uid)
		}
	}
	return nil
}
