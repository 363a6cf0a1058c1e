package firewall

import (
	"net/netip"

	"github.com/moat-sec/moat/internal/nft"
)

// The UDP verifier's switch: sets that hold the whole address space (one
// element, 0.0.0.0/0 and ::/0) while the daemon listens on the UDP trap
// ports to verify their sources, and nothing otherwise. Trap datagrams to
// an address in the switch are accepted (they reach the daemon, which
// answers with a cookie); the rest are dropped, so that, whatever the
// policy says, nothing reaches a trap port no one listens on (the kernel
// would answer with an ICMP error, to a source that may be forged). The
// daemon refreshes the element's timeout: if the daemon dies, the switch
// turns itself off.
const (
	trapUDPOnV4 = "trapudp_on_v4"
	trapUDPOnV6 = "trapudp_on_v6"
)

// TrapUDPSwitch is the UDP verifier's switch in table: the sets and the
// element that turns each on.
func TrapUDPSwitch(table string) ([]nft.SetRef, []netip.Prefix) {
	return []nft.SetRef{
			{Table: table, Name: trapUDPOnV4, Interval: true},
			{Table: table, Name: trapUDPOnV6, V6: true, Interval: true},
		}, []netip.Prefix{
			netip.MustParsePrefix("0.0.0.0/0"),
			netip.MustParsePrefix("::/0"),
		}
}

// trapUDPSwitchSets declares the switch. Kept across Replace, so that
// reloading the policy does not turn verification off until the daemon's
// next refresh.
func trapUDPSwitchSets() []*nft.Set {
	return []*nft.Set{
		{Name: trapUDPOnV4, Type: nft.KeyIPv4, Interval: true, Timeouts: true, Keep: true, Comment: "udp trap verifier listening"},
		{Name: trapUDPOnV6, Type: nft.KeyIPv6, Interval: true, Timeouts: true, Keep: true, Comment: "udp trap verifier listening"},
	}
}

// trapUDPRules log datagrams to the UDP trap ports (the alert, rate
// limited), accept them while the verifier's switch is on, and drop them
// otherwise. Nothing here bans: a datagram's source can be forged, and
// only the daemon's cookie check can prove it.
func (c *compiler) trapUDPRules(log []nft.Expr) []*nft.Rule {
	trap := func() *nft.Port { return &nft.Port{Dir: nft.Dst, Proto: nft.ProtoUDP, Set: trapUDPSet} }
	var out []*nft.Rule
	if len(log) > 0 {
		rate, unit, burst := limitOf(c.p.Logging.GroupRate)
		out = append(out, &nft.Rule{Exprs: append([]nft.Expr{trap(), &nft.Limit{Rate: rate, Unit: unit, Burst: burst}}, log...), Comment: "moat trap udp log"})
	}
	for _, v6 := range []bool{false, true} {
		on := trapUDPOnV4
		if v6 {
			on = trapUDPOnV6
		}
		out = append(out, &nft.Rule{Exprs: []nft.Expr{
			trap(), &nft.NfProto{V6: v6}, &nft.Addr{Dir: nft.Dst, V6: v6, Set: on}, &nft.Counter{}, accept(),
		}, Comment: "moat trap udp verify"})
	}
	return append(out, &nft.Rule{Exprs: []nft.Expr{trap(), &nft.Counter{}, drop()}, Comment: "moat trap udp"})
}
