package daemon

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/detect/udptrap"
	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/firewall"
	"github.com/moat-sec/moat/internal/nft"
	"github.com/moat-sec/moat/internal/procnet"
)

// trapStats counts what the trap listeners saw.
type trapStats struct {
	accepted atomic.Uint64
	// The UDP verifier: datagrams answered with a cookie, and sources
	// that sent theirs back.
	challenged, proven atomic.Uint64
	// verifying is on while the UDP verifier listens: the daemon keeps
	// the kernel's switch on, so that trap datagrams reach it.
	verifying atomic.Bool
}

// trapWriteWait bounds the write of tcp_bytes to a trap connection. A new
// connection's send buffer is empty, so the write never waits in practice;
// the deadline makes sure of it.
const trapWriteWait = 5 * time.Millisecond

// listenTraps completes TCP handshakes on the trap ports, so that the
// kernel's trap rule can ban the source (it fires on the packet that
// completes the handshake), and reports each connection as a verified
// finding, which records the ban. Each connection is closed at once, with
// a RST, after [honeypot] tcp_bytes random bytes if set (written inline,
// under a deadline of a few milliseconds): one goroutine per port, no
// goroutine or descriptor per connection, so a flood of connections
// cannot exhaust either.
func (d *Daemon) listenTraps(ctx context.Context, ports []uint16) ([]io.Closer, error) {
	var lns []net.Listener
	for _, port := range ports {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("::", strconv.Itoa(int(port))))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			if errors.Is(err, errAddrInUse) {
				return nil, fmt.Errorf("honeypot port %d is in use by a real service: remove it from [honeypot] tcp", port)
			}
			return nil, fmt.Errorf("honeypot port %d: %w", port, err)
		}
		lns = append(lns, ln)
	}
	var closers []io.Closer
	for i, ln := range lns {
		port := ports[i]
		closers = append(closers, ln)
		go d.acceptTraps(ctx, ln, port)
	}
	return closers, nil
}

func (d *Daemon) acceptTraps(ctx context.Context, ln net.Listener, port uint16) {
	var seed [32]byte
	crand.Read(seed[:])
	noise := mrand.NewChaCha8(seed)
	buf := make([]byte, config.MaxTrapBytes)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and friends: back off, never spin
			continue
		}
		remote, _ := netip.ParseAddrPort(conn.RemoteAddr().String())
		if n := d.currentCfg().Honeypot.TCPBytes; n > 0 {
			noise.Read(buf[:n])
			conn.SetWriteDeadline(time.Now().Add(trapWriteWait))
			conn.Write(buf[:n])
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			// RST: no TIME_WAIT per trap connection, and nothing left
			// to retransmit to a source the kernel has just banned. The
			// bytes written above leave with the write (a new
			// connection's window holds 4 KiB); what a peer's tiny
			// window held back goes with the RST, nothing waits for it.
			tc.SetLinger(0)
		}
		conn.Close()
		d.traps.accepted.Add(1)
		addr := remote.Addr().Unmap()
		if !addr.IsValid() {
			continue
		}
		d.decide(event.Finding{
			Time: time.Now(), Addr: addr, Detector: "honeypot", Jail: "honeypot", Verified: true,
			Reason:   fmt.Sprintf("completed a TCP handshake on trap port %d", port),
			Evidence: []string{fmt.Sprintf("%s connected to trap port %d", remote, port)},
		})
	}
}

