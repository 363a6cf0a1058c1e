package policy

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// short renders findings as "RULE code" (RULE is 1-based, 0 for the
// policy) for compact expectations.
func short(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, fmt.Sprintf("%d %s", f.Rule+1, f.Code))
	}
	return out
}

func TestLint(t *testing.T) {
	noSSH := func(p *Policy) { p.SSHPorts = nil }
	for _, tc := range []struct {
		name   string
		rules  []string
		policy func(*Policy)
		want   []string // short form
		msgs   []string // optional: the messages, in order
	}{
		{name: "clean", rules: []string{"allow from admins to any port 22 proto tcp", "limit OpenSSH", "allow 80,443/tcp"}, want: []string{}},
		{name: "empty policy denying everything", want: []string{"0 no-ssh"},
			msgs: []string{"incoming traffic is denied by default and no rule allows SSH (tcp port 22); the host would be unreachable over SSH"}},

		// duplicate
		{name: "duplicate", rules: []string{"allow 22/tcp", "allow 80/tcp", "allow 22/tcp"}, want: []string{"3 duplicate"},
			msgs: []string{"rule 3 (allow in 22/tcp) duplicates rule 1"}},
		{name: "duplicate in other words", rules: []string{"allow from admins to any port 22 proto tcp", "allow from admins to any app OpenSSH"},
			want: []string{"2 duplicate"}},
		{name: "duplicate network and prefixes", rules: []string{"deny from lan", "deny from 192.168.0.0/17", "deny from 192.168.0.0/16", "allow 22/tcp"},
			want: []string{"3 duplicate"}},
		{name: "not duplicate: other protocol", rules: []string{"allow 22/tcp", "allow 22/udp"}, want: []string{}},
		{name: "not duplicate: other interface", rules: []string{"allow in on eth0 22/tcp", "allow in on eth1 22/tcp"}, want: []string{}},
		{name: "not duplicate: other direction", rules: []string{"deny out 25/tcp", "deny 25/tcp", "allow 22/tcp"}, want: []string{}},
		{name: "not duplicate: other action", rules: []string{"allow 22/tcp", "limit 22/tcp"}, want: []string{"2 shadowed"}},

		// shadowed
		{name: "not shadowed: an earlier allow decides first", rules: []string{"allow 22/tcp", "deny from admins", "allow from 10.1.0.0/16 to any port 22 proto tcp"}, want: []string{}},
		{name: "shadowed", rules: []string{"deny from admins", "allow from 10.1.0.0/16 to any port 22 proto tcp", "allow 22/tcp"},
			want: []string{"2 shadowed"},
			msgs: []string{"rule 2 (allow in 22/tcp from 10.1.0.0/16) never takes effect: rule 1 (deny in from admins) comes first and matches all of its traffic"}},
		{name: "shadowed by union of halves", rules: []string{"deny from 10.0.0.0/9", "deny from 10.128.0.0/9", "allow from 10.0.0.0/8 port 22", "allow 22/tcp"},
			want: []string{}}, // two earlier rules together are not reported
		{name: "shadowed by a rule naming both halves", rules: []string{"deny from halves", "allow from 10.64.0.0/10 to any port 22 proto tcp", "allow 22/tcp"},
			want: []string{"2 shadowed"}},
		{name: "shadowed by limit", rules: []string{"limit 22/tcp", "allow from admins to any port 22 proto tcp"}, want: []string{"2 shadowed"}},
		{name: "shadowed port range", rules: []string{"deny 1000:2000/tcp", "allow 1500/tcp", "allow 1800:2100/tcp", "allow 22/tcp"}, want: []string{"2 shadowed"}},
		{name: "shadowed by any protocol", rules: []string{"deny 53", "allow 53/udp", "allow 22/tcp"}, want: []string{"2 shadowed"}},
		{name: "not shadowed by one protocol", rules: []string{"deny 53/udp", "allow 53", "allow 22/tcp"}, want: []string{}},
		{name: "shadowed by any interface", rules: []string{"reject 22/tcp", "allow in on eth0 22/tcp"}, want: []string{"0 no-ssh", "2 shadowed"}},
		{name: "not shadowed across interfaces", rules: []string{"deny in on eth0", "allow 22/tcp"}, want: []string{}},
		{name: "not shadowed: specific first", rules: []string{"deny from 10.1.0.0/16 to any port 22 proto tcp", "allow from admins to any port 22 proto tcp"}, want: []string{}},
		{name: "not shadowed: other family", rules: []string{"deny from 0.0.0.0/0", "allow 22/tcp"}, want: []string{}},
		{name: "shadowed within family", rules: []string{"deny from 0.0.0.0/0", "allow from lan", "allow 22/tcp"}, want: []string{"2 shadowed"}},
		{name: "icmp is IPv4 only", rules: []string{"deny to 0.0.0.0/0", "allow proto icmp", "allow 22/tcp"}, want: []string{"2 shadowed"}},
		{name: "not shadowed: app port outside", rules: []string{"deny 80/tcp", "allow Nginx|Full", "allow 22/tcp"}, want: []string{}},
		{name: "shadowed app", rules: []string{"deny 1:1000/tcp", "allow Nginx|Full", "allow 22/tcp"}, want: []string{"0 no-ssh", "2 shadowed", "3 shadowed"}},
		{name: "shadowed from port", rules: []string{"deny from any port 53", "allow from 9.9.9.9 port 53 proto udp", "allow 22/tcp"}, want: []string{"2 shadowed"}},
		{name: "not shadowed: from port narrower", rules: []string{"deny from any port 53", "allow proto udp from 9.9.9.9", "allow 22/tcp"}, want: []string{}},
		{name: "routed", rules: []string{"route deny in on eth0", "route allow in on eth0 out on eth1", "route allow in on eth1 out on eth0", "allow 22/tcp"},
			want: []string{"2 shadowed"}},

		// never-matches
		{name: "never matches on lo", rules: []string{"allow 22/tcp", "deny in on lo", "allow out on lo 5432/tcp", "route deny in on lo"},
			want: []string{"2 never-matches", "3 never-matches"},
			msgs: []string{
				"rule 2 (deny in on lo) never matches: the loopback guard accepts all traffic on lo before any rule",
				"rule 3 (allow out on lo 5432/tcp) never matches: the loopback guard accepts all traffic on lo before any rule",
			}},
		{name: "lo without the guard", rules: []string{"allow 22/tcp", "deny in on lo 5432/tcp"}, policy: func(p *Policy) { p.Guards.Loopback = false }, want: []string{}},
		{name: "action equal to the default is fine", rules: []string{"allow 22/tcp", "deny 23/tcp", "reject 25/tcp"}, want: []string{}},
		{name: "never-matching rule shadows nothing", rules: []string{"deny in on lo", "allow in on lo 22/tcp", "allow 22/tcp"},
			want: []string{"1 never-matches", "2 never-matches"}},

		// redundant
		{name: "redundant", rules: []string{"allow 22/tcp", "allow out 53"}, want: []string{"2 redundant"},
			msgs: []string{"rule 2 (allow out 53) is redundant: outgoing traffic is allowed by default and no deny, reject or limit rule overlaps it"}},
		{name: "redundant incoming", rules: []string{"deny 23/tcp", "allow 80/tcp"}, policy: func(p *Policy) { p.Incoming = Allow }, want: []string{"2 redundant"}},
		{name: "not redundant: an earlier deny overlaps", rules: []string{"deny out to 1.2.3.4", "allow out 53/udp"}, policy: noSSH, want: []string{}},
		{name: "not redundant: a later deny", rules: []string{"allow out to 9.9.9.9 port 53", "deny out 53"}, policy: noSSH, want: []string{}},
		{name: "not redundant: a later limit", rules: []string{"allow out 53", "limit out 53"}, policy: noSSH, want: []string{"2 shadowed"}},
		{name: "not redundant: logs", rules: []string{"allow out log 53"}, policy: noSSH, want: []string{}},
		{name: "not redundant: connection limit", rules: []string{"allow out 25/tcp conn_limit 5"}, policy: noSSH, want: []string{}},
		{name: "not redundant: default deny", rules: []string{"allow 22/tcp", "route allow in on eth0 out on eth1"}, want: []string{}},
		{name: "limit is not redundant", rules: []string{"limit out 25/tcp"}, policy: noSSH, want: []string{}},
		{name: "deny rule disjoint from the allow", rules: []string{"deny out 25/tcp", "allow out 53/udp"}, policy: noSSH, want: []string{"2 redundant"}},

		// database-exposed
		{name: "postgres", rules: []string{"allow from admins to any port 22 proto tcp", "allow 5432/tcp"}, want: []string{"2 database-exposed"},
			msgs: []string{`rule 2 (allow in 5432/tcp) opens PostgreSQL (5432/tcp) to the world; restrict it with "from"`}},
		{name: "redis any proto", rules: []string{"allow 22/tcp", "allow 6379"}, want: []string{"2 database-exposed"},
			msgs: []string{`rule 2 (allow in 6379) opens Redis (6379/tcp) to the world; restrict it with "from"`}},
		{name: "memcached udp", rules: []string{"allow 22/tcp", "limit 11211"}, want: []string{"2 database-exposed"},
			msgs: []string{`rule 2 (limit in 11211) opens Memcached (11211/tcp+udp) to the world; restrict it with "from"`}},
		{name: "range", rules: []string{"allow 22/tcp", "allow 3000:5500/tcp"}, want: []string{"2 database-exposed"},
			msgs: []string{`rule 2 (allow in 3000:5500/tcp) opens MySQL (3306/tcp) and PostgreSQL (5432/tcp) to the world; restrict it with "from"`}},
		{name: "partly denied earlier", rules: []string{"allow 22/tcp", "deny 5432/tcp", "allow 5000:6000/tcp"}, want: []string{"3 database-exposed"},
			msgs: []string{`rule 3 (allow in 5000:6000/tcp) opens CouchDB (5984/tcp) to the world; restrict it with "from"`}},
		{name: "on an interface", rules: []string{"allow 22/tcp", "allow in on eth1 27017/tcp"}, want: []string{"2 database-exposed"},
			msgs: []string{`rule 2 (allow in on eth1 27017/tcp) opens MongoDB (27017/tcp) to any address on eth1; restrict it with "from"`}},
		{name: "from 0.0.0.0/0", rules: []string{"allow 22/tcp", "allow from 0.0.0.0/0 to any port 9200 proto tcp"}, want: []string{"2 database-exposed"}},
		{name: "db: from a network", rules: []string{"allow 22/tcp", "allow from admins to any port 5432 proto tcp"}, want: []string{}},
		{name: "db: outgoing", rules: []string{"allow 22/tcp", "allow out 5432/tcp conn_limit 5"}, want: []string{}},
		{name: "db: deny", rules: []string{"allow 22/tcp", "deny 5432/tcp"}, want: []string{}},
		{name: "db: udp", rules: []string{"allow 22/tcp", "allow 5432/udp"}, want: []string{}},
		{name: "db: no port", rules: []string{"allow 22/tcp", "allow proto tcp"}, want: []string{}},
		{name: "db: shadowed", rules: []string{"allow 22/tcp", "deny 1:10000/tcp", "allow 3306/tcp"}, want: []string{"3 shadowed"}},

		// no-ssh
		{name: "no ssh", rules: []string{"allow 80/tcp"}, want: []string{"0 no-ssh"}},
		{name: "no ssh, reject, two ports", rules: []string{"allow 80/tcp"}, policy: func(p *Policy) { p.Incoming = Reject; p.SSHPorts = []uint16{22, 2222} },
			want: []string{"0 no-ssh"},
			msgs: []string{"incoming traffic is rejected by default and no rule allows SSH (tcp ports 22, 2222); the host would be unreachable over SSH"}},
		{name: "ssh on other port", rules: []string{"allow 2222/tcp"}, policy: func(p *Policy) { p.SSHPorts = []uint16{2222} }, want: []string{}},
		{name: "ssh by app from a network", rules: []string{"limit from admins to any app OpenSSH"}, want: []string{}},
		{name: "ssh in everything from a network", rules: []string{"allow from admins"}, want: []string{}},
		{name: "ssh over udp only", rules: []string{"allow 22/udp"}, want: []string{"0 no-ssh"}},
		{name: "ssh denied first", rules: []string{"deny 22/tcp", "allow from admins to any port 22 proto tcp"}, want: []string{"0 no-ssh", "2 shadowed"}},
		{name: "ssh partly denied first", rules: []string{"deny from 10.0.0.0/9 to any port 22 proto tcp", "allow from admins to any port 22 proto tcp"}, want: []string{}},
		{name: "ssh only on lo", rules: []string{"allow in on lo 22/tcp"}, want: []string{"0 no-ssh", "1 never-matches"}},
		{name: "ssh: default allow", rules: []string{}, policy: func(p *Policy) { p.Incoming = Allow }, want: []string{}},
		{name: "ssh: no ssh ports", policy: func(p *Policy) { p.SSHPorts = nil }, want: []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testPolicy(t, tc.rules...)
			if tc.policy != nil {
				tc.policy(p)
			}
			got := Lint(p)
			if d := cmp.Diff(tc.want, short(got)); d != "" {
				t.Errorf("Lint (-want +got):\n%s\nfindings:\n%s", d, findingsText(got))
			}
			if tc.msgs != nil {
				var msgs []string
				for _, f := range got {
					msgs = append(msgs, f.Msg)
				}
				if d := cmp.Diff(tc.msgs, msgs); d != "" {
					t.Errorf("messages (-want +got):\n%s", d)
				}
			}
			for _, f := range got {
				want := SeverityWarning
				if f.Code == "shadowed" {
					want = SeverityError
				}
				if f.Severity != want {
					t.Errorf("%s: severity %q, want %q", f.Code, f.Severity, want)
				}
			}
		})
	}
}

