package firewall

import (
	"net/netip"
	"slices"
	"time"

	"github.com/moat-sec/moat/internal/nft"
	"github.com/moat-sec/moat/internal/policy"
)

// Ban set names: single addresses and prefixes, per family. Each element
// carries its own timeout, so bans expire in the kernel even when the
// daemon is not running.
const (
	BanSetV4       = "ban_v4"
	BanSetV6       = "ban_v6"
	BanPrefixSetV4 = "banpfx_v4"
	BanPrefixSetV6 = "banpfx_v6"
	chainBans      = "bans"
)

// Kernel sets of the scan block and the traps.
const (
	AllowSetV4  = "allow_v4"
	AllowSetV6  = "allow_v6"
	scanSetV4   = "scan_v4"
	scanSetV6   = "scan_v6"
	probeSetV4  = "probe_v4"
	probeSetV6  = "probe_v6"
	trapTCPSet  = "trap_tcp"
	trapUDPSet  = "trap_udp"
	chainTraps  = "traps"
	trapTCPLogs = "trap:tcp"
)

// builtinAllow is never banned, from the kernel either.
var builtinAllow = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/32"), netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"), netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("::/128"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("fe80::/10"), netip.MustParsePrefix("ff00::/8"),
}

// AllowSets are the kernel's never-ban sets; the daemon adds the host's own
// addresses, gateways, resolvers and SSH peers to them.
func AllowSets(table string) []nft.SetRef {
	return []nft.SetRef{{Table: table, Name: AllowSetV4, Interval: true}, {Table: table, Name: AllowSetV6, V6: true, Interval: true}}
}

// allowSets declares the never-ban sets: the configured allowlist and the
// built-in ranges.
func allowSets(p *policy.Policy) []*nft.Set {
	var v4, v6 []netip.Prefix
	for _, pfx := range append(slices.Clone(builtinAllow), p.Allowlist...) {
		if pfx.Addr().Is4() {
			v4 = append(v4, pfx)
		} else {
			v6 = append(v6, pfx)
		}
	}
	return []*nft.Set{
		{Name: AllowSetV4, Type: nft.KeyIPv4, Interval: true, Prefixes: normalise(v4), Comment: "never banned"},
		{Name: AllowSetV6, Type: nft.KeyIPv6, Interval: true, Prefixes: normalise(v6), Comment: "never banned"},
	}
}

// BanSets are the kernel sets that hold bans in table.
func BanSets(table string) []nft.SetRef {
	return []nft.SetRef{
		{Table: table, Name: BanSetV4},
		{Table: table, Name: BanSetV6, V6: true},
		{Table: table, Name: BanPrefixSetV4, Interval: true},
		{Table: table, Name: BanPrefixSetV6, V6: true, Interval: true},
	}
}

// banSets declares the ban sets. They are kept across Replace, so
// reloading the policy never lifts a ban. The single-address sets are
// dynamic: trap rules add to them from the packet path.
func banSets() []*nft.Set {
	return []*nft.Set{
		{Name: BanSetV4, Type: nft.KeyIPv4, Dynamic: true, Timeouts: true, Keep: true, Comment: "banned addresses"},
		{Name: BanSetV6, Type: nft.KeyIPv6, Dynamic: true, Timeouts: true, Keep: true, Comment: "banned addresses"},
		{Name: BanPrefixSetV4, Type: nft.KeyIPv4, Interval: true, Timeouts: true, Keep: true, Comment: "banned networks"},
		{Name: BanPrefixSetV6, Type: nft.KeyIPv6, Interval: true, Timeouts: true, Keep: true, Comment: "banned networks"},
	}
}

