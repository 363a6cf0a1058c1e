package policy

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// words splits a test command line on spaces; "|" stands for a space inside
// a word ("Nginx|Full" is the one argument "Nginx Full").
func words(s string) []string {
	if s == "" {
		return nil
	}
	w := strings.Fields(s)
	for i := range w {
		w[i] = strings.ReplaceAll(w[i], "|", " ")
		if w[i] == "''" {
			w[i] = ""
		}
	}
	return w
}

var parseGolden = []struct {
	args string
	want Spec
	str  string // canonical String(); "" if the same as args
}{
	// Simple form: ports.
	{args: "allow 22", want: Spec{Action: "allow", Port: "22"}},
	{args: "allow 22/tcp", want: Spec{Action: "allow", Port: "22", Proto: "tcp"}},
	{args: "deny 80,443/tcp", want: Spec{Action: "deny", Port: "80,443", Proto: "tcp"}},
	{args: "reject 6000:6007/udp", want: Spec{Action: "reject", Port: "6000:6007", Proto: "udp"}},
	{args: "allow 8000-8100/tcp", want: Spec{Action: "allow", Port: "8000-8100", Proto: "tcp"}},
	{args: "allow 53/any", want: Spec{Action: "allow", Port: "53"}, str: "allow 53"},
	{args: "allow 22/ipv6-icmp", want: Spec{Action: "allow", Port: "22", Proto: "ipv6-icmp"}},
	// Simple form: applications.
	{args: "allow ssh", want: Spec{Action: "allow", App: "ssh"}},
	{args: "limit OpenSSH", want: Spec{Action: "limit", App: "OpenSSH"}},
	{args: "allow Nginx|Full", want: Spec{Action: "allow", App: "Nginx Full"}, str: "allow 'Nginx Full'"},
	{args: "allow http/tcp", want: Spec{Action: "allow", App: "http", Proto: "tcp"}},
	{args: "allow WWW|Full/tcp", want: Spec{Action: "allow", App: "WWW Full", Proto: "tcp"}, str: "allow 'WWW Full/tcp'"},
	// Direction, interfaces, log.
	{args: "allow in 22", want: Spec{Action: "allow", Port: "22"}, str: "allow 22"},
	{args: "allow in", want: Spec{Action: "allow"}},
	{args: "reject out 25/tcp", want: Spec{Action: "reject", Direction: "out", Port: "25", Proto: "tcp"}},
	{args: "allow out", want: Spec{Action: "allow", Direction: "out"}},
	{args: "allow in on eth0 22/tcp", want: Spec{Action: "allow", InIface: "eth0", Port: "22", Proto: "tcp"}},
	{args: "allow on eth0 22/tcp", want: Spec{Action: "allow", InIface: "eth0", Port: "22", Proto: "tcp"}, str: "allow in on eth0 22/tcp"},
	{args: "allow in on eth0", want: Spec{Action: "allow", InIface: "eth0"}},
	{args: "deny out on wg0 to 10.0.0.0/8", want: Spec{Action: "deny", Direction: "out", OutIface: "wg0", To: "10.0.0.0/8"}},
	{args: "allow out on br-1.2@x:y+z 53/udp", want: Spec{Action: "allow", Direction: "out", OutIface: "br-1.2@x:y+z", Port: "53", Proto: "udp"}},
	{args: "allow log 22/tcp", want: Spec{Action: "allow", Log: true, Port: "22", Proto: "tcp"}},
	{args: "allow in on eth0 log from admins", want: Spec{Action: "allow", InIface: "eth0", Log: true, From: "admins"}},
	{args: "deny log", want: Spec{Action: "deny", Log: true}},
	// Full form, in any order.
	{args: "allow from 10.0.0.0/8", want: Spec{Action: "allow", From: "10.0.0.0/8"}},
	{args: "allow from admins to any port 22 proto tcp", want: Spec{Action: "allow", From: "admins", Port: "22", Proto: "tcp"}},
	{args: "allow proto tcp to any port 22 from admins", want: Spec{Action: "allow", From: "admins", Port: "22", Proto: "tcp"},
		str: "allow from admins to any port 22 proto tcp"},
	{args: "allow to any port 22 proto tcp", want: Spec{Action: "allow", Port: "22", Proto: "tcp"}, str: "allow 22/tcp"},
	{args: "allow from any to any", want: Spec{Action: "allow"}, str: "allow in"},
	{args: "allow proto any to any port 22", want: Spec{Action: "allow", Port: "22"}, str: "allow 22"},
	{args: "allow from any port 53 to 192.168.1.1 port 1024:65535 proto udp",
		want: Spec{Action: "allow", FromPort: "53", To: "192.168.1.1", Port: "1024:65535", Proto: "udp"}},
	{args: "deny from 10.0.0.1 port 1234", want: Spec{Action: "deny", From: "10.0.0.1", FromPort: "1234"}},
	{args: "allow to any app OpenSSH", want: Spec{Action: "allow", App: "OpenSSH"}, str: "allow OpenSSH"},
	{args: "allow from 2001:db8::/32 to any app Nginx|Full", want: Spec{Action: "allow", From: "2001:db8::/32", App: "Nginx Full"},
		str: "allow from 2001:db8::/32 to any app 'Nginx Full'"},
	{args: "allow to 10.0.0.5 app OpenSSH proto tcp", want: Spec{Action: "allow", To: "10.0.0.5", App: "OpenSSH", Proto: "tcp"}},
	{args: "allow proto icmp", want: Spec{Action: "allow", Proto: "icmp"}},
	{args: "allow proto icmpv6 from fe80::/10", want: Spec{Action: "allow", Proto: "icmpv6", From: "fe80::/10"},
		str: "allow from fe80::/10 proto icmpv6"},
	{args: "allow to fe80::1%eth0", want: Spec{Action: "allow", To: "fe80::1%eth0"}}, // syntax only; Resolve refuses zones
	{args: "allow from 1.2.3.4/24", want: Spec{Action: "allow", From: "1.2.3.4/24"}}, // likewise host bits
	{args: "allow from 10", want: Spec{Action: "allow", From: "10"}},                 // a network name
	// Routed.
	{args: "route allow in on eth0 out on eth1", want: Spec{Action: "allow", Direction: "routed", InIface: "eth0", OutIface: "eth1"}},
	{args: "route allow out on eth1 in on eth0 to 10.0.0.0/8 port 80 proto tcp",
		want: Spec{Action: "allow", Direction: "routed", InIface: "eth0", OutIface: "eth1", To: "10.0.0.0/8", Port: "80", Proto: "tcp"},
		str:  "route allow in on eth0 out on eth1 to 10.0.0.0/8 port 80 proto tcp"},
	{args: "allow routed in on eth0 out on eth1", want: Spec{Action: "allow", Direction: "routed", InIface: "eth0", OutIface: "eth1"},
		str: "route allow in on eth0 out on eth1"},
	{args: "route deny", want: Spec{Action: "deny", Direction: "routed"}},
	{args: "route reject out on eth1 log 25/tcp", want: Spec{Action: "reject", Direction: "routed", OutIface: "eth1", Log: true, Port: "25", Proto: "tcp"}},
	{args: "allow routed", want: Spec{Action: "allow", Direction: "routed"}, str: "route allow"},
	// Options.
	{args: "limit 22/tcp rate 3/minute conn_limit 10 comment rate limited ssh",
		want: Spec{Action: "limit", Port: "22", Proto: "tcp", Rate: "3/minute", ConnLimit: 10, Comment: "rate limited ssh"},
		str:  "limit 22/tcp rate 3/minute conn_limit 10 comment 'rate limited ssh'"},
	{args: "limit ssh conn_limit 007 rate 6/30s", want: Spec{Action: "limit", App: "ssh", Rate: "6/30s", ConnLimit: 7},
		str: "limit ssh rate 6/30s conn_limit 7"},
	{args: "limit in rate 5/second", want: Spec{Action: "limit", Rate: "5/second"}, str: "limit rate 5/second"},
	{args: "allow 22 comment it's|fine", want: Spec{Action: "allow", Port: "22", Comment: "it's fine"}, str: `allow 22 comment 'it'\''s fine'`},
	{args: "allow 22 comment from admins to any", want: Spec{Action: "allow", Port: "22", Comment: "from admins to any"},
		str: "allow 22 comment 'from admins to any'"},
	{args: "allow comment hello", want: Spec{Action: "allow", Comment: "hello"}},
	{args: "allow 22 comment ''", want: Spec{Action: "allow", Port: "22"}, str: "allow 22"},
}