// listenUDPTraps answers datagrams on the UDP trap ports with the
// verifier's cookie and reports a source that sends its cookie back as a
// verified finding (see package udptrap for why that cannot be forged or
// abused). It listens on each port in both families, one goroutine per
// port and nothing per datagram, and turns on the kernel's switch that
// lets trap datagrams reach it. A port a real service uses is refused.
func (d *Daemon) listenUDPTraps(ctx context.Context, ports []uint16) ([]io.Closer, error) {
	var conns []*net.UDPConn
	for _, port := range ports {
		lc := net.ListenConfig{Control: recvPktInfo}
		pc, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort("::", strconv.Itoa(int(port))))
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			if errors.Is(err, errAddrInUse) {
				return nil, fmt.Errorf("honeypot port %d/udp is in use by a real service: remove it from [honeypot] udp", port)
			}
			return nil, fmt.Errorf("honeypot port %d/udp: %w", port, err)
		}
		conns = append(conns, pc.(*net.UDPConn))
	}
	v := udptrap.New(udptrap.Config{}, crand.Reader)
	d.traps.verifying.Store(true)
	switch present, err := d.syncTrapSwitch(); {
	case err != nil:
		d.log.Warn("turn on the kernel's udp trap switch", "err", err)
	case !present:
		d.log.Warn("the firewall in the kernel has no udp traps: their datagrams cannot reach the verifier until `moat up` applies the policy")
	}
	var closers []io.Closer
	for i, c := range conns {
		port := ports[i]
		closers = append(closers, c)
		go d.serveUDPTrap(ctx, c, port, v)
	}
	return closers, nil
}

// trapListeners are the running trap listeners, stopped as one, so that a
// reload can replace them.
type trapListeners struct {
	cancel  context.CancelFunc
	closers []io.Closer
}

// startTraps starts the TCP and UDP trap listeners cfg asks for, or none
// (and an error) if one port cannot be had.
func (d *Daemon) startTraps(parent context.Context, cfg *config.Loaded) (*trapListeners, error) {
	ctx, cancel := context.WithCancel(parent)
	t := &trapListeners{cancel: cancel}
	h, p := cfg.Honeypot, cfg.Policy.Honeypot
	if h.Listen && len(p.TCP) > 0 {
		cs, err := d.listenTraps(ctx, p.TCP)
		if err != nil {
			t.stop()
			return nil, err
		}
		t.closers = append(t.closers, cs...)
	}
	if h.Listen && h.UDPVerify && len(p.UDP) > 0 {
		cs, err := d.listenUDPTraps(ctx, p.UDP)
		if err != nil {
			t.stop()
			d.traps.verifying.Store(false)
			return nil, err
		}
		t.closers = append(t.closers, cs...)
	}
	return t, nil
}

// stop closes every listener before it returns: their ports are free.
func (t *trapListeners) stop() {
	if t == nil {
		return
	}
	t.cancel()
	for _, c := range t.closers {
		c.Close()
	}
}

// trapsChanged reports whether a reload must restart the trap listeners.
func trapsChanged(old, cfg *config.Loaded) bool {
	a, b := old.Honeypot, cfg.Honeypot
	return a.Listen != b.Listen || a.UDPVerify != b.UDPVerify ||
		!slices.Equal(old.Policy.Honeypot.TCP, cfg.Policy.Honeypot.TCP) || !slices.Equal(old.Policy.Honeypot.UDP, cfg.Policy.Honeypot.UDP)
}

// recvPktInfo asks for each datagram's destination address (IPv4 ones
// too, as v4-mapped addresses), so that the reply leaves from it.
func recvPktInfo(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func (d *Daemon) serveUDPTrap(ctx context.Context, c *net.UDPConn, port uint16, v *udptrap.Verifier) {
	buf := make([]byte, 2048) // the cookie must come in the first 2 KiB
	oob := make([]byte, 128)
	for {
		n, oobn, _, src, err := c.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			time.Sleep(10 * time.Millisecond) // never spin on a persistent error
			continue
		}
		addr := src.Addr().Unmap()
		if d.allow.Contains(addr) {
			continue // never banned: nothing to prove, and no reply to protected hosts
		}
		now := time.Now()
		cookie, out := v.Datagram(src, port, buf[:n], now)
		switch out {
		case udptrap.Challenged:
			d.traps.challenged.Add(1)
			c.SetWriteDeadline(now.Add(trapWriteWait))
			c.WriteMsgUDPAddrPort(cookie[:], replyFrom(oob[:oobn]), src)
		case udptrap.Proven:
			d.traps.proven.Add(1)
			d.decide(event.Finding{
				Time: now, Addr: addr, Detector: "honeypot", Jail: "honeypot", Verified: true,
				Reason:   fmt.Sprintf("sent back the reply cookie on UDP trap port %d", port),
				Evidence: []string{fmt.Sprintf("%s echoed the cookie sent to it from UDP trap port %d", src, port)},
			})
		}
	}
}

