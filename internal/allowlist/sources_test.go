package allowlist

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const root = "testdata/host"

func entryStrings(ents []Entry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.String())
	}
	return out
}

func TestSSHPeers(t *testing.T) {
	for _, c := range []struct {
		name  string
		ports []uint16
		want  []string
	}{
		// Not the SYN_RECV from 198.51.100.66 (spoofable), not the
		// connection to :8080, not the listener.
		{"default port", nil, []string{
			"203.0.113.10/32 (ssh session)",
			"2001:db8:a::10/128 (ssh session)",
			"203.0.113.12/32 (ssh session)", // mapped address on a tcp6 socket
		}},
		{"extra port", []uint16{22, 2700}, []string{
			"203.0.113.10/32 (ssh session)",
			"203.0.113.11/32 (ssh session)",
			"2001:db8:a::10/128 (ssh session)",
			"203.0.113.12/32 (ssh session)",
		}},
		{"other port only", []uint16{2222}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &SSHPeers{Root: root, Ports: c.ports, MinAge: -1}
			got, err := s.Entries()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(c.want, entryStrings(got)); diff != "" {
				t.Errorf("Entries() (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSSHPeersAge: a connection counts only once it has outlived sshd's
// LoginGraceTime, so a brute-forcer's own connection never allowlists it.
func TestSSHPeersAge(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "proc/net"), 0o755)
	tcp, err := os.ReadFile(filepath.Join(root, "proc/net/tcp"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(data []byte) {
		if err := os.WriteFile(filepath.Join(dir, "proc/net/tcp"), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(tcp)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	now := t0
	s := &SSHPeers{Root: dir, Now: func() time.Time { return now }}
	check := func(at time.Duration, want ...string) {
		t.Helper()
		now = t0.Add(at)
		got, err := s.Entries()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, entryStrings(got)); diff != "" {
			t.Errorf("at %v (-want +got):\n%s", at, diff)
		}
	}
	check(0)
	check(2 * time.Minute)
	check(DefaultSSHMinAge, "203.0.113.10/32 (ssh session)")
	check(time.Hour, "203.0.113.10/32 (ssh session)")
	write([]byte("header\n")) // the session ends
	check(time.Hour + 30*time.Second)
	write(tcp) // and the same peer connects again: a new connection, young
	check(time.Hour + time.Minute)
	check(time.Hour+time.Minute+DefaultSSHMinAge, "203.0.113.10/32 (ssh session)")
}

func TestResolvers(t *testing.T) {
	got, err := (&Resolvers{Root: root}).Entries()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"127.0.0.53/32 (resolver)",
		"192.0.2.53/32 (resolver)",
		"2001:db8:a::53/128 (resolver)",
		"fe80::53/128 (resolver)", // zone dropped; 192.030.0.6 (octal?) and names refused
	}
	if diff := cmp.Diff(want, entryStrings(got)); diff != "" {
		t.Errorf("Entries() (-want +got):\n%s", diff)
	}
}

func TestGateways(t *testing.T) {
	got, err := (&Gateways{Root: root}).Entries()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"192.0.2.1/32 (gateway eth0)",   // default route
		"192.0.2.254/32 (gateway eth1)", // 10.0.0.0/8 via
		"2001:db8:a::1/128 (gateway eth0)",
	}
	if diff := cmp.Diff(want, entryStrings(got)); diff != "" {
		t.Errorf("Entries() (-want +got):\n%s", diff)
	}
}

func TestMissingFiles(t *testing.T) {
	empty := t.TempDir()
	for _, s := range []Explainer{&SSHPeers{Root: empty}, &Resolvers{Root: empty}, &Gateways{Root: empty}} {
		got, err := s.Entries()
		if err != nil || len(got) != 0 {
			t.Errorf("%T on an empty root = %v, %v; want nothing, no error", s, got, err)
		}
	}
}

func TestUnreadable(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"etc/resolv.conf", "proc/net/route", "proc/net/tcp"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755) // a directory where a file should be
	}
	for _, s := range []Explainer{&SSHPeers{Root: dir}, &Resolvers{Root: dir}, &Gateways{Root: dir}} {
		if _, err := s.Entries(); err == nil {
			t.Errorf("%T: no error for an unreadable file", s)
		}
	}
	bad := t.TempDir()
	os.MkdirAll(filepath.Join(bad, "proc/net"), 0o755)
	os.WriteFile(filepath.Join(bad, "proc/net/tcp"), []byte("header\n 0: XYZ:0016 0A7100CB:C350 01 0 0 0 0 0 1002\n"), 0o644)
	if _, err := (&SSHPeers{Root: bad}).Entries(); err == nil {
		t.Error("SSHPeers: no error for a garbled /proc/net/tcp")
	}
}

func TestOwnAddresses(t *testing.T) {
	o := &OwnAddresses{ifaces: func() ([]ifaceAddrs, error) {
		return []ifaceAddrs{
			{"lo", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")}},
			{"eth0", []netip.Prefix{
				netip.MustParsePrefix("192.0.2.1/24"),
				netip.MustParsePrefix("2001:db8:a::1/64"),
				netip.MustParsePrefix("fe80::1/64"),
			}},
			{"wg0", []netip.Prefix{netip.MustParsePrefix("10.8.0.1/31"), netip.MustParsePrefix("::ffff:198.51.100.9/120")}},
		}, nil
	}}
	got, err := o.Entries()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"127.0.0.1/32 (own address lo)",
		"127.255.255.255/32 (broadcast lo)",
		"::1/128 (own address lo)",
		"192.0.2.1/32 (own address eth0)",
		"192.0.2.255/32 (broadcast eth0)",
		"2001:db8:a::1/128 (own address eth0)",
		"fe80::1/128 (own address eth0)",
		"10.8.0.1/32 (own address wg0)", // a /31 has no broadcast address
		"198.51.100.9/32 (own address wg0)",
	}
	if diff := cmp.Diff(want, entryStrings(got)); diff != "" {
		t.Errorf("Entries() (-want +got):\n%s", diff)
	}
}

// TestOwnAddressesSystem reads this namespace's real interfaces.
func TestOwnAddressesSystem(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil || lo.Flags&net.FlagUp == 0 {
		t.Skip("no loopback interface up")
	}
	got, err := (&OwnAddresses{}).Entries()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range got {
		found = found || e == Entry{netip.MustParsePrefix("127.0.0.1/32"), "own address lo"}
	}
	if !found {
		t.Errorf("Entries() = %v: no 127.0.0.1 on lo", got)
	}
}

// TestHost puts every source together, as the daemon does.
func TestHost(t *testing.T) {
	own := &OwnAddresses{ifaces: func() ([]ifaceAddrs, error) {
		return []ifaceAddrs{{"eth0", []netip.Prefix{netip.MustParsePrefix("192.0.2.1/24"), netip.MustParsePrefix("2001:db8:a::1/64")}}}, nil
	}}
	l := New([]netip.Prefix{netip.MustParsePrefix("198.51.100.0/28")},
		own, &SSHPeers{Root: root, MinAge: -1}, &Resolvers{Root: root}, &Gateways{Root: root})
	for addr, why := range map[string]string{
		"192.0.2.1":        "own address eth0",
		"2001:db8:a::1":    "own address eth0", // also the IPv6 gateway: the first entry wins a tie
		"192.0.2.255":      "broadcast eth0",
		"203.0.113.10":     "ssh session",
		"2001:db8:a::10":   "ssh session",
		"192.0.2.53":       "resolver",
		"192.0.2.254":      "gateway eth1",
		"198.51.100.14":    "config",
		"::ffff:192.0.2.1": "own address eth0",
	} {
		a := netip.MustParseAddr(addr).Unmap()
		e, ok := l.Match(netip.PrefixFrom(a, a.BitLen()))
		if !ok || e.Why != why || !l.Contains(a) {
			t.Errorf("%s: Match = %v %v, want %q", addr, e, ok, why)
		}
	}
	for _, addr := range []string{"198.51.100.66", "198.51.100.16", "192.0.2.2", "2001:db8:a::2"} {
		if l.Contains(netip.MustParseAddr(addr)) {
			t.Errorf("Contains(%s) = true", addr)
		}
	}
	// A /64 ban around the host's own IPv6 address must not happen.
	if !l.Overlaps(netip.MustParsePrefix("2001:db8:a::/64")) {
		t.Error("the host's own /64 is not protected")
	}
}