// bansChain drops everything from a banned source. Base chains jump here
// before the established-connection guard, so a ban also cuts the
// connections the source already has open.
func bansChain(p *policy.Policy) *nft.Chain {
	ch := &nft.Chain{Name: chainBans}
	if hasRedirects(p) {
		ch.Rules = append(ch.Rules, redirectedRule())
	}
	if p != nil && p.Scan.Block {
		for _, v6 := range []bool{false, true} {
			set := scanSetV4
			if v6 {
				set = scanSetV6
			}
			ch.Rules = append(ch.Rules, &nft.Rule{
				Exprs:   []nft.Expr{&nft.NfProto{V6: v6}, &nft.Addr{Dir: nft.Src, V6: v6, Set: set}, &nft.Counter{}, drop()},
				Comment: "moat scan-block " + set,
			})
		}
	}
	for _, s := range []struct {
		set string
		v6  bool
	}{{BanSetV4, false}, {BanSetV6, true}, {BanPrefixSetV4, false}, {BanPrefixSetV6, true}} {
		ch.Rules = append(ch.Rules, &nft.Rule{
			Exprs:   []nft.Expr{&nft.NfProto{V6: s.v6}, &nft.Addr{Dir: nft.Src, V6: s.v6, Set: s.set}, &nft.Counter{}, drop()},
			Comment: "moat ban " + s.set,
		})
	}
	return ch
}

func jumpBans() *nft.Rule {
	return &nft.Rule{Exprs: []nft.Expr{&nft.Verdict{Kind: nft.VerdictJump, Chain: chainBans}}}
}

// CompileBans is the table the ban engine needs when the firewall policy
// itself is not enabled: the ban sets and their drop rules on the input and
// forward hooks, and nothing else (everything not banned is accepted).
func CompileBans(table string, priority int) *nft.Table {
	t := &nft.Table{Name: table, Sets: append(banSets(), allowSets(&policy.Policy{})...)}
	for _, h := range []struct {
		name string
		hook nft.Hook
	}{{chainIn, nft.HookInput}, {chainFwd, nft.HookForward}} {
		t.Chains = append(t.Chains, &nft.Chain{Name: h.name, Hook: h.hook, Priority: priority, Policy: nft.VerdictAccept, Rules: []*nft.Rule{jumpBans()}})
	}
	t.Chains = append(t.Chains, bansChain(nil))
	return t
}

// scanSets declares the probe meters and the short-lived block sets.
func scanSets(p *policy.Policy) []*nft.Set {
	if !p.Scan.Block {
		return nil
	}
	meter := max(2*p.Scan.Rate.Per, 10*time.Second)
	return []*nft.Set{
		{Name: probeSetV4, Type: nft.KeyIPv4, Dynamic: true, Timeout: meter, Size: 65536, Comment: "dropped probes per source"},
		{Name: probeSetV6, Type: nft.KeyIPv6, Dynamic: true, Timeout: meter, Size: 65536, Comment: "dropped probes per source"},
		{Name: scanSetV4, Type: nft.KeyIPv4, Dynamic: true, Timeout: p.Scan.BlockTime, Size: p.Scan.Size, Comment: "scanners, blocked briefly"},
		{Name: scanSetV6, Type: nft.KeyIPv6, Dynamic: true, Timeout: p.Scan.BlockTime, Size: p.Scan.Size, Comment: "scanners, blocked briefly"},
	}
}

// scanBlockRules meter the probes the default policy drops, per source:
// over the rate, the source goes into the block set for a short time. The
// bans chain then drops everything from it, the allowed ports included, so
// a scan learns nothing after its first few probes. Allowlisted sources
// (and so spoofed probes in their name) are never blocked; the block set's
// size bounds what a flood of spoofed sources can do.
func (c *compiler) scanBlockRules() []*nft.Rule {
	s := c.p.Scan
	if !s.Block {
		return nil
	}
	rate, unit, burst := limitOf(s.Rate)
	var out []*nft.Rule
	for _, v6 := range []bool{false, true} {
		allow, probe, scan := AllowSetV4, probeSetV4, scanSetV4
		if v6 {
			allow, probe, scan = AllowSetV6, probeSetV6, scanSetV6
		}
		out = append(out, &nft.Rule{Exprs: []nft.Expr{
			&nft.NfProto{V6: v6}, &nft.Addr{Dir: nft.Src, V6: v6, Set: allow, Negate: true},
			&nft.Meter{Set: probe, V6: v6, Stmt: &nft.Limit{Rate: rate, Unit: unit, Burst: burst, Over: true}},
			&nft.SetAdd{Set: scan, V6: v6}, &nft.Counter{},
		}, Comment: GuardComment("in", "scan-block")})
	}
	return out
}

