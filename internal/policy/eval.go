package policy

import "net/netip"

// Packet is the first packet of a new connection, as far as the policy can
// see it. InIface is set for incoming and routed packets, OutIface for
// outgoing and routed ones. Ports are ignored for protocols other than TCP
// and UDP.
type Packet struct {
	Direction         Direction
	InIface, OutIface string
	Proto             Proto
	Src, Dst          netip.Addr
	SrcPort, DstPort  uint16
}

// Decide returns what the policy does with the first packet of a new
// connection: the action, and the index in p.Rules of the rule that decided
// (-1 for a guard or the default). It is a reference for the compiled
// ruleset, in the same order:
//
//  1. the loopback guard: with Guards.Loopback, incoming packets on "lo" and
//     outgoing packets to "lo" are allowed;
//  2. the ICMP guard: with Guards.ICMP, ICMP and ICMPv6 packets are allowed
//     (the real guard admits only the types networks need; this is a
//     simplification);
//  3. the rules, in order, first match wins; a limit rule decides Limit;
//  4. the default for the packet's direction.
//
// Rate limits, connection limits and conntrack state are not modelled.
func (p *Policy) Decide(pkt Packet) (Action, int) {
	if p.Guards.Loopback &&
		(pkt.Direction == In && pkt.InIface == "lo" || pkt.Direction == Out && pkt.OutIface == "lo") {
		return Allow, -1
	}
	if p.Guards.ICMP && (pkt.Proto == ProtoICMP || pkt.Proto == ProtoICMPv6) {
		return Allow, -1
	}
	pkt.Src, pkt.Dst = pkt.Src.Unmap(), pkt.Dst.Unmap()
	for i := range p.Rules {
		if p.Rules[i].Matches(pkt) {
			return p.Rules[i].Action, i
		}
	}
	switch pkt.Direction {
	case In:
		return p.Incoming, -1
	case Out:
		return p.Outgoing, -1
	case Routed:
		return p.Routed, -1
	}
	return Deny, -1
}

// Matches reports whether the rule matches pkt: direction, interfaces,
// protocol, addresses and ports. A rule with ports or application services
// matches only TCP and UDP packets (both when it names no protocol).
func (r *Rule) Matches(pkt Packet) bool {
	if r.Direction != pkt.Direction {
		return false
	}
	if r.InIface != "" && r.InIface != pkt.InIface || r.OutIface != "" && r.OutIface != pkt.OutIface {
		return false
	}
	if !endpointHas(r.From, pkt.Src.Unmap()) || !endpointHas(r.To, pkt.Dst.Unmap()) {
		return false
	}
	if r.Proto != ProtoAny && r.Proto != pkt.Proto {
		return false
	}
	hasServices := r.App != "" || len(r.Services) > 0
	if !hasServices && len(r.From.Ports) == 0 && len(r.To.Ports) == 0 {
		return true
	}
	if pkt.Proto != ProtoTCP && pkt.Proto != ProtoUDP {
		return false
	}
	if !r.From.Ports.Contains(pkt.SrcPort) || !r.To.Ports.Contains(pkt.DstPort) {
		return false
	}
	if !hasServices {
		return true
	}
	for _, s := range r.Services {
		if (s.Proto == ProtoAny || s.Proto == pkt.Proto) && s.Ports.Contains(pkt.DstPort) {
			return true
		}
	}
	return false
}

func endpointHas(e Endpoint, a netip.Addr) bool {
	if e.Any() {
		return true
	}
	for _, p := range e.Prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Redirected returns the index in p.Redirects of the redirect that sends
// pkt, the first packet of an incoming connection from a source that is
// not banned, to a honeypot instead of the service it was meant for.
// Allowlisted sources are never redirected.
func (p *Policy) Redirected(pkt Packet) (int, bool) {
	if pkt.Direction != In {
		return 0, false
	}
	src := pkt.Src.Unmap()
	for _, a := range p.Allowlist {
		if a.Contains(src) {
			return 0, false
		}
	}
	for i := range p.Redirects {
		r := &p.Redirects[i]
		if r.Banned || r.Proto != pkt.Proto || r.Port != pkt.DstPort {
			continue
		}
		if _, _, ok := r.Target(src.Is6()); !ok {
			continue
		}
		if endpointHas(r.From, src) != r.Except {
			return i, true
		}
	}
	return 0, false
}
