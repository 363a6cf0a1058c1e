package config

import (
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/moat-sec/moat/internal/policy"
)

// holdParts validates the first-SYN hold of [scan] into p.Scan.
func (v *validator) holdParts(f *File, p *policy.Policy) {
	s := f.Scan
	if len(s.Hold) == 0 {
		return
	}
	if !s.KernelBlock {
		v.add("scan.hold", fmt.Errorf("needs kernel_block = true: the hold only delays a scanner, the block stops it"))
		return
	}
	win, pass := s.HoldWindow.D, s.HoldPass.D
	// A real client's first retransmission comes 1 s after its SYN (RFC
	// 6298; Linux, Windows and macOS): the window must end before it.
	if win < 100*time.Millisecond || win > 900*time.Millisecond {
		v.add("scan.hold_window", fmt.Errorf("must be between 100ms and 900ms: a client sends its SYN again after 1s"))
	}
	if pass < time.Minute || pass > 7*24*time.Hour {
		v.add("scan.hold_pass", fmt.Errorf("must be between 1m and 7d"))
	}
	for i, port := range s.Hold {
		path := "scan.hold." + strconv.Itoa(i+1)
		switch {
		case port < 1 || port > 65535:
			v.add(path, fmt.Errorf("port %d out of range 1-65535", port))
			continue
		case slices.Contains(p.Scan.Hold, uint16(port)):
			v.add(path, fmt.Errorf("port %d listed twice", port))
			continue
		case slices.Contains(p.SSHPorts, uint16(port)):
			v.add(path, fmt.Errorf("port %d is an SSH port: holding it would slow every admin login", port))
			continue
		}
		if _, ok := allowsPort(p, "tcp", uint16(port)); !ok {
			v.add(path, fmt.Errorf("port %d is not opened by any rule: there is nothing to hold", port))
			continue
		}
		p.Scan.Hold = append(p.Scan.Hold, uint16(port))
	}
	p.Scan.HoldWindow, p.Scan.HoldPass = win, pass
}
