package procnet

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// TCP states as the kernel numbers them.
const (
	Established = 0x01
	Listen      = 0x0A
)

// Socket is one row of /proc/net/tcp or tcp6.
type Socket struct {
	Local, Peer netip.AddrPort // IPv4-mapped addresses are unmapped
	State       int
	Inode       string
}

// Parse reads a /proc/net/tcp or tcp6 table.
func Parse(r io.Reader) ([]Socket, error) {
	var out []Socket
	sc := bufio.NewScanner(r)
	for line := 0; sc.Scan(); line++ {
		if line == 0 {
			continue // header
		}
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		local, err := parseHexAddrPort(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line+1, err)
		}
		peer, err := parseHexAddrPort(f[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line+1, err)
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("line %d: bad state %q", line+1, f[3])
		}
		s := Socket{Local: local, Peer: peer, State: int(st)}
		if len(f) > 9 {
			s.Inode = f[9]
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseHexAddrPort reads "0100007F:0016": the address as 32-bit words in
// host (little-endian) order, then the port, both in hex.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	as, ps, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad socket address %q", s)
	}
	raw, err := hex.DecodeString(as)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad socket address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		raw[i], raw[i+1], raw[i+2], raw[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(ps, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad socket port %q", s)
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}
