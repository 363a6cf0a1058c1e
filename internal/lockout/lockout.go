package lockout

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/moat-sec/moat/internal/procnet"

	"github.com/moat-sec/moat/internal/policy"
)

// Session is an SSH connection to this host.
type Session struct {
	Peer, Local netip.AddrPort
	Iface       string // interface holding the local address ("" if unknown)
	Source      string // "SSH_CONNECTION" or "socket"
}

func (s Session) String() string {
	return fmt.Sprintf("%s -> %s (%s)", s.Peer, s.Local, s.Source)
}

// Sessions lists the SSH sessions that must survive a policy change: the one
// this command runs in (from SSH_CONNECTION, read through getenv) and every
// established TCP connection to a local SSH port in the current network
// namespace (read from procNet, normally /proc/net).
func Sessions(getenv func(string) string, procNet string, sshPorts []uint16) ([]Session, error) {
	var out []Session
	if s, ok := fromEnv(getenv("SSH_CONNECTION")); ok {
		out = append(out, s)
	}
	for _, name := range []string{"tcp", "tcp6"} {
		f, err := os.Open(procNet + "/" + name)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("lockout: list connections: %w", err)
		}
		socks, err := parseProcNet(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("lockout: parse %s/%s: %w", procNet, name, err)
		}
		for _, s := range socks {
			if !slices.Contains(sshPorts, s.Local.Port()) {
				continue
			}
			if slices.ContainsFunc(out, func(o Session) bool { return o.Peer == s.Peer && o.Local == s.Local }) {
				continue
			}
			out = append(out, s)
		}
	}
	ifaces := localIfaces()
	for i := range out {
		out[i].Iface = ifaces[out[i].Local.Addr()]
	}
	return out, nil
}

// localIfaces maps this namespace's addresses to their interfaces, so that
// the guard can judge rules that name an interface ("allow in on eth0").
func localIfaces() map[netip.Addr]string {
	m := map[netip.Addr]string{}
	ifs, err := net.Interfaces()
	if err != nil {
		return m
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(ipn.IP); ok {
					m[ip.Unmap()] = ifc.Name
				}
			}
		}
	}
	return m
}

// fromEnv parses SSH_CONNECTION: "client_ip client_port server_ip server_port".
func fromEnv(v string) (Session, bool) {
	f := strings.Fields(v)
	if len(f) != 4 {
		return Session{}, false
	}
	ca, err1 := netip.ParseAddr(f[0])
	cp, err2 := strconv.ParseUint(f[1], 10, 16)
	sa, err3 := netip.ParseAddr(f[2])
	sp, err4 := strconv.ParseUint(f[3], 10, 16)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
		return Session{}, false
	}
	return Session{
		Peer:   netip.AddrPortFrom(ca.Unmap().WithZone(""), uint16(cp)),
		Local:  netip.AddrPortFrom(sa.Unmap().WithZone(""), uint16(sp)),
		Source: "SSH_CONNECTION",
	}, true
}

// parseProcNet reads the established sockets of /proc/net/tcp or tcp6.
func parseProcNet(r io.Reader) ([]Session, error) {
	socks, err := procnet.Parse(r)
	if err != nil {
		return nil, err
	}
	var out []Session
	for _, so := range socks {
		if so.State == procnet.Established {
			out = append(out, Session{Peer: so.Peer, Local: so.Local, Source: "socket"})
		}
	}
	return out, nil
}

// Error says why a policy was refused.
type Error struct {
	Cut        []Session // sessions whose new connections the policy would refuse
	Redirected []Session // sessions whose new connections would go to a honeypot
	NoSSH      bool      // incoming is denied and no rule admits SSH at all
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("refusing a policy that would lock you out")
	for _, s := range e.Cut {
		fmt.Fprintf(&b, "\n  it would refuse new SSH connections from %s to %s, like the session %s", s.Peer.Addr(), s.Local, s)
	}
	for _, s := range e.Redirected {
		fmt.Fprintf(&b, "\n  it would redirect new SSH connections from %s to %s to a honeypot, like the session %s", s.Peer.Addr(), s.Local, s)
	}
	if e.NoSSH {
		b.WriteString("\n  incoming traffic is denied and no rule admits SSH; add one (e.g. `moat limit ssh`)")
	}
	b.WriteString("\n  (use --force to apply anyway, ideally with --confirm)")
	return b.String()
}

// Check refuses a policy that would cut one of sessions, or that denies
// incoming traffic without admitting SSH from anywhere.
func Check(p *policy.Policy, sessions []Session) error {
	e := &Error{}
	for _, s := range sessions {
		pkt := policy.Packet{
			Direction: policy.In, Proto: policy.ProtoTCP, InIface: s.Iface,
			Src: s.Peer.Addr(), Dst: s.Local.Addr(), SrcPort: s.Peer.Port(), DstPort: s.Local.Port(),
		}
		if s.Peer.Addr().IsLoopback() || s.Peer.Addr() == s.Local.Addr() {
			pkt.InIface = "lo" // the kernel routes connections to ourselves over lo
		}
		act, _ := p.Decide(pkt)
		if act == policy.Deny || act == policy.Reject {
			e.Cut = append(e.Cut, s)
			continue
		}
		if _, ok := p.Redirected(pkt); ok && pkt.InIface != "lo" {
			e.Redirected = append(e.Redirected, s)
		}
	}
	for _, f := range policy.Lint(p) {
		if f.Code == "no-ssh" {
			e.NoSSH = true
		}
	}
	if len(e.Cut) == 0 && len(e.Redirected) == 0 && !e.NoSSH {
		return nil
	}
	return e
}