// replyFrom turns the destination of a received datagram (its
// IPV6_PKTINFO) into the control message that makes the reply leave from
// that address; nil lets the kernel choose.
func replyFrom(oob []byte) []byte {
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			return nil
		}
		if h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo {
			var info unix.Inet6Pktinfo
			copy(info.Addr[:], data[:16]) // the interface is left to routing
			return unix.PktInfo6(&info)
		}
		oob = rest
	}
	return nil
}

// trapSwitchTTL is how long the kernel's udp trap switch stays on without
// a refresh from the daemon (every 2 s): a dead daemon's traps go back to
// dropping datagrams.
const trapSwitchTTL = 10 * time.Second

// syncTrapSwitch sets the kernel's udp trap switch to whether the
// verifier listens, and reports whether the kernel has the switch. A
// table without it (no UDP traps in the applied policy) is left alone:
// its traps drop datagrams, alert only.
func (d *Daemon) syncTrapSwitch() (present bool, err error) {
	refs, all := firewall.TrapUDPSwitch(d.currentCfg().Policy.Table)
	on := d.traps.verifying.Load()
	for i, ref := range refs {
		ok, err := d.conn.HasSet(ref)
		if err != nil || !ok {
			return false, err
		}
		if on {
			// Flush and add in one transaction: a fresh element with a
			// fresh timeout on every kernel (re-adding an element only
			// refreshes its timeout from Linux 6.12), never a gap.
			err = d.conn.SetElements(ref, []nft.Element{{Prefix: all[i], Timeout: trapSwitchTTL}})
		} else {
			err = d.conn.FlushSet(ref)
		}
		if err != nil {
			return true, err
		}
	}
	return true, nil
}

// syncAllow puts the whole allowlist (configured, runtime, own addresses,
// gateways, resolvers, SSH peers and the built-in ranges) into the kernel's
// allow sets, which the kernel's own banning rules (traps, scan block)
// obey.
func (d *Daemon) syncAllow() error {
	var v4, v6 []netip.Prefix
	for _, e := range d.allow.Entries() {
		if e.Prefix.Addr().Is4() {
			v4 = append(v4, e.Prefix)
		} else {
			v6 = append(v6, e.Prefix)
		}
	}
	sets := firewall.AllowSets(d.currentCfg().Policy.Table)
	for i, ps := range [][]netip.Prefix{v4, v6} {
		els := make([]nft.Element, 0, len(ps))
		for _, p := range outermost(ps) {
			els = append(els, nft.Element{Prefix: p})
		}
		if err := d.conn.SetElements(sets[i], els); err != nil {
			return err
		}
	}
	return nil
}

// outermost drops prefixes contained in others (interval sets refuse
// overlapping elements).
func outermost(ps []netip.Prefix) []netip.Prefix {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []netip.Prefix
	for _, p := range ps {
		p = p.Masked()
		if len(out) > 0 && out[len(out)-1].Overlaps(p) {
			if p.Bits() < out[len(out)-1].Bits() {
				out[len(out)-1] = p
			}
			continue
		}
		out = append(out, p)
	}
	return out
}

func (d *Daemon) currentCfg() *config.Loaded {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cfg
}

// hasEstablished reports whether addr has an established TCP connection
// to (or from) this host, in the current network namespace.
func hasEstablished(addr netip.Addr) bool {
	for _, name := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(name)
		if err != nil {
			continue
		}
		socks, err := procnet.Parse(f)
		f.Close()
		if err != nil {
			continue
		}
		for _, s := range socks {
			if s.State == procnet.Established && s.Peer.Addr() == addr {
				return true
			}
		}
	}
	return false
}