func TestParseArgs(t *testing.T) {
	for _, tc := range parseGolden {
		t.Run(tc.args, func(t *testing.T) {
			got, err := ParseArgs(words(tc.args))
			if err != nil {
				t.Fatalf("ParseArgs: %v", err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Fatalf("ParseArgs (-want +got):\n%s", d)
			}
			wantStr := tc.str
			if wantStr == "" {
				wantStr = tc.args
			}
			if s := got.String(); s != wantStr {
				t.Errorf("String() = %q, want %q", s, wantStr)
			}
			again, err := ParseArgs(got.Args())
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", got.Args(), err)
			}
			if d := cmp.Diff(got, again); d != "" {
				t.Errorf("round trip through Args (-first +second):\n%s", d)
			}
			split, err := shellSplit(got.String())
			if err != nil {
				t.Fatalf("shellSplit(%q): %v", got.String(), err)
			}
			if d := cmp.Diff(got.Args(), split); d != "" {
				t.Errorf("String() does not split back into Args() (-args +split):\n%s", d)
			}
		})
	}
}

func TestParseArgsErrors(t *testing.T) {
	for _, tc := range []struct{ args, err string }{
		{"", "moat: missing action (want allow, deny, reject or limit)"},
		{"permit 22", `moat: unknown action "permit" (want allow, deny, reject or limit)`},
		{"ALLOW 22", `unknown action "ALLOW"`},
		{"route", "moat route: missing action"},
		{"route permit", `moat route: unknown action "permit"`},
		{"allow", `moat allow: missing rule; e.g. "moat allow 22/tcp"`},
		{"allow route 22", `moat allow: "route" must come first`},
		// Simple form.
		{"allow 22 from 10.0.0.0/8", `moat allow: unexpected word "from" after "22" (with from/to, say "to any port 22" instead)`},
		{"allow 22/tcp from admins", `moat allow: unexpected word "from" after "22/tcp" (with from/to, say "to any port 22 proto tcp" instead)`},
		{"allow Nginx|Full/tcp proto tcp", `(with from/to, say "to any app 'Nginx Full' proto tcp" instead)`},
		{"allow 22 80", `moat allow: unexpected word "80" after "22"`},
		{"allow ssh OpenSSH", `moat allow: unexpected word "OpenSSH" after "ssh"`},
		{"allow 22/xyz", `moat allow: "22/xyz": unknown protocol "xyz"`},
		{"allow 22/", `moat allow: "22/": unknown protocol ""`},
		{"allow 70000", "moat allow: port 70000 out of range 1-65535"},
		{"allow 0/tcp", "moat allow: port 0 out of range"},
		{"allow 22x", `moat allow: invalid port "22x"`},
		{"allow 30:20", `moat allow: port range "30:20": 30 is greater than 20`},
		{"allow 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16", "at most 15 allowed"},
		{"allow 1.2.3.4", `moat allow: "1.2.3.4" is an address, not a port; did you mean "from 1.2.3.4" or "to 1.2.3.4"?`},
		{"allow 10.0.0.0/8", `moat allow: "10.0.0.0/8" is a network, not a port`},
		{"allow fe80::1", `"fe80::1" is an address`},
		{"allow any", `moat allow: "any" is a keyword, not a port or application`},
		{"allow ~foo", `moat allow: "~foo" is not a port, PORT/PROTO or application name`},
		{"allow Nginx/Full", `moat allow: "Nginx/Full": unknown protocol "Full"`},
		{"allow ''", "moat allow: empty word where a port or application was expected"},
		{"allow _x", `"_x" is not a port, PORT/PROTO or application name`},
		// Header.
		{"allow 22 in", `moat allow: unexpected word "in" after "22" (direction and interfaces come right after the action)`},
		{"allow 22 on eth0", `unexpected word "on" after "22"`},
		{"allow 22 log", `moat allow: unexpected word "log" after "22" ("log" goes before`},
		{"allow log log 22", `moat allow: "log" given twice`},
		{"allow in out 22", `moat allow: "out" conflicts with the direction given before; use "moat route allow in on IFACE out on IFACE"`},
		{"allow in in", `moat allow: "in" given twice`},
		{"allow out out", `moat allow: "out" given twice`},
		{"allow in on eth0 out on eth1", `moat allow: unexpected word "out" after "eth0" (say the direction before "on")`},
		{"allow in on eth0 on eth1", `moat allow: "on" given twice`},
		{"allow on eth0 in", `unexpected word "in" after "eth0"`},
		{"allow in on", `moat allow: "on" needs an interface name`},
		{"allow in on from", `moat allow: "on" needs an interface name, not the keyword "from"`},
		{"allow in on this-is-too-long0", `moat allow: interface name "this-is-too-long0" is too long (at most 15 characters)`},
		{"allow in on eth/0", `moat allow: invalid interface name "eth/0"`},
		{"allow in routed", `moat allow: unexpected word "routed" after "in"`},
		{"route allow in 22", `moat route allow: in a routed rule "in" must be followed by "on IFACE"`},
		{"route allow out", `moat route allow: in a routed rule "out" must be followed by "on IFACE"`},
		{"route allow on eth0", `moat route allow: in a routed rule say "in on IFACE" or "out on IFACE"`},
		{"route allow routed", `moat route allow: "routed" repeats "route"`},
		{"allow routed routed", `moat allow: "routed" given twice`},
		{"allow routed in 22", `moat allow: in a routed rule "in" must be followed by "on IFACE"`},
		{"route allow in on eth0 in on eth1", `moat route allow: "in on" given twice`},
		// Full form.
		{"allow from", `moat allow: "from" needs an address (any, an IP address, a CIDR or a network name)`},
		{"allow to port 22", `moat allow: "to" needs an address (any, an IP address, a CIDR or a network name), not the keyword "port"`},
		{"allow from 1.2.3", `moat allow: from: invalid address "1.2.3": IPv4 address too short`},
		{"allow from 192.030.0.6", `moat allow: from: invalid address "192.030.0.6"`},
		{"allow to 10.0.0.0/33", `moat allow: to: invalid network "10.0.0.0/33"`},
		{"allow from bad!name", `moat allow: from: "bad!name" is not an address, a CIDR or a network name`},
		{"allow from 1.2.3.4 app ssh", `moat allow: "from ... app" is not supported`},
		{"allow to any port 22 app ssh", `moat allow: "to" takes one "port" or "app" clause, not both`},
		{"allow to any app ssh port 22", `moat allow: "to" takes one "port" or "app" clause, not both`},
		{"allow to any port", `moat allow: "port" needs a port list`},
		{"allow to any port 22/tcp", `moat allow: to port: ports "22/tcp": give the protocol with "proto"`},
		{"allow from any port 99999", `moat allow: from port: port 99999 out of range 1-65535`},
		{"allow to any app", `moat allow: "app" needs an application name`},
		{"allow to any app ~x", `moat allow: invalid application name "~x"`},
		{"allow to any app in", `moat allow: "app" needs an application name, not the keyword "in"`},
		{"allow port 22", `moat allow: "port" must follow "from ADDR" or "to ADDR"`},
		{"allow app OpenSSH", `moat allow: "app" must follow "to ADDR"`},
		{"allow proto", `moat allow: "proto" needs a protocol`},
		{"allow proto gre", `moat allow: unknown protocol "gre"`},
		{"allow proto tcp proto udp", `moat allow: "proto" given twice`},
		{"allow from a from b", `moat allow: "from" given twice`},
		{"allow to a to b", `moat allow: "to" given twice`},
		{"allow from admins to any 22", `moat allow: unexpected word "22" after "any" (with from/to, give ports as "to ADDR port PORT")`},
		{"allow from admins ssh", `moat allow: unexpected word "ssh" after "admins"`},
		{"allow from admins log", `moat allow: unexpected word "log" after "admins"`},
		// Options.
		{"limit 22 rate", `moat limit: "rate" needs a rate, e.g. 6/30s or 10/minute`},
		{"limit 22 rate fast", `moat limit: rate "fast": want COUNT/PERIOD`},
		{"limit 22 rate 6/0s", `moat limit: rate "6/0s": period must be between 1s and 1 day`},
		{"limit 22 rate 1/s rate 2/s", `moat limit: "rate" given twice`},
		{"allow 22 conn_limit", `moat allow: "conn_limit" needs a number of connections`},
		{"allow 22 conn_limit 0", `moat allow: conn_limit "0": want a positive number of connections`},
		{"allow 22 conn_limit -1", `conn_limit "-1": want a positive number`},
		{"allow 22 conn_limit 99999999999", `conn_limit "99999999999"`},
		{"allow 22 comment", `moat allow: "comment" needs text`},
		{"limit 22 rate 3/minute 80", `moat limit: unexpected word "80" after "3/minute"`},
		{"allow rate 3/minute from x", `moat allow: unexpected word "from" after "3/minute" (rate, conn_limit and comment go last)`},
		{"allow conn_limit 3 log", `unexpected word "log" after "3"`},
	} {
		t.Run(tc.args, func(t *testing.T) {
			got, err := ParseArgs(words(tc.args))
			if err == nil {
				t.Fatalf("ParseArgs = %#v, want error %q", got, tc.err)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.err)
			}
		})
	}
}

