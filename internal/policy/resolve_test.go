package policy

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

var testNetworks = map[string][]netip.Prefix{
	"admins": pfx("10.0.0.0/8", "2001:db8::/32"),
	"lan":    pfx("192.168.0.0/16"),
	"lan6":   pfx("2001:db8:1::/48"),
	"mapped": pfx("::ffff:172.16.0.0/108"),
	"empty":  {},
	"halves": pfx("10.0.0.0/9", "10.128.0.0/9"),
}

// testApps is a small catalogue: names match case-insensitively, like the
// appprofile catalogue, and report their canonical spelling.
var testApps = AppLookupFunc(func(name string) (string, []Service, bool) {
	for _, a := range []struct {
		name string
		svcs []Service
	}{
		{"OpenSSH", []Service{{ProtoTCP, Ports{{22, 22}}}}},
		{"Nginx Full", []Service{{ProtoTCP, Ports{{80, 80}, {443, 443}}}}},
		{"DNS", []Service{{ProtoAny, Ports{{53, 53}}}}},
		{"Samba", []Service{{ProtoUDP, Ports{{137, 138}}}, {ProtoTCP, Ports{{139, 139}, {445, 445}}}}},
		{"Hollow", nil},
		{"NoPorts", []Service{{ProtoTCP, nil}}},
		{"Weird", []Service{{ProtoICMP, Ports{{1, 1}}}}},
	} {
		if strings.EqualFold(name, a.name) {
			return a.name, a.svcs, true
		}
	}
	return "", nil, false
})

var anyEnd = Endpoint{Text: "any"}

