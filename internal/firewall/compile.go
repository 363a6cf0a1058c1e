package firewall

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moat-sec/moat/internal/nft"
	"github.com/moat-sec/moat/internal/policy"
)

// Chain names. Each direction has a base chain that runs, in order, its
// guard chain, its rules chain and its default chain.
const (
	chainIn     = "input"
	chainOut    = "output"
	chainFwd    = "forward"
	suffixGuard = "_guard"
	suffixRules = "_rules"
	suffixDef   = "_default"
)

// dirInfo names the parts of one direction.
type dirInfo struct {
	dir    policy.Direction
	short  string // "in", "out", "fwd": chain prefix and log tag
	base   string
	hook   nft.Hook
	deflt  policy.Action
	lo     *nft.IfName
	counts bool
}

// Compile turns a policy into the table that enforces it. It fails only on
// policies that cannot be expressed (which Validate should have refused).
func Compile(p *policy.Policy) (*nft.Table, error) {
	c := &compiler{p: p, t: &nft.Table{Name: p.Table, Sets: slices.Concat(banSets(), allowSets(p), scanSets(p), trapSets(p))}, sets: map[string]bool{}}
	traps := c.trapsChain()
	dirs := []dirInfo{
		{dir: policy.In, short: "in", base: chainIn, hook: nft.HookInput, deflt: p.Incoming, lo: &nft.IfName{In: true, Name: "lo"}},
		{dir: policy.Out, short: "out", base: chainOut, hook: nft.HookOutput, deflt: p.Outgoing, lo: &nft.IfName{In: false, Name: "lo"}},
		{dir: policy.Routed, short: "fwd", base: chainFwd, hook: nft.HookForward, deflt: p.Routed},
	}
	var bases, others []*nft.Chain
	for _, d := range dirs {
		guard := c.guardChain(d)
		rules, err := c.rulesChain(d)
		if err != nil {
			return nil, err
		}
		def := c.defaultChain(d)
		base := &nft.Chain{Name: d.base, Hook: d.hook, Priority: p.Priority, Policy: nft.VerdictAccept}
		if d.deflt != policy.Allow {
			base.Policy = nft.VerdictDrop
		}
		if d.lo != nil && p.Guards.Loopback {
			base.Rules = append(base.Rules, &nft.Rule{Exprs: []nft.Expr{d.lo, &nft.Counter{}, accept()}, Comment: GuardComment(d.short, "loopback")})
		}
		if d.dir != policy.Out {
			base.Rules = append(base.Rules, jumpBans())
		}
		if d.dir == policy.In && traps != nil {
			base.Rules = append(base.Rules, &nft.Rule{Exprs: []nft.Expr{&nft.Verdict{Kind: nft.VerdictJump, Chain: chainTraps}}})
		}
		for _, ch := range []*nft.Chain{guard, rules, def} {
			base.Rules = append(base.Rules, &nft.Rule{Exprs: []nft.Expr{&nft.Verdict{Kind: nft.VerdictJump, Chain: ch.Name}}})
			others = append(others, ch)
		}
		bases = append(bases, base)
	}
	c.t.Chains = append(append(append(bases, bansChain(p)), others...), c.extra...)
	if hold := c.holdChain(); hold != nil {
		c.t.Sets = append(c.t.Sets, c.holdSets()...)
		c.t.Chains = append(c.t.Chains, hold)
	}
	if traps != nil {
		c.t.Chains = append(c.t.Chains, traps)
	}
	if rd := c.redirectChain(); rd != nil {
		c.t.Chains = append(c.t.Chains, rd)
	}
	return c.t, nil
}

type compiler struct {
	p     *policy.Policy
	t     *nft.Table
	sets  map[string]bool
	extra []*nft.Chain // chains the rules jump to, after the per-direction ones
}

func accept() *nft.Verdict { return &nft.Verdict{Kind: nft.VerdictAccept} }
func drop() *nft.Verdict   { return &nft.Verdict{Kind: nft.VerdictDrop} }