// trapSets declares the trap port sets.
func trapSets(p *policy.Policy) []*nft.Set {
	var out []*nft.Set
	if len(p.Honeypot.TCP) > 0 {
		out = append(out, &nft.Set{Name: trapTCPSet, Type: nft.KeyPort, Ports: portList(p.Honeypot.TCP), Comment: "tcp trap ports"})
	}
	if len(p.Honeypot.UDP) > 0 {
		out = append(out, &nft.Set{Name: trapUDPSet, Type: nft.KeyPort, Ports: portList(p.Honeypot.UDP), Comment: "udp trap ports"})
		out = append(out, trapUDPSwitchSets()...)
	}
	return out
}

func portList(ps []uint16) []nft.PortRange {
	out := make([]nft.PortRange, len(ps))
	for i, p := range ps {
		out[i] = nft.PortRange{First: p, Last: p}
	}
	return out
}

// trapsChain bans, in the kernel, the source of a completed TCP handshake
// on a trap port: the packet that completes it (ct state established) adds
// the source to the ban set with the honeypot's ban time, in well under a
// millisecond, and goes on to the listener so the daemon records the ban. A spoofed SYN never completes a handshake, so it bans
// nobody. New connections to trap ports are accepted so that the daemon's
// listener can complete them. UDP datagrams are logged and never banned
// here, their source can be forged (see trapUDPRules).
func (c *compiler) trapsChain() *nft.Chain {
	h := c.p.Honeypot
	if len(h.TCP) == 0 && len(h.UDP) == 0 {
		return nil
	}
	ch := &nft.Chain{Name: chainTraps}
	group := c.p.Logging.Group
	logTo := func(kind string) []nft.Expr {
		if group == 0 {
			return nil
		}
		g := group
		return []nft.Expr{&nft.Log{Prefix: c.logPrefix("in", "trap", kind), Group: &g}}
	}
	if len(h.TCP) > 0 {
		for _, v6 := range []bool{false, true} {
			allow, ban := AllowSetV4, BanSetV4
			if v6 {
				allow, ban = AllowSetV6, BanSetV6
			}
			// Only the bare ACK that completes a handshake bans: the RST a
			// live third party sends back to our SYN-ACK (after a SYN forged
			// in its name) is "established" to conntrack too, and must not
			// get it banned.
			exprs := []nft.Expr{
				&nft.Port{Dir: nft.Dst, Proto: nft.ProtoTCP, Set: trapTCPSet}, &nft.CtState{States: nft.CtEstablished},
				&nft.TCPFlags{Mask: nft.TCPFin | nft.TCPSyn | nft.TCPRst | nft.TCPAck, Value: nft.TCPAck},
				&nft.NfProto{V6: v6}, &nft.Addr{Dir: nft.Src, V6: v6, Set: allow, Negate: true},
				&nft.SetAdd{Set: ban, V6: v6, Timeout: h.BanTime},
			}
			exprs = append(exprs, logTo("tcp")...)
			// Accept the packet that completed the handshake, so that the
			// listener sees the connection and the daemon records the ban;
			// every later packet meets the ban set first.
			ch.Rules = append(ch.Rules, &nft.Rule{Exprs: append(exprs, &nft.Counter{}, accept()), Comment: "moat trap tcp ban"})
		}
		ch.Rules = append(ch.Rules,
			&nft.Rule{Exprs: []nft.Expr{&nft.Port{Dir: nft.Dst, Proto: nft.ProtoTCP, Set: trapTCPSet}, &nft.CtState{States: nft.CtEstablished}, &nft.Counter{}, accept()},
				Comment: "moat trap tcp allowlisted"},
			&nft.Rule{Exprs: []nft.Expr{&nft.Port{Dir: nft.Dst, Proto: nft.ProtoTCP, Set: trapTCPSet},
				&nft.TCPFlags{Mask: nft.TCPFin | nft.TCPSyn | nft.TCPRst | nft.TCPAck, Value: nft.TCPSyn}, &nft.CtState{States: nft.CtNew},
				&nft.Counter{}, accept()}, Comment: "moat trap tcp handshake"})
	}
	if len(h.UDP) > 0 {
		ch.Rules = append(ch.Rules, c.trapUDPRules(logTo("udp"))...)
	}
	return ch
}