func TestSpecArgs(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		want string
	}{
		{Spec{Action: "allow"}, "allow in"},
		{Spec{Action: "allow", Direction: "in"}, "allow in"},
		{Spec{Action: "deny", Direction: "incoming", InIface: "eth0"}, "deny in on eth0"},
		{Spec{Action: "deny", Direction: "outgoing"}, "deny out"},
		{Spec{Action: "allow", Direction: "forward"}, "route allow"},
		{Spec{Action: "allow", Direction: "routed", OutIface: "eth1", Port: "80"}, "route allow out on eth1 80"},
		{Spec{Action: "allow", From: "any", To: "any"}, "allow from any to any"}, // as written in a file
		{Spec{Action: "allow", Port: "22", App: "OpenSSH"}, "allow to any port 22 app OpenSSH"},
		{Spec{Action: "allow", Proto: "tcp"}, "allow proto tcp"},
		{Spec{Action: "allow", FromPort: "53", Proto: "udp"}, "allow from any port 53 proto udp"},
		{Spec{Action: "allow", To: "10.0.0.1"}, "allow to 10.0.0.1"},
		{Spec{Action: "allow", App: "Nginx Full", Comment: `say "hi" $HOME`}, `allow 'Nginx Full' comment 'say "hi" $HOME'`},
		{Spec{Action: "allow", App: "x", Comment: "a\tb"}, "allow x comment 'a\tb'"},
		{Spec{Action: "allow", App: "x", Comment: "''"}, `allow x comment ''\'''\'''`},
		{Spec{Action: "allow", App: "x", Comment: "café"}, "allow x comment 'café'"},
		{Spec{Action: "limit", Log: true, Port: "22", Proto: "tcp", Rate: "3/minute", ConnLimit: 10, Comment: "ssh"},
			"limit log 22/tcp rate 3/minute conn_limit 10 comment ssh"},
		{Spec{Action: "allow", Direction: "sideways"}, "allow sideways"},
		{Spec{Action: "allow", Direction: "out", InIface: "eth0"}, "allow out in on eth0"},
	} {
		if got := tc.spec.String(); got != tc.want {
			t.Errorf("%#v.String() = %q, want %q", tc.spec, got, tc.want)
		}
		split, err := shellSplit(tc.spec.String())
		if err != nil {
			t.Fatalf("shellSplit(%q): %v", tc.spec.String(), err)
		}
		if d := cmp.Diff(tc.spec.Args(), split); d != "" {
			t.Errorf("%q does not split back into Args() (-args +split):\n%s", tc.spec.String(), d)
		}
	}
}