// Comment formats. `moat status` reads counters back by these.
const (
	commentRule    = "moat rule "
	commentGuard   = "moat guard "
	commentDefault = "moat default "
)

// RuleComment is the comment on every kernel rule compiled from policy rule n (1-based).
func RuleComment(n int) string { return commentRule + strconv.Itoa(n) }

// GuardComment is the comment on the rules of guard name in direction dir.
func GuardComment(dir, name string) string { return commentGuard + dir + " " + name }

// DefaultComment is the comment on the default verdict of direction dir.
func DefaultComment(dir string) string { return commentDefault + dir }

// RuleNumber returns n for a comment made by RuleComment.
func RuleNumber(comment string) (int, bool) {
	rest, ok := strings.CutPrefix(comment, commentRule)
	if !ok {
		return 0, false
	}
	rest, _, _ = strings.Cut(rest, ":")
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// logPrefix is what a logged packet carries: "moat:in:drop:default ".
func (c *compiler) logPrefix(dir, verdict, reason string) string {
	return fmt.Sprintf("%s:%s:%s:%s ", c.p.Logging.Prefix, dir, verdict, reason)
}

// logRules returns the rules that log packets matching match, both to the
// kernel log and to NFLOG, each rate-limited on its own.
func (c *compiler) logRules(match []nft.Expr, dir, verdict, reason, comment string) []*nft.Rule {
	return c.logRulesTo(match, dir, verdict, reason, comment, true, true)
}

// feedRules logs a drop the scan detector needs: to the kernel log when
// the level asks for it, to NFLOG also when the scan feed is on.
func (c *compiler) feedRules(match []nft.Expr, dir, verdict, reason, comment string, min policy.LogLevel) []*nft.Rule {
	klog := c.logs(min)
	nflog := klog || (c.p.Logging.ScanFeed && dir == "in")
	return c.logRulesTo(match, dir, verdict, reason, comment, klog, nflog)
}

func (c *compiler) logRulesTo(match []nft.Expr, dir, verdict, reason, comment string, klog, nflog bool) []*nft.Rule {
	lg := c.p.Logging
	prefix := c.logPrefix(dir, verdict, reason)
	var out []*nft.Rule
	if klog {
		rate, unit, burst := limitOf(lg.Rate)
		out = append(out, &nft.Rule{Exprs: append(slices.Clone(match),
			&nft.Limit{Rate: rate, Unit: unit, Burst: burst},
			&nft.Log{Prefix: prefix, Level: "info"}), Comment: comment})
	}
	if lg.Group != 0 && nflog {
		g := lg.Group
		rate, unit, burst := limitOf(lg.GroupRate)
		out = append(out, &nft.Rule{Exprs: append(slices.Clone(match),
			&nft.Limit{Rate: rate, Unit: unit, Burst: burst},
			&nft.Log{Prefix: prefix, Group: &g}), Comment: comment})
	}
	return out
}

// logs reports whether drops for a reason of the given level are logged.
func (c *compiler) logs(min policy.LogLevel) bool { return c.p.Logging.Level >= min }

// guardChain holds the protections that run before the rules.
func (c *compiler) guardChain(d dirInfo) *nft.Chain {
	g := c.p.Guards
	ch := &nft.Chain{Name: d.short + suffixGuard}
	add := func(name string, match []nft.Expr, verdict *nft.Verdict, logMin policy.LogLevel) {
		comment := GuardComment(d.short, name)
		if verdict.Kind == nft.VerdictDrop {
			ch.Rules = append(ch.Rules, c.feedRules(match, d.short, "drop", name, comment, logMin)...)
		}
		ch.Rules = append(ch.Rules, &nft.Rule{Exprs: append(slices.Clone(match), &nft.Counter{}, verdict), Comment: comment})
	}
	if g.RPFilter != "" && d.dir != policy.Out {
		// Spoofed sources are dropped before anything else sees them, the
		// scan detector included: logged to the kernel log only, never to
		// the NFLOG feed.
		match := []nft.Expr{&nft.RPFilter{Strict: g.RPFilter == "strict"}}
		comment := GuardComment(d.short, "rp-filter")
		ch.Rules = append(ch.Rules, c.logRulesTo(match, d.short, "drop", "rp-filter", comment, c.logs(policy.LogMedium), false)...)
		ch.Rules = append(ch.Rules, &nft.Rule{Exprs: append(slices.Clone(match), &nft.Counter{}, drop()), Comment: comment})
	}
	if g.BadTCPFlags && d.dir != policy.Out {
		const all6 = nft.TCPFin | nft.TCPSyn | nft.TCPRst | nft.TCPPsh | nft.TCPAck | nft.TCPUrg
		flags := func(mask, value uint8, negate bool) *nft.TCPFlags {
			return &nft.TCPFlags{Mask: mask, Value: value, Negate: negate}
		}
		add("tcp-null", []nft.Expr{flags(all6, 0, false)}, drop(), policy.LogMedium)
		add("tcp-xmas", []nft.Expr{flags(nft.TCPFin|nft.TCPPsh|nft.TCPUrg, nft.TCPFin|nft.TCPPsh|nft.TCPUrg, false)}, drop(), policy.LogMedium)
		add("tcp-syn-fin", []nft.Expr{flags(nft.TCPSyn|nft.TCPFin, nft.TCPSyn|nft.TCPFin, false)}, drop(), policy.LogMedium)
		add("tcp-syn-rst", []nft.Expr{flags(nft.TCPSyn|nft.TCPRst, nft.TCPSyn|nft.TCPRst, false)}, drop(), policy.LogMedium)
		add("tcp-fin-rst", []nft.Expr{flags(nft.TCPFin|nft.TCPRst, nft.TCPFin|nft.TCPRst, false)}, drop(), policy.LogMedium)
		add("tcp-fin-noack", []nft.Expr{flags(nft.TCPFin|nft.TCPAck, nft.TCPFin, false)}, drop(), policy.LogMedium)
		add("tcp-new-not-syn", []nft.Expr{flags(nft.TCPFin|nft.TCPSyn|nft.TCPRst|nft.TCPAck, nft.TCPSyn, true), &nft.CtState{States: nft.CtNew}}, drop(), policy.LogMedium)
	}
	if g.Invalid {
		add("invalid", []nft.Expr{&nft.CtState{States: nft.CtInvalid}}, drop(), policy.LogMedium)
	}
	if g.Established {
		add("established", []nft.Expr{&nft.CtState{States: nft.CtEstablished | nft.CtRelated}}, accept(), 0)
	}
	if r := c.holdJump(); r != nil && d.dir == policy.In {
		ch.Rules = append(ch.Rules, r)
	}
	if !g.SYNFlood.IsZero() && d.dir == policy.In {
		rate, unit, burst := limitOf(g.SYNFlood)
		for _, v6 := range []bool{false, true} {
			set := c.meterSet("synflood", v6, g.SYNFlood.Per, false)
			add("syn-flood", []nft.Expr{
				&nft.NfProto{V6: v6},
				&nft.TCPFlags{Mask: nft.TCPFin | nft.TCPSyn | nft.TCPRst | nft.TCPAck, Value: nft.TCPSyn},
				&nft.CtState{States: nft.CtNew},
				&nft.Meter{Set: set, V6: v6, PrefixLen: c.meterBits(v6), Stmt: &nft.Limit{Rate: rate, Unit: unit, Burst: burst, Over: true}},
			}, drop(), policy.LogMedium)
		}
	}
	if g.ICMP {
		// What networks need: errors that carry path MTU and reachability,
		// and IPv6 neighbour discovery, without which IPv6 does not work.
		// Neighbour discovery is not tracked by conntrack, so the
		// established guard does not cover it.
		add("icmp", []nft.Expr{&nft.NfProto{}, &nft.ICMPType{Types: []uint8{3, 11, 12}}}, accept(), 0)
		v6 := []uint8{1, 2, 3, 4, 133, 134, 135, 136}
		if d.dir != policy.Routed {
			v6 = append(v6, 130, 131, 132, 143)
		}
		add("icmpv6", []nft.Expr{&nft.NfProto{V6: true}, &nft.ICMPType{V6: true, Types: v6}}, accept(), 0)
		if !g.EchoRate.IsZero() && d.dir == policy.In {
			rate, unit, burst := limitOf(g.EchoRate)
			add("echo", []nft.Expr{&nft.NfProto{}, &nft.ICMPType{Types: []uint8{8}}, &nft.Limit{Rate: rate, Unit: unit, Burst: burst}}, accept(), 0)
			add("echo6", []nft.Expr{&nft.NfProto{V6: true}, &nft.ICMPType{V6: true, Types: []uint8{128}}, &nft.Limit{Rate: rate, Unit: unit, Burst: burst}}, accept(), 0)
		}
	}
	return ch
}

// defaultChain logs (when asked) and applies the direction's default.
func (c *compiler) defaultChain(d dirInfo) *nft.Chain {
	ch := &nft.Chain{Name: d.short + suffixDef}
	comment := DefaultComment(d.short)
	switch d.deflt {
	case policy.Allow:
		ch.Rules = append(ch.Rules, &nft.Rule{Exprs: []nft.Expr{&nft.Counter{}, accept()}, Comment: comment})
	case policy.Deny, policy.Reject:
		verdict := "drop"
		if d.deflt == policy.Reject {
			verdict = "reject"
		}
		if d.dir == policy.In {
			ch.Rules = append(ch.Rules, c.scanBlockRules()...)
		}
		ch.Rules = append(ch.Rules, c.feedRules(nil, d.short, verdict, "default", comment, policy.LogLow)...)
		if d.deflt == policy.Deny {
			ch.Rules = append(ch.Rules, &nft.Rule{Exprs: []nft.Expr{&nft.Counter{}, drop()}, Comment: comment})
		} else {
			ch.Rules = append(ch.Rules,
				&nft.Rule{Exprs: []nft.Expr{&nft.L4Proto{Proto: nft.ProtoTCP}, &nft.Counter{}, &nft.Verdict{Kind: nft.VerdictRejectTCPReset}}, Comment: comment},
				&nft.Rule{Exprs: []nft.Expr{&nft.Counter{}, &nft.Verdict{Kind: nft.VerdictReject}}, Comment: comment})
		}
	}
	return ch
}

// rulesChain holds the policy's rules of one direction, in order.
func (c *compiler) rulesChain(d dirInfo) (*nft.Chain, error) {
	ch := &nft.Chain{Name: d.short + suffixRules}
	for i, r := range c.p.Rules {
		if r.Direction != d.dir {
			continue
		}
		rules, err := c.rule(d, i+1, &r)
		if err != nil {
			return nil, fmt.Errorf("rule %d: %w", i+1, err)
		}
		ch.Rules = append(ch.Rules, rules...)
	}
	return ch, nil
}

// leg is one family/protocol combination of a rule.
type leg struct {
	v4, v6 bool // family constraint: exactly one true, or both for any
	proto  policy.Proto
	ports  policy.Ports // destination ports
}

func (c *compiler) rule(d dirInfo, n int, r *policy.Rule) ([]*nft.Rule, error) {
	comment := RuleComment(n)
	if r.Comment != "" {
		comment += ": " + r.Comment
	}
	fams, err := families(r)
	if err != nil {
		return nil, err
	}
	var out []*nft.Rule
	for _, fam := range fams {
		for _, lg := range legs(r) {
			match := c.match(d, r, fam, lg)
			out = append(out, c.verdictRules(d, n, r, fam, lg, match, comment)...)
		}
	}
	return out, nil
}

type family int

const (
	famAny family = iota
	famV4
	famV6
)

// families splits a rule by address family: rules with addresses of one
// family match only that family; limit rules keep one meter per family.
func families(r *policy.Rule) ([]family, error) {
	f4, f6 := r.From.Families()
	t4, t6 := r.To.Families()
	v4, v6 := f4 && t4, f6 && t6
	switch r.Proto {
	case policy.ProtoICMP:
		v6 = false
	case policy.ProtoICMPv6:
		v4 = false
	}
	if !v4 && !v6 {
		return nil, fmt.Errorf("from and to have no address family in common")
	}
	perFamily := r.Action == policy.Limit || r.ConnLimit > 0 || !r.From.Any() || !r.To.Any()
	switch {
	case v4 && v6 && !perFamily:
		return []family{famAny}, nil
	case v4 && v6:
		return []family{famV4, famV6}, nil
	case v4:
		return []family{famV4}, nil
	}
	return []family{famV6}, nil
}

// legs splits a rule by protocol: an application's services, or a port
// list without a protocol (which means TCP and UDP, as in UFW).
func legs(r *policy.Rule) []leg {
	var out []leg
	expand := func(proto policy.Proto, ports policy.Ports) {
		if proto == policy.ProtoAny && (len(ports) > 0 || len(r.From.Ports) > 0) {
			out = append(out, leg{proto: policy.ProtoTCP, ports: ports}, leg{proto: policy.ProtoUDP, ports: ports})
			return
		}
		out = append(out, leg{proto: proto, ports: ports})
	}
	if r.App != "" {
		for _, s := range r.Services {
			proto := s.Proto
			if r.Proto != policy.ProtoAny {
				proto = r.Proto
			}
			expand(proto, s.Ports)
		}
		return out
	}
	expand(r.Proto, r.To.Ports)
	return out
}

func protoNum(p policy.Proto) uint8 {
	switch p {
	case policy.ProtoTCP:
		return nft.ProtoTCP
	case policy.ProtoUDP:
		return nft.ProtoUDP
	case policy.ProtoICMP:
		return nft.ProtoICMP
	case policy.ProtoICMPv6:
		return nft.ProtoICMPv6
	}
	return 0
}

func (c *compiler) match(d dirInfo, r *policy.Rule, fam family, lg leg) []nft.Expr {
	var m []nft.Expr
	if r.InIface != "" {
		m = append(m, &nft.IfName{In: true, Name: r.InIface})
	}
	if r.OutIface != "" {
		m = append(m, &nft.IfName{In: false, Name: r.OutIface})
	}
	if fam != famAny {
		m = append(m, &nft.NfProto{V6: fam == famV6})
	}
	m = append(m, c.addr(nft.Src, r.From, fam)...)
	m = append(m, c.addr(nft.Dst, r.To, fam)...)
	switch lg.proto {
	case policy.ProtoTCP, policy.ProtoUDP:
		pn := protoNum(lg.proto)
		if len(r.From.Ports) == 0 && len(lg.ports) == 0 {
			m = append(m, &nft.L4Proto{Proto: pn})
		}
		if len(r.From.Ports) > 0 {
			m = append(m, &nft.Port{Dir: nft.Src, Proto: pn, Ranges: portRanges(r.From.Ports)})
		}
		if len(lg.ports) > 0 {
			m = append(m, &nft.Port{Dir: nft.Dst, Proto: pn, Ranges: portRanges(lg.ports)})
		}
	case policy.ProtoICMP, policy.ProtoICMPv6:
		m = append(m, &nft.L4Proto{Proto: protoNum(lg.proto)})
	}
	return m
}

func portRanges(ps policy.Ports) []nft.PortRange {
	out := make([]nft.PortRange, len(ps))
	for i, p := range ps {
		out[i] = nft.PortRange{First: p.First, Last: p.Last}
	}
	return out
}

// addr matches one endpoint's addresses in family fam: a named network
// becomes a lookup in its set, anything else literal prefixes.
func (c *compiler) addr(dir nft.Dir, e policy.Endpoint, fam family) []nft.Expr {
	if e.Any() {
		return nil
	}
	v6 := fam == famV6
	if _, named := c.p.Networks[e.Text]; named {
		return []nft.Expr{&nft.Addr{Dir: dir, V6: v6, Set: c.networkSet(e.Text, v6)}}
	}
	var ps []netip.Prefix
	for _, p := range e.Prefixes {
		if p.Addr().Is6() == v6 {
			ps = append(ps, p)
		}
	}
	return []nft.Expr{&nft.Addr{Dir: dir, V6: v6, Prefixes: normalise(ps)}}
}

// networkSet declares (once) the set holding a named network's prefixes of
// one family.
func (c *compiler) networkSet(name string, v6 bool) string {
	setName := "net_" + name + "_v4"
	kt := nft.KeyIPv4
	if v6 {
		setName, kt = "net_"+name+"_v6", nft.KeyIPv6
	}
	if !c.sets[setName] {
		c.sets[setName] = true
		var ps []netip.Prefix
		for _, p := range c.p.Networks[name] {
			if p.Addr().Is6() == v6 {
				ps = append(ps, p)
			}
		}
		c.t.Sets = append(c.t.Sets, &nft.Set{Name: setName, Type: kt, Interval: true, Prefixes: normalise(ps), Comment: "network " + name})
	}
	return setName
}

// meterSet declares a per-source dynamic set. Entries expire after timeout
// of inactivity (none for connection-count sets, which the kernel prunes as
// connections close); size bounds the memory an attacker can make us use.
func (c *compiler) meterSet(base string, v6 bool, timeout time.Duration, conn bool) string {
	name := base + "_v4"
	kt := nft.KeyIPv4
	if v6 {
		name, kt = base+"_v6", nft.KeyIPv6
	}
	if !c.sets[name] {
		c.sets[name] = true
		s := &nft.Set{Name: name, Type: kt, Dynamic: true, Size: c.p.Limit.TableSize}
		if !conn {
			s.Timeout = max(timeout, time.Second)
		}
		c.t.Sets = append(c.t.Sets, s)
	}
	return name
}

func (c *compiler) meterBits(v6 bool) int {
	if v6 {
		return c.p.Limit.IPv6Bits
	}
	return 32
}

// verdictRules turns one leg's match into the kernel rules for the rule's
// action, with logging and meters.
func (c *compiler) verdictRules(d dirInfo, n int, r *policy.Rule, fam family, lg leg, match []nft.Expr, comment string) []*nft.Rule {
	var out []*nft.Rule
	reason := "rule-" + strconv.Itoa(n)
	final := func(exprs ...nft.Expr) {
		out = append(out, &nft.Rule{Exprs: append(slices.Clone(match), exprs...), Comment: comment})
	}
	switch r.Action {
	case policy.Deny:
		if c.logs(policy.LogMedium) || r.Log {
			out = append(out, c.logRules(match, d.short, "drop", reason, comment)...)
		}
		final(&nft.Counter{}, drop())
	case policy.Reject:
		if c.logs(policy.LogMedium) || r.Log {
			out = append(out, c.logRules(match, d.short, "reject", reason, comment)...)
		}
		switch lg.proto {
		case policy.ProtoTCP:
			final(&nft.Counter{}, &nft.Verdict{Kind: nft.VerdictRejectTCPReset})
		case policy.ProtoAny:
			final(&nft.L4Proto{Proto: nft.ProtoTCP}, &nft.Counter{}, &nft.Verdict{Kind: nft.VerdictRejectTCPReset})
			final(&nft.Counter{}, &nft.Verdict{Kind: nft.VerdictReject})
		default:
			final(&nft.Counter{}, &nft.Verdict{Kind: nft.VerdictReject})
		}
	case policy.Allow, policy.Limit:
		v6 := fam == famV6
		if r.Action == policy.Limit {
			rate := r.Rate
			if rate.IsZero() {
				rate = c.p.Limit.Rate
			}
			lr, unit, burst := limitOf(rate)
			set := c.meterSet("limit_"+strconv.Itoa(n), v6, rate.Per, false)
			over := append(slices.Clone(match), &nft.CtState{States: nft.CtNew},
				&nft.Meter{Set: set, V6: v6, PrefixLen: c.meterBits(v6), Stmt: &nft.Limit{Rate: lr, Unit: unit, Burst: burst, Over: true}})
			if c.logs(policy.LogMedium) || r.Log {
				// The meter must run once per packet, so a hit jumps to a
				// chain that logs and drops rather than repeating the match.
				out = append(out, &nft.Rule{Exprs: append(slices.Clone(over), &nft.Counter{}, &nft.Verdict{Kind: nft.VerdictJump, Chain: c.limitLogChain(d, reason)}), Comment: comment})
			} else {
				out = append(out, &nft.Rule{Exprs: append(over, &nft.Counter{}, drop()), Comment: comment})
			}
		}
		if r.ConnLimit > 0 {
			set := c.meterSet("conn_"+strconv.Itoa(n), v6, 0, true)
			// Over the cap, TCP gets a reset (the client sees a refusal at
			// once); other protocols are dropped.
			verdict := drop()
			if lg.proto == policy.ProtoTCP {
				verdict = &nft.Verdict{Kind: nft.VerdictRejectTCPReset}
			}
			final(&nft.CtState{States: nft.CtNew},
				&nft.Meter{Set: set, V6: v6, PrefixLen: c.meterBits(v6), Stmt: &nft.CtCount{N: r.ConnLimit, Over: true}},
				&nft.Counter{}, verdict)
		}
		if c.logs(policy.LogHigh) || r.Log {
			out = append(out, c.logRules(append(slices.Clone(match), &nft.CtState{States: nft.CtNew}), d.short, "allow", reason, comment)...)
		}
		final(&nft.Counter{}, accept())
	}
	return out
}

// limitLogChain declares (once) a chain that logs a rate-limit hit and
// drops it.
func (c *compiler) limitLogChain(d dirInfo, reason string) string {
	name := d.short + "_" + strings.ReplaceAll(reason, "-", "") + "_limited"
	for _, ch := range c.extra {
		if ch.Name == name {
			return name
		}
	}
	ch := &nft.Chain{Name: name}
	ch.Rules = append(ch.Rules, c.logRules(nil, d.short, "limit", reason, "")...)
	ch.Rules = append(ch.Rules, &nft.Rule{Exprs: []nft.Expr{drop()}})
	c.extra = append(c.extra, ch)
	return name
}

// limitOf expresses count-per-period as an nft token bucket: a bucket of
// Count tokens refilled at Count per Per, in the coarsest unit nft knows that
// keeps the rate an integer (6/30s becomes 12/minute, burst 6).
func limitOf(r policy.Rate) (rate uint64, unit time.Duration, burst uint32) {
	burst = r.Count
	for _, u := range []time.Duration{time.Second, time.Minute, time.Hour, 24 * time.Hour} {
		num := uint64(r.Count) * uint64(u)
		if num%uint64(r.Per) == 0 {
			return num / uint64(r.Per), u, burst
		}
	}
	day := 24 * time.Hour
	return max(1, (uint64(r.Count)*uint64(day)+uint64(r.Per)/2)/uint64(r.Per)), day, burst
}

// normalise sorts prefixes and drops those inside another, so that interval
// sets never see overlapping elements (which the kernel refuses).
func normalise(ps []netip.Prefix) []netip.Prefix {
	ps = slices.Clone(ps)
	for i := range ps {
		ps[i] = ps[i].Masked()
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []netip.Prefix
	for _, p := range ps {
		if len(out) > 0 && out[len(out)-1].Overlaps(p) {
			continue // sorted: the earlier one is at least as wide
		}
		out = append(out, p)
	}
	return out
}
