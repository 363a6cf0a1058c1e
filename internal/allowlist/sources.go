package allowlist

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moat-sec/moat/internal/procnet"
)

// Compile-time checks: every source names its reasons.
var (
	_ Explainer = (*OwnAddresses)(nil)
	_ Explainer = (*SSHPeers)(nil)
	_ Explainer = (*Resolvers)(nil)
	_ Explainer = (*Gateways)(nil)
)

// maxFileSize bounds what a source reads from one file.
const maxFileSize = 16 << 20

// openRooted opens root+name; a missing file reports ok == false, no error.
func openRooted(root, name string) (io.ReadCloser, bool, error) {
	if root == "" {
		root = "/"
	}
	f, err := os.Open(filepath.Join(root, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, maxFileSize), f}, true, nil
}

func prefixesOf(ents []Entry, err error) ([]netip.Prefix, error) {
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, len(ents))
	for i, e := range ents {
		out[i] = e.Prefix
	}
	return out, nil
}

func single(a netip.Addr) netip.Prefix {
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen())
}

// OwnAddresses is every address on this network namespace's interfaces
// ("own address eth0"), and the directed broadcast address of each IPv4
// subnet ("broadcast eth0"): a source spoofed as ourselves must not get us
// to cut ourselves off.
type OwnAddresses struct {
	ifaces func() ([]ifaceAddrs, error) // test seam; nil: net.Interfaces
}

type ifaceAddrs struct {
	name  string
	addrs []netip.Prefix // address with its subnet length, e.g. 192.0.2.1/24
}

// Prefixes implements Source.
func (o *OwnAddresses) Prefixes() ([]netip.Prefix, error) { return prefixesOf(o.Entries()) }

// Entries implements Explainer.
func (o *OwnAddresses) Entries() ([]Entry, error) {
	list := o.ifaces
	if list == nil {
		list = systemIfaces
	}
	ifs, err := list()
	if err != nil {
		return nil, err
	}
	var out []Entry
	for _, ifc := range ifs {
		for _, p := range ifc.addrs {
			if !p.IsValid() {
				continue
			}
			a := p.Addr().Unmap().WithZone("")
			out = append(out, Entry{single(a), "own address " + ifc.name})
			if a.Is4() && p.Bits() <= 30 {
				_, last := bounds(netip.PrefixFrom(a, p.Bits()).Masked())
				var b [4]byte
				binary.BigEndian.PutUint32(b[:], uint32(last.lo))
				out = append(out, Entry{single(netip.AddrFrom4(b)), "broadcast " + ifc.name})
			}
		}
	}
	return out, nil
}

func systemIfaces() ([]ifaceAddrs, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []ifaceAddrs
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			return nil, fmt.Errorf("addresses of %s: %w", ifc.Name, err)
		}
		ia := ifaceAddrs{name: ifc.Name}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			ones, _ := ipn.Mask.Size()
			if ip.Is4() && ones > 32 {
				ones -= 96
			}
			ia.addrs = append(ia.addrs, netip.PrefixFrom(ip, ones))
		}
		out = append(out, ia)
	}
	return out, nil
}

// DefaultSSHMinAge is how long an SSH connection must have been seen before
// its peer counts as an admin: longer than OpenSSH's default LoginGraceTime
// (2m), after which sshd drops connections that have not authenticated.
const DefaultSSHMinAge = 2*time.Minute + 30*time.Second

// maxTrackedSockets bounds SSHPeers' memory of connections.
const maxTrackedSockets = 1 << 14

// SSHPeers is the peers of established TCP connections to a local SSH port
// ("ssh session"), read from Root/proc/net/tcp and tcp6 (the current network
// namespace). It only lists a connection once it has been seen for MinAge,
// across calls: every brute-forcer holds an established connection to
// sshd while it guesses, and sshd drops those that do not authenticate
// within LoginGraceTime, so an old connection is an authenticated one.
// Half-open connections (SYN_RECV) never count: their source may be
// spoofed.
type SSHPeers struct {
	Root   string           // filesystem root; "" is "/"
	Ports  []uint16         // local SSH ports; nil is 22
	MinAge time.Duration    // 0 is DefaultSSHMinAge; negative lists connections at once (tests, LoginGraceTime 0 aside)
	Now    func() time.Time // nil is time.Now

	mu   sync.Mutex
	seen map[sockKey]time.Time // first sighting of each current connection
}

type sockKey struct {
	local, peer netip.AddrPort
	inode       string
}

// Prefixes implements Source.
func (s *SSHPeers) Prefixes() ([]netip.Prefix, error) { return prefixesOf(s.Entries()) }

