package authfail

import (
	"net/netip"
	"strings"
	"testing"
)

// netipRef is what parseAddr must agree with: net/netip, zone stripped,
// IPv4-mapped addresses unmapped.
func netipRef(s string) (netip.Addr, bool) {
	if len(s) >= 2 && s[0] == '[' && s[len(s)-1] == ']' {
		s = s[1 : len(s)-1]
	}
	if i := strings.IndexByte(s, '%'); i >= 0 {
		if !strings.Contains(s[:i], ":") {
			return netip.Addr{}, false
		}
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func TestParseAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // "" when not an address
	}{
		{"192.0.2.1", "192.0.2.1"},
		{"0.0.0.0", "0.0.0.0"},
		{"255.255.255.255", "255.255.255.255"},
		{"192.030.0.6", ""}, // A14: not octal, not an address
		{"192.0.2.256", ""},
		{"192.0.2", ""},
		{"192.0.2.1.5", ""},
		{"1..2.3", ""},
		{"::ffff:198.51.100.7", "198.51.100.7"}, // A14: unmapped
		{"::ffff:c633:6407", "198.51.100.7"},
		{"fe80::1%eth0", "fe80::1"},                    // A14: zone stripped
		{"2001:db8::1%abcdefgh1234567", "2001:db8::1"}, // A14
		{"[2001:db8::1]", "2001:db8::1"},
		{"::", "::"},
		{"::1", "::1"},
		{"1::", "1::"},
		{"1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"},
		{"1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"}, // "::" may stand for one group
		{"1:2:3:4:5:6:7:8:9", ""},
		{"1::2::3", ""},
		{":1:2", ""},
		{"1:2:", ""},
		{"12345::1", ""},
		{"aaaa:bbbb:cccc:1234::1:1", "aaaa:bbbb:cccc:1234::1:1"},
		{"64:ff9b::192.0.2.1", "64:ff9b::c000:201"},
		{"::ffff:192.030.0.6", ""},
		{"1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304"},
		{"1:2:3:4:5:6:7:1.2.3.4", ""},
		{"example.com", ""},
		{"1.2.3.4%eth0", ""},
		{"", ""},
	} {
		got, ok := parseAddr([]byte(tc.in))
		ref, refOK := netipRef(tc.in)
		if ok != refOK || got != ref {
			t.Errorf("parseAddr(%q) = %v, %v; net/netip says %v, %v", tc.in, got, ok, ref, refOK)
		}
		switch {
		case tc.want == "" && ok:
			t.Errorf("parseAddr(%q) = %v, want no address", tc.in, got)
		case tc.want != "" && (!ok || got != netip.MustParseAddr(tc.want)):
			t.Errorf("parseAddr(%q) = %v, %v, want %s", tc.in, got, ok, tc.want)
		}
	}
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "::ffff:1.2.3.4", "fe80::1%eth0", "1:2:3:4:5:6:7:8", "192.030.0.6", "::", "1::2:3.4.5.6"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseAddr([]byte(s))
		ref, refOK := netipRef(s)
		if ok != refOK || got != ref {
			t.Fatalf("parseAddr(%q) = %v, %v; net/netip says %v, %v", s, got, ok, ref, refOK)
		}
	})
}

func TestKeyFor(t *testing.T) {
	for _, tc := range []struct {
		addr string
		bits int
		want string
	}{
		{"198.51.100.7", 64, "198.51.100.7/32"},
		{"2001:db8:1:2:aaaa::1", 64, "2001:db8:1:2::/64"},
		{"2001:db8:1:2:aaaa::1", 128, "2001:db8:1:2:aaaa::1/128"},
		{"2001:db8:1:2:aaaa::1", 48, "2001:db8:1::/48"},
	} {
		if got := keyFor(netip.MustParseAddr(tc.addr), tc.bits).String(); got != tc.want {
			t.Errorf("keyFor(%s, %d) = %s, want %s", tc.addr, tc.bits, got, tc.want)
		}
	}
}
