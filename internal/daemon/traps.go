package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/moat-sec/moat/internal/procnet"

	"github.com/moat-sec/moat/internal/config"
	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/firewall"
	"github.com/moat-sec/moat/internal/nft"
)

// trapStats counts what the trap listeners saw.
type trapStats struct {
	accepted atomic.Uint64
}

// listenTraps completes TCP handshakes on the trap ports, so that the
// kernel's trap rule can ban the source (it fires on the packet that
// completes the handshake), and reports each connection as a verified
// finding, which records the ban. Each connection is closed at once: one
// goroutine per port, no goroutine or descriptor per connection, so a
// flood of connections cannot exhaust either.
func (d *Daemon) listenTraps(ctx context.Context, ports []uint16) error {
	var lns []net.Listener
	for _, port := range ports {
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort("::", strconv.Itoa(int(port))))
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			if errors.Is(err, errAddrInUse) {
				return fmt.Errorf("honeypot port %d is in use by a real service: remove it from [honeypot] tcp", port)
			}
			return fmt.Errorf("honeypot port %d: %w", port, err)
		}
		lns = append(lns, ln)
	}
	for i, ln := range lns {
		port := ports[i]
		go func() {
			<-ctx.Done()
			ln.Close()
		}()
		go d.acceptTraps(ctx, ln, port)
	}
	return nil
}

func (d *Daemon) acceptTraps(ctx context.Context, ln net.Listener, port uint16) {
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
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.SetLinger(0) // RST: no TIME_WAIT per trap connection
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