func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
		want Rule
	}{
		{"port", Spec{Action: "allow", Port: "22", Proto: "tcp"},
			Rule{Action: Allow, Proto: ProtoTCP, From: anyEnd, To: Endpoint{Text: "any", Ports: Ports{{22, 22}}}}},
		{"port any proto", Spec{Action: "deny", Port: "53,6000:6007"},
			Rule{Action: Deny, From: anyEnd, To: Endpoint{Text: "any", Ports: Ports{{53, 53}, {6000, 6007}}}}},
		{"explicit any", Spec{Action: "deny", Direction: "in", From: "any", To: "any", Proto: "any"},
			Rule{Action: Deny, From: anyEnd, To: anyEnd}},
		{"out to address", Spec{Action: "reject", Direction: "out", To: "1.2.3.4"},
			Rule{Action: Reject, Direction: Out, From: anyEnd, To: Endpoint{Text: "1.2.3.4", Prefixes: pfx("1.2.3.4/32")}}},
		{"ipv6 address", Spec{Action: "allow", From: "2001:db8::1"},
			Rule{Action: Allow, From: Endpoint{Text: "2001:db8::1", Prefixes: pfx("2001:db8::1/128")}, To: anyEnd}},
		{"mapped address", Spec{Action: "allow", From: "::ffff:10.1.2.3"},
			Rule{Action: Allow, From: Endpoint{Text: "::ffff:10.1.2.3", Prefixes: pfx("10.1.2.3/32")}, To: anyEnd}},
		{"mapped prefix", Spec{Action: "allow", From: "::ffff:10.1.2.0/120"},
			Rule{Action: Allow, From: Endpoint{Text: "::ffff:10.1.2.0/120", Prefixes: pfx("10.1.2.0/24")}, To: anyEnd}},
		{"cidr", Spec{Action: "allow", From: "10.0.0.0/8", FromPort: "1024:65535", Proto: "udp"},
			Rule{Action: Allow, Proto: ProtoUDP, From: Endpoint{Text: "10.0.0.0/8", Prefixes: pfx("10.0.0.0/8"), Ports: Ports{{1024, 65535}}}, To: anyEnd}},
		{"network", Spec{Action: "allow", From: "admins", Port: "22", Proto: "tcp"},
			Rule{Action: Allow, Proto: ProtoTCP, From: Endpoint{Text: "admins", Prefixes: pfx("10.0.0.0/8", "2001:db8::/32")},
				To: Endpoint{Text: "any", Ports: Ports{{22, 22}}}}},
		{"network of mapped prefixes", Spec{Action: "allow", From: "mapped"},
			Rule{Action: Allow, From: Endpoint{Text: "mapped", Prefixes: pfx("172.16.0.0/12")}, To: anyEnd}},
		{"app", Spec{Action: "limit", App: "openssh"},
			Rule{Action: Limit, From: anyEnd, To: anyEnd, App: "OpenSSH", Services: []Service{{ProtoTCP, Ports{{22, 22}}}}}},
		{"app to address", Spec{Action: "allow", To: "10.0.0.5", App: "Nginx Full"},
			Rule{Action: Allow, From: anyEnd, To: Endpoint{Text: "10.0.0.5", Prefixes: pfx("10.0.0.5/32")},
				App: "Nginx Full", Services: []Service{{ProtoTCP, Ports{{80, 80}, {443, 443}}}}}},
		{"app proto filter", Spec{Action: "allow", App: "Samba", Proto: "udp"},
			Rule{Action: Allow, Proto: ProtoUDP, From: anyEnd, To: anyEnd, App: "Samba", Services: []Service{{ProtoUDP, Ports{{137, 138}}}}}},
		{"app any-proto service narrowed", Spec{Action: "allow", App: "DNS", Proto: "tcp"},
			Rule{Action: Allow, Proto: ProtoTCP, From: anyEnd, To: anyEnd, App: "DNS", Services: []Service{{ProtoTCP, Ports{{53, 53}}}}}},
		{"app with from port", Spec{Action: "allow", FromPort: "53", App: "DNS"},
			Rule{Action: Allow, From: Endpoint{Text: "any", Ports: Ports{{53, 53}}}, To: anyEnd, App: "DNS", Services: []Service{{ProtoAny, Ports{{53, 53}}}}}},
		{"limit options", Spec{Action: "limit", Port: "22", Proto: "tcp", Rate: "3/minute", ConnLimit: 10, Log: true, Comment: "ssh from anywhere, café ☕"},
			Rule{Action: Limit, Proto: ProtoTCP, From: anyEnd, To: Endpoint{Text: "any", Ports: Ports{{22, 22}}},
				Rate: Rate{3, time.Minute}, ConnLimit: 10, Log: true, Comment: "ssh from anywhere, café ☕"}},
		{"conn limit max", Spec{Action: "allow", Port: "80", ConnLimit: 100000},
			Rule{Action: Allow, From: anyEnd, To: Endpoint{Text: "any", Ports: Ports{{80, 80}}}, ConnLimit: 100000}},
		{"routed", Spec{Action: "allow", Direction: "routed", InIface: "eth0", OutIface: "eth1", To: "lan"},
			Rule{Action: Allow, Direction: Routed, InIface: "eth0", OutIface: "eth1", From: anyEnd, To: Endpoint{Text: "lan", Prefixes: pfx("192.168.0.0/16")}}},
		{"out iface", Spec{Action: "deny", Direction: "out", OutIface: "wg0"},
			Rule{Action: Deny, Direction: Out, OutIface: "wg0", From: anyEnd, To: anyEnd}},
		{"in iface", Spec{Action: "deny", InIface: "eth0"},
			Rule{Action: Deny, InIface: "eth0", From: anyEnd, To: anyEnd}},
		{"icmp v4", Spec{Action: "deny", Proto: "icmp", From: "admins"},
			Rule{Action: Deny, Proto: ProtoICMP, From: Endpoint{Text: "admins", Prefixes: pfx("10.0.0.0/8", "2001:db8::/32")}, To: anyEnd}},
		{"icmpv6 alias", Spec{Action: "deny", Proto: "ipv6-icmp", From: "lan6"},
			Rule{Action: Deny, Proto: ProtoICMPv6, From: Endpoint{Text: "lan6", Prefixes: pfx("2001:db8:1::/48")}, To: anyEnd}},
		{"mixed families with one in common", Spec{Action: "allow", From: "admins", To: "lan"},
			Rule{Action: Allow, From: Endpoint{Text: "admins", Prefixes: pfx("10.0.0.0/8", "2001:db8::/32")}, To: Endpoint{Text: "lan", Prefixes: pfx("192.168.0.0/16")}}},
		{"v4 only everywhere", Spec{Action: "allow", From: "0.0.0.0/0"},
			Rule{Action: Allow, From: Endpoint{Text: "0.0.0.0/0", Prefixes: pfx("0.0.0.0/0")}, To: anyEnd}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(tc.spec, testNetworks, testApps)
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if d := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
				t.Errorf("Resolve (-want +got):\n%s", d)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		err  string
	}{
		{Spec{}, "action: missing (want allow, deny, reject or limit)"},
		{Spec{Action: "permit"}, `action: unknown action "permit"`},
		{Spec{Action: "allow", Direction: "sideways"}, `direction: unknown direction "sideways"`},
		{Spec{Action: "allow", Proto: "gre"}, `proto: unknown protocol "gre"`},
		// Addresses.
		{Spec{Action: "allow", From: "admns"}, `from: unknown network "admns" (did you mean "admins"?)`},
		{Spec{Action: "allow", To: "Admins"}, `to: unknown network "Admins" (did you mean "admins"?)`},
		{Spec{Action: "allow", From: "office"}, `from: unknown network "office" (defined: admins, empty, halves, lan, lan6, mapped)`},
		{Spec{Action: "allow", From: "empty"}, `from: network "empty" has no addresses`},
		{Spec{Action: "allow", From: "bad name"}, `from: invalid network name "bad name"`},
		{Spec{Action: "allow", From: strings.Repeat("n", 33)}, `from: network name "nnn`},
		{Spec{Action: "allow", From: "192.030.0.6"}, `from: invalid address "192.030.0.6": IPv4 field has octet with leading zero`},
		{Spec{Action: "allow", From: "1.2.3"}, `from: invalid address "1.2.3"`},
		{Spec{Action: "allow", From: "1.2.3.4/24"}, `from: 1.2.3.4/24 has host bits set; did you mean 1.2.3.0/24?`},
		{Spec{Action: "allow", To: "2001:db8::1/32"}, `to: 2001:db8::1/32 has host bits set; did you mean 2001:db8::/32?`},
		{Spec{Action: "allow", To: "10.0.0.0/33"}, `to: invalid network "10.0.0.0/33"`},
		{Spec{Action: "allow", To: "fe80::1%eth0"}, `to: "fe80::1%eth0": an address in a rule cannot have a zone (%eth0)`},
		{Spec{Action: "allow", To: "fe80::1%eth0/64"}, `to: "fe80::1%eth0/64": an address in a rule cannot have a zone`},
		{Spec{Action: "allow", From: "lan", To: "lan6"}, `to: lan6 is IPv6 only but from lan is IPv4 only; a rule needs an address family in common`},
		{Spec{Action: "allow", From: "2001:db8::1", To: "10.0.0.1"}, `a rule needs an address family in common`},
		{Spec{Action: "allow", Proto: "icmp", To: "lan6"}, "proto: icmp is IPv4 only but the rule's addresses are IPv6; use icmpv6"},
		{Spec{Action: "allow", Proto: "icmpv6", From: "10.0.0.1"}, "proto: icmpv6 is IPv6 only but the rule's addresses are IPv4; use icmp"},
		// Ports.
		{Spec{Action: "allow", Port: "22", Proto: "icmp"}, "port: ports need proto tcp or udp (or none, for both), not icmp"},
		{Spec{Action: "allow", FromPort: "22", Proto: "icmpv6"}, "from_port: ports need proto tcp or udp (or none, for both), not icmpv6"},
		{Spec{Action: "allow", Port: "0"}, "port: port 0 out of range 1-65535"},
		{Spec{Action: "allow", Port: "http"}, `port: invalid port "http"`},
		{Spec{Action: "allow", FromPort: "9:1"}, `from_port: port range "9:1": 9 is greater than 1`},
		// Applications.
		{Spec{Action: "allow", App: "OpenSSH", Port: "22"}, `app: "OpenSSH" and port 22 cannot both be given`},
		{Spec{Action: "allow", App: "Telnet"}, `app: unknown application "Telnet"`},
		{Spec{Action: "allow", App: "OpenSSH"}, ""}, // placeholder replaced below with apps == nil
		{Spec{Action: "allow", App: "Nginx Full", Proto: "udp"}, `app: application "Nginx Full" has no udp ports`},
		{Spec{Action: "allow", App: "DNS", Proto: "icmp"}, `app: application "DNS" has no icmp ports`},
		{Spec{Action: "allow", App: "Hollow"}, `app: application "Hollow" has no ports`},
		{Spec{Action: "allow", App: "NoPorts"}, `app: application "NoPorts" has a service without ports`},
		{Spec{Action: "allow", App: "Weird"}, `app: application "Weird": service protocol "icmp" is not tcp or udp`},
		// Interfaces.
		{Spec{Action: "allow", Direction: "out", InIface: "eth0"}, `in_on: "in on eth0" is only for incoming and routed rules`},
		{Spec{Action: "allow", OutIface: "eth0"}, `out_on: "out on eth0" is only for outgoing and routed rules`},
		{Spec{Action: "allow", InIface: "eth/0"}, `in_on: invalid interface name "eth/0"`},
		{Spec{Action: "allow", Direction: "routed", OutIface: "a-very-long-name"}, `out_on: interface name "a-very-long-name" is too long`},
		// Options.
		{Spec{Action: "allow", Port: "22", Rate: "3/minute"}, "rate: only limit rules take a rate, not allow rules"},
		{Spec{Action: "limit", Port: "22", Rate: "3/fortnight"}, `rate: rate "3/fortnight": period:`},
		{Spec{Action: "allow", ConnLimit: 100001}, "conn_limit: 100001 is out of range 1-100000"},
		{Spec{Action: "allow", Comment: `say "hi"`}, `comment: cannot contain a double quote (")`},
		{Spec{Action: "allow", Comment: `C:\temp`}, `comment: cannot contain a backslash (\)`},
		{Spec{Action: "allow", Comment: "a\tb"}, "comment: cannot contain the control or non-printing character U+0009"},
		{Spec{Action: "allow", Comment: "a\nb"}, "U+000A"},
		{Spec{Action: "allow", Comment: "a\u200bb"}, "U+200B"},
		{Spec{Action: "allow", Comment: "\xff"}, "comment: not valid UTF-8"},
		{Spec{Action: "allow", Comment: strings.Repeat("é", 51)}, "comment: 102 bytes long, at most 100 allowed"},
	} {
		apps := AppLookup(testApps)
		if tc.err == "" {
			apps, tc.err = nil, `app: unknown application "OpenSSH" (no application profiles are available)`
		}
		t.Run(tc.err, func(t *testing.T) {
			got, err := Resolve(tc.spec, testNetworks, apps)
			if err == nil {
				t.Fatalf("Resolve = %+v, want error %q", got, tc.err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.err)
			}
		})
	}
}