func TestCheckNames(t *testing.T) {
	for _, tc := range []struct {
		check func(string) error
		name  string
		ok    bool
	}{
		{CheckInterface, "eth0", true},
		{CheckInterface, "wlp0s20f3", true},
		{CheckInterface, "br-0123456789ab", true}, // 15
		{CheckInterface, "br-0123456789abc", false},
		{CheckInterface, "veth@if2", true},
		{CheckInterface, "eth0:1", true},
		{CheckInterface, "ppp+", true},
		{CheckInterface, "", false},
		{CheckInterface, "eth 0", false},
		{CheckInterface, "eth*", false},
		{CheckInterface, "ethé", false},
		{CheckNetworkName, "admins", true},
		{CheckNetworkName, "office-LAN_2", true},
		{CheckNetworkName, strings.Repeat("a", 32), true},
		{CheckNetworkName, strings.Repeat("a", 33), false},
		{CheckNetworkName, "", false},
		{CheckNetworkName, "any", false},
		{CheckNetworkName, "a.b", false},
		{CheckNetworkName, "a b", false},
		{checkAppName, "OpenSSH", true},
		{checkAppName, "Nginx Full", true},
		{checkAppName, "Bind9", true},
		{checkAppName, "a+b.c-d_e", true},
		{checkAppName, "9lives", false},
		{checkAppName, "a/b", false},
		{checkAppName, "from", false},
		{checkAppName, strings.Repeat("a", 65), false},
	} {
		err := tc.check(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("check(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// shellSplit splits s as a POSIX shell would split plain words, single
// quotes and backslash escapes; enough to check Spec.String.
func shellSplit(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case inQuote:
			if c == '\'' {
				inQuote = false
			} else {
				cur.WriteByte(c)
			}
		case c == '\'':
			inQuote, inWord = true, true
		case c == '\\':
			if i+1 == len(s) {
				return nil, errString("trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			if strings.IndexByte("\"$`!*?[]{}()<>|&;#~\t\n", c) >= 0 {
				return nil, errString("unquoted shell character " + string(c))
			}
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, errString("unterminated quote")
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}

type errString string

func (e errString) Error() string { return string(e) }

func FuzzParseArgs(f *testing.F) {
	for _, tc := range parseGolden {
		f.Add(byte(0), strings.Join(words(tc.args), "\x00"))
		f.Add(byte(' '), tc.args)
	}
	for _, s := range []string{
		"allow from admins port 22,80:90 to 10.0.0.0/8 port 1-2 proto udp rate 1/1h conn_limit 4294967295 comment x",
		"route limit out on a in on b log OpenSSH/udp comment",
		"deny in on lo from ::ffff:1.2.3.4 to fe80::1%eth0 app A.b+c-d_e",
	} {
		f.Add(byte(' '), s)
	}
	f.Fuzz(func(t *testing.T, sep byte, in string) {
		args := strings.Split(in, string([]byte{sep}))
		spec, err := ParseArgs(args)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "moat") {
				t.Errorf("error without the command: %v", err)
			}
			return
		}
		again, err := ParseArgs(spec.Args())
		if err != nil {
			t.Fatalf("ParseArgs(%q) = %#v, but ParseArgs(its Args %q): %v", args, spec, spec.Args(), err)
		}
		if d := cmp.Diff(spec, again); d != "" {
			t.Fatalf("ParseArgs(%q): round trip through Args %q differs (-first +second):\n%s", args, spec.Args(), d)
		}
		split, err := shellSplit(spec.String())
		if err != nil {
			t.Fatalf("String() %q: %v", spec.String(), err)
		}
		if d := cmp.Diff(spec.Args(), split); d != "" {
			t.Fatalf("String() %q does not split back into Args (-args +split):\n%s", spec.String(), d)
		}
	})
}
