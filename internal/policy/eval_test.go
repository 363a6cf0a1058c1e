package policy

import (
	"net/netip"
	"testing"
)

// mustRules parses and resolves command lines ("|" is a space inside a
// word, as in words).
func mustRules(t testing.TB, lines ...string) []Rule {
	t.Helper()
	rules := make([]Rule, len(lines))
	for i, l := range lines {
		spec, err := ParseArgs(words(l))
		if err != nil {
			t.Fatalf("%s: %v", l, err)
		}
		if rules[i], err = Resolve(spec, testNetworks, testApps); err != nil {
			t.Fatalf("%s: %v", l, err)
		}
	}
	return rules
}

func testPolicy(t testing.TB, lines ...string) *Policy {
	return &Policy{
		Incoming: Deny,
		Outgoing: Allow,
		Routed:   Deny,
		Networks: testNetworks,
		Guards:   Guards{Loopback: true, Established: true, Invalid: true, ICMP: true},
		SSHPorts: []uint16{22},
		Rules:    mustRules(t, lines...),
	}
}

func tcpIn(src string, port uint16) Packet {
	return Packet{Direction: In, InIface: "eth0", Proto: ProtoTCP, Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr("192.0.2.1"), SrcPort: 40000, DstPort: port}
}

func TestDecide(t *testing.T) {
	mod := func(p Packet, f func(*Packet)) Packet { f(&p); return p }
	type check struct {
		name   string
		pkt    Packet
		action Action
		rule   int
	}
	for _, tc := range []struct {
		name   string
		rules  []string
		policy func(*Policy)
		checks []check
	}{
		{
			name: "default deny",
			checks: []check{
				{"tcp in", tcpIn("198.51.100.7", 80), Deny, -1},
				{"out", Packet{Direction: Out, OutIface: "eth0", Proto: ProtoUDP, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("9.9.9.9"), DstPort: 53}, Allow, -1},
				{"routed", Packet{Direction: Routed, InIface: "eth0", OutIface: "eth1", Proto: ProtoTCP, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("192.168.1.1"), DstPort: 80}, Deny, -1},
				{"bad direction", mod(tcpIn("10.0.0.1", 22), func(p *Packet) { p.Direction = 7 }), Deny, -1},
			},
		},
		{
			name:   "default reject",
			policy: func(p *Policy) { p.Incoming = Reject },
			checks: []check{{"tcp in", tcpIn("198.51.100.7", 80), Reject, -1}},
		},
		{
			name:  "port and protocol",
			rules: []string{"allow 22/tcp", "allow 53", "allow 6000:6007/udp"},
			checks: []check{
				{"tcp 22", tcpIn("198.51.100.7", 22), Allow, 0},
				{"udp 22", mod(tcpIn("198.51.100.7", 22), func(p *Packet) { p.Proto = ProtoUDP }), Deny, -1},
				{"tcp 53", tcpIn("198.51.100.7", 53), Allow, 1},
				{"udp 53", mod(tcpIn("198.51.100.7", 53), func(p *Packet) { p.Proto = ProtoUDP }), Allow, 1},
				{"other proto 53", mod(tcpIn("198.51.100.7", 53), func(p *Packet) { p.Proto = "gre" }), Deny, -1},
				{"udp 6003", mod(tcpIn("198.51.100.7", 6003), func(p *Packet) { p.Proto = ProtoUDP }), Allow, 2},
				{"tcp 6003", tcpIn("198.51.100.7", 6003), Deny, -1},
				{"udp 6008", mod(tcpIn("198.51.100.7", 6008), func(p *Packet) { p.Proto = ProtoUDP }), Deny, -1},
			},
		},
		{
			name:  "allow from network, first match wins",
			rules: []string{"deny from 10.0.0.5", "allow from admins", "reject 22/tcp"},
			checks: []check{
				{"denied host", tcpIn("10.0.0.5", 22), Deny, 0},
				{"admin v4", tcpIn("10.0.0.6", 22), Allow, 1},
				{"admin v6", tcpIn("2001:db8::5", 443), Allow, 1},
				{"admin mapped", tcpIn("::ffff:10.9.9.9", 443), Allow, 1},
				{"outsider ssh", tcpIn("198.51.100.7", 22), Reject, 2},
				{"outsider http", tcpIn("198.51.100.7", 80), Deny, -1},
			},
		},
		{
			name:  "to address and from port",
			rules: []string{"allow from any port 53 to 192.0.2.1 proto udp"},
			checks: []check{
				{"dns reply", Packet{Direction: In, Proto: ProtoUDP, Src: netip.MustParseAddr("9.9.9.9"), Dst: netip.MustParseAddr("192.0.2.1"), SrcPort: 53, DstPort: 40000}, Allow, 0},
				{"other dst", Packet{Direction: In, Proto: ProtoUDP, Src: netip.MustParseAddr("9.9.9.9"), Dst: netip.MustParseAddr("192.0.2.2"), SrcPort: 53, DstPort: 40000}, Deny, -1},
				{"other src port", Packet{Direction: In, Proto: ProtoUDP, Src: netip.MustParseAddr("9.9.9.9"), Dst: netip.MustParseAddr("192.0.2.1"), SrcPort: 54, DstPort: 40000}, Deny, -1},
				{"ipv6 dst", Packet{Direction: In, Proto: ProtoUDP, Src: netip.MustParseAddr("2001:db8::9"), Dst: netip.MustParseAddr("2001:db8::1"), SrcPort: 53, DstPort: 40000}, Deny, -1},
			},
		},
		{
			name:  "limit",
			rules: []string{"limit OpenSSH", "limit 80/tcp rate 10/second conn_limit 50"},
			checks: []check{
				{"ssh", tcpIn("198.51.100.7", 22), Limit, 0},
				{"http", tcpIn("198.51.100.7", 80), Limit, 1},
				{"https", tcpIn("198.51.100.7", 443), Deny, -1},
			},
		},
		{
			name:  "application services",
			rules: []string{"allow from lan to any app Samba"},
			checks: []check{
				{"udp 137", mod(tcpIn("192.168.1.9", 137), func(p *Packet) { p.Proto = ProtoUDP }), Allow, 0},
				{"tcp 137", tcpIn("192.168.1.9", 137), Deny, -1},
				{"tcp 445", tcpIn("192.168.1.9", 445), Allow, 0},
				{"tcp 445 from outside", tcpIn("198.51.100.7", 445), Deny, -1},
			},
		},
		{
			name:  "interfaces",
			rules: []string{"allow in on eth1 8080/tcp", "deny out on eth0 to any port 25", "route allow in on eth0 out on eth1"},
			checks: []check{
				{"on eth1", mod(tcpIn("198.51.100.7", 8080), func(p *Packet) { p.InIface = "eth1" }), Allow, 0},
				{"on eth0", tcpIn("198.51.100.7", 8080), Deny, -1},
				{"on eth10", mod(tcpIn("198.51.100.7", 8080), func(p *Packet) { p.InIface = "eth10" }), Deny, -1},
				{"smtp out eth0", Packet{Direction: Out, OutIface: "eth0", Proto: ProtoTCP, Dst: netip.MustParseAddr("203.0.113.5"), DstPort: 25}, Deny, 1},
				{"smtp out eth1", Packet{Direction: Out, OutIface: "eth1", Proto: ProtoTCP, Dst: netip.MustParseAddr("203.0.113.5"), DstPort: 25}, Allow, -1},
				{"forward eth0 to eth1", Packet{Direction: Routed, InIface: "eth0", OutIface: "eth1", Proto: ProtoTCP, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("192.168.1.1"), DstPort: 80}, Allow, 2},
				{"forward eth1 to eth0", Packet{Direction: Routed, InIface: "eth1", OutIface: "eth0", Proto: ProtoTCP, Src: netip.MustParseAddr("192.168.1.1"), Dst: netip.MustParseAddr("10.0.0.1"), DstPort: 80}, Deny, -1},
			},
		},
		{
			name:  "icmp guard",
			rules: []string{"deny proto icmp", "deny proto icmpv6", "deny from admins"},
			checks: []check{
				{"icmp", Packet{Direction: In, Proto: ProtoICMP, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("192.0.2.1")}, Allow, -1},
				{"icmpv6", Packet{Direction: In, Proto: ProtoICMPv6, Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2")}, Allow, -1},
				{"icmp out", Packet{Direction: Out, Proto: ProtoICMP, Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("10.0.0.1")}, Allow, -1},
				{"tcp", tcpIn("10.0.0.1", 22), Deny, 2},
			},
		},
		{
			name:   "icmp without guard",
			rules:  []string{"deny proto icmp", "allow proto icmpv6"},
			policy: func(p *Policy) { p.Guards.ICMP = false; p.Incoming = Allow },
			checks: []check{
				{"icmp", Packet{Direction: In, Proto: ProtoICMP, Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("192.0.2.1")}, Deny, 0},
				{"icmpv6", Packet{Direction: In, Proto: ProtoICMPv6, Src: netip.MustParseAddr("2001:db8::1"), Dst: netip.MustParseAddr("2001:db8::2")}, Allow, 1},
				{"icmp without addresses", Packet{Direction: In, Proto: ProtoICMP, Src: netip.MustParseAddr("10.0.0.9")}, Deny, 0},
			},
		},
		{
			name:  "loopback guard",
			rules: []string{"deny in on lo", "deny out on lo", "deny from 127.0.0.0/8"},
			checks: []check{
				{"in on lo", Packet{Direction: In, InIface: "lo", Proto: ProtoTCP, Src: netip.MustParseAddr("127.0.0.1"), Dst: netip.MustParseAddr("127.0.0.1"), DstPort: 5432}, Allow, -1},
				{"out on lo", Packet{Direction: Out, OutIface: "lo", Proto: ProtoTCP, Src: netip.MustParseAddr("127.0.0.1"), Dst: netip.MustParseAddr("127.0.0.1"), DstPort: 5432}, Allow, -1},
				{"127/8 on eth0", Packet{Direction: In, InIface: "eth0", Proto: ProtoTCP, Src: netip.MustParseAddr("127.0.0.1"), DstPort: 5432}, Deny, 2},
			},
		},
		{
			name:   "loopback without guard",
			rules:  []string{"deny in on lo 5432/tcp", "allow in on lo"},
			policy: func(p *Policy) { p.Guards.Loopback = false },
			checks: []check{
				{"postgres on lo", Packet{Direction: In, InIface: "lo", Proto: ProtoTCP, DstPort: 5432}, Deny, 0},
				{"other on lo", Packet{Direction: In, InIface: "lo", Proto: ProtoTCP, DstPort: 6379}, Allow, 1},
				{"out on lo", Packet{Direction: Out, OutIface: "lo", Proto: ProtoTCP, DstPort: 6379}, Allow, -1},
			},
		},
	} {
		p := testPolicy(t, tc.rules...)
		if tc.policy != nil {
			tc.policy(p)
		}
		for _, c := range tc.checks {
			a, i := p.Decide(c.pkt)
			if a != c.action || i != c.rule {
				t.Errorf("%s: %s: Decide = %v, %d; want %v, %d", tc.name, c.name, a, i, c.action, c.rule)
			}
		}
	}
}

func TestRuleMatchesHandMade(t *testing.T) {
	// Rules that Resolve would refuse still evaluate safely: an application
	// without services and ports with icmp match nothing.
	for _, r := range []Rule{
		{Action: Deny, App: "Hollow"},
		{Action: Deny, Proto: ProtoICMP, To: Endpoint{Ports: Ports{{1, 1}}}},
	} {
		for _, proto := range []Proto{ProtoTCP, ProtoUDP, ProtoICMP, "gre"} {
			if r.Matches(Packet{Proto: proto, DstPort: 1}) {
				t.Errorf("%s matches %s", r.Summary(), proto)
			}
		}
	}
}