func TestResolveNoNetworks(t *testing.T) {
	_, err := Resolve(Spec{Action: "allow", From: "admins"}, nil, nil)
	if want := `from: unknown network "admins" (no networks are defined)`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}

func TestResolveDoesNotAlias(t *testing.T) {
	nets := map[string][]netip.Prefix{"n": pfx("10.0.0.0/8")}
	svcs := []Service{{ProtoTCP, Ports{{22, 22}}}}
	apps := AppLookupFunc(func(string) (string, []Service, bool) { return "X", svcs, true })
	r, err := Resolve(Spec{Action: "allow", From: "n", App: "x"}, nets, apps)
	if err != nil {
		t.Fatal(err)
	}
	r.From.Prefixes[0] = netip.MustParsePrefix("0.0.0.0/0")
	r.Services[0].Ports[0] = PortRange{1, 1}
	if nets["n"][0] != netip.MustParsePrefix("10.0.0.0/8") || svcs[0].Ports[0] != (PortRange{22, 22}) {
		t.Error("the resolved rule shares memory with its inputs")
	}
}

// TestParseThenResolve runs command lines through both stages.
func TestParseThenResolve(t *testing.T) {
	for _, tc := range []struct{ args, summary, err string }{
		{args: "allow 22/tcp", summary: "allow in 22/tcp"},
		{args: "limit from admins to any app openssh", summary: "limit in OpenSSH from admins"},
		{args: "route allow in on eth0 out on eth1 to lan port 80,443 proto tcp", summary: "allow routed in on eth0 out on eth1 80,443/tcp to lan"},
		{args: "deny out on wg0 to 1.2.3.4 port 25", summary: "deny out on wg0 25 to 1.2.3.4"},
		{args: "allow Nginx|Full", summary: "allow in 'Nginx Full'"},
		{args: "allow from 1.2.3.4/24", err: "from: 1.2.3.4/24 has host bits set; did you mean 1.2.3.0/24?"},
		{args: "allow to fe80::1%eth0", err: "zone"},
		{args: "allow 22 rate 3/minute", err: "rate: only limit rules take a rate"},
		{args: "allow proto icmp 22", err: `unexpected word "22"`},
		{args: "allow 22/icmp", err: "port: ports need proto tcp or udp"},
	} {
		spec, err := ParseArgs(words(tc.args))
		var r Rule
		if err == nil {
			r, err = Resolve(spec, testNetworks, testApps)
		}
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err = %v, want %q", tc.args, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.args, err)
		case r.Summary() != tc.summary:
			t.Errorf("%s: Summary() = %q, want %q", tc.args, r.Summary(), tc.summary)
		}
	}
}