func findingsText(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %d %s\n", f.Rule, f)
	}
	return b.String()
}

func TestLintNil(t *testing.T) {
	if got := Lint(nil); got != nil {
		t.Errorf("Lint(nil) = %v", got)
	}
}

func TestLintHandMadeNeverMatches(t *testing.T) {
	p := &Policy{Incoming: Allow, Outgoing: Allow, Routed: Allow, Rules: []Rule{
		{Action: Deny, From: Endpoint{Prefixes: pfx("10.0.0.0/8")}, To: Endpoint{Prefixes: pfx("2001:db8::/32")}},
		{Action: Deny, Proto: ProtoICMP, To: Endpoint{Prefixes: pfx("2001:db8::/32")}},
		{Action: Deny, Proto: ProtoICMPv6, To: Endpoint{Prefixes: pfx("10.0.0.0/8")}},
		{Action: Deny, Proto: ProtoICMP, To: Endpoint{Ports: Ports{{1, 1}}}},
		{Action: Deny, App: "Hollow"},
	}}
	got := Lint(p)
	want := []string{
		"rule 1 (deny in from 10.0.0.0/8 to 2001:db8::/32) never matches: its from and to addresses have no address family in common",
		"rule 2 (deny in proto icmp to 2001:db8::/32) never matches: icmp is IPv4 only but its addresses are IPv6",
		"rule 3 (deny in proto icmpv6 to 10.0.0.0/8) never matches: icmpv6 is IPv6 only but its addresses are IPv4",
		"rule 4 (deny in 1/icmp) never matches: ports need proto tcp or udp",
		"rule 5 (deny in Hollow) never matches: its application has no ports for its protocol",
	}
	var msgs []string
	for _, f := range got {
		msgs = append(msgs, f.Msg)
	}
	if d := cmp.Diff(want, msgs); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestSummary(t *testing.T) {
	for _, tc := range []struct{ args, want string }{
		{"allow from admins to any port 22 proto tcp", "allow in 22/tcp from admins"},
		{"allow 53", "allow in 53"},
		{"deny in on eth0", "deny in on eth0"},
		{"deny out on eth0 to 1.2.3.4 port 25 proto tcp", "deny out on eth0 25/tcp to 1.2.3.4"},
		{"route allow in on eth0 out on eth1", "allow routed in on eth0 out on eth1"},
		{"route allow out on eth1", "allow routed out on eth1"},
		{"limit OpenSSH", "limit in OpenSSH"},
		{"allow to any app Samba proto udp", "allow in Samba/udp"},
		{"allow proto icmp from lan", "allow in proto icmp from lan"},
		{"allow from any port 53 proto udp", "allow in proto udp from any port 53"},
		{"allow from 10.0.0.0/8 port 53 to lan", "allow in from 10.0.0.0/8 port 53 to lan"},
		{"allow in", "allow in"},
	} {
		r := mustRules(t, tc.args)[0]
		if got := r.Summary(); got != tc.want {
			t.Errorf("%s: Summary() = %q, want %q", tc.args, got, tc.want)
		}
	}
	// Hand-made rules: services without an app name, prefixes without text.
	r := Rule{Action: Allow, Services: []Service{{ProtoTCP, Ports{{80, 80}}}, {ProtoAny, Ports{{53, 53}}}},
		From: Endpoint{Prefixes: pfx("10.0.0.0/8", "::/0")}}
	if got, want := r.Summary(), "allow in 80/tcp 53/any from 10.0.0.0/8,::/0"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
}

func TestCovered(t *testing.T) {
	for _, tc := range []struct {
		as   []string
		b    string
		want bool
	}{
		{[]string{"10.0.0.0/8"}, "10.1.0.0/16", true},
		{[]string{"10.1.0.0/16"}, "10.0.0.0/8", false},
		{[]string{"10.0.0.0/9", "10.128.0.0/9"}, "10.0.0.0/8", true},
		{[]string{"10.0.0.0/9", "10.128.0.0/10"}, "10.0.0.0/8", false},
		{[]string{"10.0.0.0/9", "10.128.0.0/10", "10.192.0.0/10"}, "10.0.0.0/8", true},
		{[]string{"0.0.0.0/1", "128.0.0.0/1"}, "0.0.0.0/0", true},
		{[]string{"::/1", "8000::/1"}, "::/0", true},
		{[]string{"::/0"}, "10.0.0.0/8", false},
		{[]string{"10.0.0.1/32"}, "10.0.0.1/32", true},
		{[]string{"10.0.0.0/32", "10.0.0.1/32"}, "10.0.0.0/31", true},
		{[]string{"2001:db8::/33", "2001:db8:8000::/33"}, "2001:db8::/32", true},
	} {
		if got := covered(pfx(tc.as...), netip.MustParsePrefix(tc.b)); got != tc.want {
			t.Errorf("covered(%v, %s) = %v, want %v", tc.as, tc.b, got, tc.want)
		}
	}
}

func TestPortSet(t *testing.T) {
	s := newPortSet(Ports{{80, 80}, {20, 30}, {31, 40}, {25, 35}, {65535, 65535}, {65534, 65534}})
	if want := (portSet{{20, 40}, {80, 80}, {65534, 65535}}); !cmp.Equal(s, want) {
		t.Errorf("newPortSet = %v, want %v", s, want)
	}
	if !s.contains(portSet{{21, 39}, {80, 80}}) || s.contains(portSet{{39, 41}}) {
		t.Error("contains")
	}
	if !s.overlaps(portSet{{40, 50}}) || s.overlaps(portSet{{41, 79}}) {
		t.Error("overlaps")
	}
	if got := s.intersect(portSet{{35, 85}}); !cmp.Equal(got, portSet{{35, 40}, {80, 80}}) {
		t.Errorf("intersect = %v", got)
	}
	if got := s.intersect(portSet{{41, 79}}); got != nil {
		t.Errorf("empty intersect = %v", got)
	}
}

// TestMatchModel checks the lint model against Rule.Matches on random rules
// and packets: when the model says A contains B, every packet B matches A
// matches too; when A and B match a common packet, the model says they
// overlap; and a rule the model calls empty matches nothing.
func TestMatchModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	addrs := []string{"10.0.0.1", "10.1.0.1", "10.128.0.1", "192.168.1.1", "2001:db8::1", "2001:db8:1::1", "fe80::1"}
	prefixes := [][]netip.Prefix{nil, nil, pfx("10.0.0.0/8"), pfx("10.0.0.0/9"), pfx("10.0.0.0/9", "10.128.0.0/9"),
		pfx("10.1.0.0/16"), pfx("192.168.0.0/16", "2001:db8::/32"), pfx("2001:db8::/32"), pfx("2001:db8:1::/48"), pfx("::/0")}
	portLists := []Ports{nil, nil, {{22, 22}}, {{20, 25}}, {{22, 22}, {53, 53}}, {{25, 80}}}
	protos := []Proto{ProtoAny, ProtoAny, ProtoTCP, ProtoUDP, ProtoICMP, ProtoICMPv6}
	ifaces := []string{"", "", "eth0", "eth1"}
	randRule := func() Rule {
		r := Rule{
			Direction: Direction(rng.IntN(2)),
			InIface:   pick(ifaces),
			Proto:     protos[rng.IntN(len(protos))],
			From:      Endpoint{Prefixes: prefixes[rng.IntN(len(prefixes))], Ports: portLists[rng.IntN(len(portLists))]},
			To:        Endpoint{Prefixes: prefixes[rng.IntN(len(prefixes))], Ports: portLists[rng.IntN(len(portLists))]},
		}
		if rng.IntN(4) == 0 {
			r.To.Ports = nil
			r.App = "x"
			for range 1 + rng.IntN(2) {
				r.Services = append(r.Services, Service{protos[rng.IntN(3)], portLists[2+rng.IntN(len(portLists)-2)]})
			}
		}
		if r.Proto == ProtoICMP || r.Proto == ProtoICMPv6 {
			r.From.Ports, r.To.Ports, r.App, r.Services = nil, nil, "", nil
		}
		return r
	}
	randPacket := func() Packet {
		p := Packet{Direction: Direction(rng.IntN(2)), InIface: pick(ifaces[1:]), SrcPort: uint16(20 + rng.IntN(40)), DstPort: uint16(20 + rng.IntN(40))}
		p.Src = netip.MustParseAddr(pick(addrs))
		for {
			p.Dst = netip.MustParseAddr(pick(addrs))
			if p.Dst.Is4() == p.Src.Is4() {
				break
			}
		}
		// Only realistic packets: ICMP in IPv4, ICMPv6 in IPv6.
		p.Proto = []Proto{ProtoTCP, ProtoUDP, "gre", ProtoICMP}[rng.IntN(4)]
		if p.Proto == ProtoICMP && p.Src.Is6() {
			p.Proto = ProtoICMPv6
		}
		return p
	}
	packets := make([]Packet, 2000)
	for i := range packets {
		packets[i] = randPacket()
	}
	var contained, overlapping int
	for range 1500 {
		a, b := randRule(), randRule()
		if rng.IntN(2) == 0 {
			// b differs from a in one field: near the boundary of containment.
			c := randRule()
			b = a
			switch rng.IntN(6) {
			case 0:
				b.InIface = c.InIface
			case 1:
				b.Proto = c.Proto
			case 2:
				b.From = c.From
			case 3:
				b.To = c.To
			case 4:
				b.App, b.Services = c.App, c.Services
			case 5:
				b.From.Ports = c.From.Ports
			}
		}
		ma, mb := newMatchSet(&a), newMatchSet(&b)
		contains, overlaps := ma.contains(mb), ma.overlaps(mb)
		if overlaps != mb.overlaps(ma) {
			t.Fatalf("overlaps is not symmetric for %s and %s", a.Summary(), b.Summary())
		}
		if contains && !mb.empty() {
			contained++
		}
		if overlaps {
			overlapping++
		}
		for _, p := range packets {
			inA, inB := a.Matches(p), b.Matches(p)
			if inB && !inA && contains {
				t.Fatalf("model: %q contains %q, but %+v matches only the second", a.Summary(), b.Summary(), p)
			}
			if inA && inB && !overlaps {
				t.Fatalf("model: %q and %q do not overlap, but both match %+v", a.Summary(), b.Summary(), p)
			}
			if inB && mb.empty() {
				t.Fatalf("model: %q is empty, but matches %+v", b.Summary(), p)
			}
		}
	}
	t.Logf("%d containments and %d overlaps", contained, overlapping)
	if contained < 50 || overlapping < 100 {
		t.Errorf("weak test: %d containments and %d overlaps in 1500 pairs", contained, overlapping)
	}
}