// Entries implements Explainer.
func (s *SSHPeers) Entries() ([]Entry, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	t := now()
	ports := s.Ports
	if len(ports) == 0 {
		ports = []uint16{22}
	}
	minAge := s.MinAge
	if minAge == 0 {
		minAge = DefaultSSHMinAge
	}
	var socks []procnet.Socket
	for _, name := range []string{"proc/net/tcp", "proc/net/tcp6"} {
		f, ok, err := openRooted(s.Root, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		got, err := procnet.Parse(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		socks = append(socks, got...)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	seen := make(map[sockKey]time.Time)
	var out []Entry
	for _, so := range socks {
		if so.State != procnet.Established || !slices.Contains(ports, so.Local.Port()) || so.Peer.Addr().IsUnspecified() {
			continue
		}
		k := sockKey{so.Local, so.Peer, so.Inode}
		first, ok := s.seen[k]
		if !ok {
			if len(seen) >= maxTrackedSockets {
				continue // cannot remember it: it never ages into the list
			}
			first = t
		}
		seen[k] = first
		if minAge < 0 || t.Sub(first) >= minAge {
			out = append(out, Entry{single(so.Peer.Addr()), "ssh session"})
		}
	}
	s.seen = seen
	return out, nil
}

// Resolvers is the nameservers of Root/etc/resolv.conf and, behind
// systemd-resolved's 127.0.0.53, of Root/run/systemd/resolve/resolv.conf
// ("resolver"). Missing files list nothing.
type Resolvers struct {
	Root string // filesystem root; "" is "/"
}

// Prefixes implements Source.
func (r *Resolvers) Prefixes() ([]netip.Prefix, error) { return prefixesOf(r.Entries()) }

// Entries implements Explainer.
func (r *Resolvers) Entries() ([]Entry, error) {
	var out []Entry
	for _, name := range []string{"etc/resolv.conf", "run/systemd/resolve/resolv.conf"} {
		f, ok, err := openRooted(r.Root, name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		addrs, err := parseResolvConf(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, a := range addrs {
			out = append(out, Entry{single(a), "resolver"})
		}
	}
	return out, nil
}

func parseResolvConf(r io.Reader) ([]netip.Addr, error) {
	var out []netip.Addr
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1]) // numeric only; "fe80::1%eth0" keeps its zone until single()
		if err != nil {
			continue // glibc ignores what it cannot parse, so do we
		}
		out = append(out, a)
	}
	return out, sc.Err()
}

// Gateways is the next hops of the routing table, from Root/proc/net/route
// and Root/proc/net/ipv6_route ("gateway eth0"): the default gateway and
// any other router a route goes through.
type Gateways struct {
	Root string // filesystem root; "" is "/"
}

// Prefixes implements Source.
func (g *Gateways) Prefixes() ([]netip.Prefix, error) { return prefixesOf(g.Entries()) }

// Entries implements Explainer.
func (g *Gateways) Entries() ([]Entry, error) {
	var out []Entry
	for _, fam := range []struct {
		name  string
		parse func(io.Reader) ([]route, error)
	}{{"proc/net/route", parseRoute4}, {"proc/net/ipv6_route", parseRoute6}} {
		f, ok, err := openRooted(g.Root, fam.name)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		routes, err := fam.parse(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fam.name, err)
		}
		for _, r := range routes {
			out = append(out, Entry{single(r.via), "gateway " + r.iface})
		}
	}
	return out, nil
}

const (
	rtfUp      = 0x1
	rtfGateway = 0x2
)

type route struct {
	via   netip.Addr
	iface string
}

// parseRoute4 reads /proc/net/route: Iface Destination Gateway Flags ...,
// addresses as little-endian hex.
func parseRoute4(r io.Reader) ([]route, error) {
	var out []route
	sc := bufio.NewScanner(r)
	for line := 0; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if line == 0 || len(f) < 4 {
			continue
		}
		gw, err1 := strconv.ParseUint(f[2], 16, 32)
		flags, err2 := strconv.ParseUint(f[3], 16, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("line %d: bad gateway or flags", line+1)
		}
		if flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway || gw == 0 {
			continue
		}
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], uint32(gw))
		out = append(out, route{netip.AddrFrom4(b), f[0]})
	}
	return out, sc.Err()
}

// parseRoute6 reads /proc/net/ipv6_route: dst dst_len src src_len nexthop
// metric refcnt use flags iface, addresses as big-endian hex.
func parseRoute6(r io.Reader) ([]route, error) {
	var out []route
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		raw, err := hex.DecodeString(f[4])
		if err != nil || len(raw) != 16 {
			return nil, fmt.Errorf("line %d: bad next hop %q", line, f[4])
		}
		flags, err := strconv.ParseUint(f[8], 16, 32)
		if err != nil {
			return nil, fmt.Errorf("line %d: bad flags %q", line, f[8])
		}
		via := netip.AddrFrom16([16]byte(raw))
		if flags&(rtfUp|rtfGateway) != rtfUp|rtfGateway || via.IsUnspecified() {
			continue
		}
		out = append(out, route{via.Unmap(), f[9]})
	}
	return out, sc.Err()
}
