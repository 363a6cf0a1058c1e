package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/nettest"
)

// TestTrafficBothWays: default deny in and out; allow rules by port and
// protocol open exactly what they name, for IPv4 and IPv6.
func TestTrafficBothWays(t *testing.T) {
	b := newBed(t)
	listenTCP(b.server, 80)
	listenTCP(b.server, 8080)
	listenTCP(b.inet, 443)
	listenTCP(b.inet, 8443)
	listenUDP(b.inet, 53, inetV4, inetV6)
	listenUDP(b.inet, 5353, inetV4, inetV6)
	b.writePolicy(`
[defaults]
incoming = "deny"
outgoing = "deny"
routed = "deny"

[[rule]]
action = "allow"
port = "80"
proto = "tcp"

[[rule]]
action = "allow"
direction = "out"
port = "443"
proto = "tcp"

[[rule]]
action = "allow"
direction = "out"
port = "53"
proto = "udp"
`)
	// Before moat, everything answers: the blocks below are moat's doing.
	for _, addr := range []string{serverWan4, serverWan6} {
		if !tcpOpen(b.inet, addr, 8080) {
			t.Fatalf("before moat: %s:8080 does not answer", addr)
		}
	}
	b.mustMoat("up", "--force")
	for _, fam := range []struct{ server, inet string }{{serverWan4, inetV4}, {serverWan6, inetV6}} {
		t.Run(fam.server, func(t *testing.T) {
			if !tcpOpen(b.inet, fam.server, 80) {
				t.Errorf("in: allowed port 80 on %s is closed", fam.server)
			}
			if tcpOpen(b.inet, fam.server, 8080) {
				t.Errorf("in: port 8080 on %s answers though incoming is denied", fam.server)
			}
			if !tcpOpen(b.server, fam.inet, 443) {
				t.Errorf("out: allowed port 443 on %s is unreachable", fam.inet)
			}
			if tcpOpen(b.server, fam.inet, 8443) {
				t.Errorf("out: port 8443 on %s reachable though outgoing is denied", fam.inet)
			}
			if !udpEcho(b.server, fam.inet, 53) {
				t.Errorf("out: allowed udp 53 on %s gets no reply", fam.inet)
			}
			if udpEcho(b.server, fam.inet, 5353) {
				t.Errorf("out: udp 5353 on %s replied though outgoing is denied", fam.inet)
			}
		})
	}
	// Counters prove which rule let traffic in.
	var st struct {
		Active bool
		Rules  []struct {
			Number  int
			Packets uint64
		}
	}
	out := b.mustMoat("status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	if !st.Active || len(st.Rules) != 3 || st.Rules[0].Packets == 0 {
		t.Errorf("status: want active with rule 1 counting packets, got %+v", st)
	}
	b.mustMoat("down")
	if !tcpOpen(b.inet, serverWan4, 8080) {
		t.Errorf("after down: port 8080 still blocked")
	}
}

// TestNamedNetworks: a rule from a named network admits its members only,
// in both families.
func TestNamedNetworks(t *testing.T) {
	b := newBed(t)
	listenTCP(b.server, 2200)
	b.writePolicy(sshlessHeader + `
[networks]
admins = ["198.51.100.0/24", "2001:db8:a::/64"]

[[rule]]
action = "allow"
port = "2200"
proto = "tcp"
from = "admins"
`)
	b.mustMoat("up", "--force")
	for _, c := range []struct {
		from *nettest.NS
		addr string
		want bool
	}{
		{b.admin, serverAdm4, true},
		{b.admin, serverAdm6, true},
		{b.inet, serverWan4, false},
		{b.inet, serverWan6, false},
	} {
		if got := tcpOpen(c.from, c.addr, 2200); got != c.want {
			t.Errorf("%s -> %s:2200: open=%v, want %v", c.from.Name, c.addr, got, c.want)
		}
	}
}

// TestLimit: a limit rule admits a burst of new connections per source,
// then drops; other sources are unaffected; IPv6 sources in one /64 share
// one budget.
func TestLimit(t *testing.T) {
	b := newBed(t)
	listenTCP(b.server, 2222)
	b.writePolicy(sshlessHeader + `
[limit]
rate = "6/60s"

[[rule]]
action = "limit"
port = "2222"
proto = "tcp"
`)
	b.mustMoat("up", "--force")
	count := func(n int, try func() bool) int {
		ok := 0
		for range n {
			if try() {
				ok++
			}
		}
		return ok
	}
	got := count(10, func() bool { return tcpOpen(b.inet, serverWan4, 2222) })
	if got < 6 || got > 7 {
		t.Errorf("ipv4: %d of 10 quick connections admitted, want 6 (the burst)", got)
	}
	if !tcpOpen(b.admin, serverAdm4, 2222) {
		t.Errorf("another source is limited too")
	}
	// Two addresses of one /64 share the budget.
	got = count(4, func() bool { return tcpOpen(b.inet, serverWan6, 2222, "-s", inetV6) }) +
		count(4, func() bool { return tcpOpen(b.inet, serverWan6, 2222, "-s", inetV6b) })
	if got < 6 || got > 7 {
		t.Errorf("ipv6 /64: %d of 8 connections from two addresses admitted, want 6", got)
	}
	out := b.mustMoat("status", "numbered")
	if !strings.Contains(out, "limit 2222/tcp") {
		t.Errorf("status does not show the limit rule:\n%s", out)
	}
}

// TestBadTCPFlags: each malicious flag pattern is dropped by its own guard,
// for a port that is open.
func TestBadTCPFlags(t *testing.T) {
	b := newBed(t)
	if _, err := b.inet.Run("hping3", "--version"); err != nil {
		t.Logf("hping3 --version: %v", err)
	}
	listenTCP(b.server, 80)
	b.writePolicy(sshlessHeader + `
[logging]
level = "medium"

[[rule]]
action = "allow"
port = "80"
proto = "tcp"
`)
	b.mustMoat("up", "--force")
	patterns := []struct {
		guard string
		flags []string
	}{
		{"tcp-null", nil},
		{"tcp-xmas", []string{"-F", "-P", "-U"}},
		{"tcp-syn-fin", []string{"-S", "-F"}},
		{"tcp-syn-rst", []string{"-S", "-R"}},
		{"tcp-fin-rst", []string{"-F", "-R"}},
		{"tcp-fin-noack", []string{"-F"}},
		{"tcp-new-not-syn", []string{"-A"}},
	}
	for _, p := range patterns {
		args := append([]string{"hping3", "-c", "3", "-i", "u20000", "-p", "80"}, p.flags...)
		out, _ := b.inet.Run(append(args, serverWan4)...)
		if !strings.Contains(out, "100% packet loss") {
			t.Errorf("%s: the server answered:\n%s", p.guard, out)
		}
	}
	guards := guardCounters(t, b)
	for _, p := range patterns {
		if guards["guard in "+p.guard] < 3 {
			t.Errorf("guard %s counted %d packets, want >= 3 (all: %v)", p.guard, guards["guard in "+p.guard], guards)
		}
	}
	// nmap's stealth scans find nothing, over IPv6 too: a closed port
	// would answer with RST without the guards.
	for _, scan := range []string{"-sN", "-sF", "-sX"} {
		for _, addr := range []string{serverWan4, serverWan6} {
			args := []string{"nmap", "-n", "-Pn", scan, "-p", "80,8080", "--max-retries", "0", "--host-timeout", "20s"}
			if strings.Contains(addr, ":") {
				args = append(args, "-6")
			}
			out, err := b.inet.Run(append(args, addr)...)
			if err != nil {
				t.Fatalf("nmap %s: %v\n%s", scan, err, out)
			}
			if strings.Contains(out, "closed") || !strings.Contains(out, "open|filtered") {
				t.Errorf("nmap %s %s: want every port open|filtered (no answer), got:\n%s", scan, addr, out)
			}
		}
	}
}

func guardCounters(t *testing.T, b *bed) map[string]uint64 {
	t.Helper()
	var st struct {
		Guards []struct {
			Name    string
			Packets uint64
		}
	}
	out := b.mustMoat("status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	m := map[string]uint64{}
	for _, g := range st.Guards {
		m[g.Name] += g.Packets
	}
	return m
}

// TestReloadKeepsEstablished: reloading the policy many times never breaks
// an established connection, and never lets a new denied one through.
func TestReloadKeepsEstablished(t *testing.T) {
	b := newBed(t)
	listenTCP(b.server, 7000)
	listenTCP(b.server, 7001)
	policy := func(extra int) string {
		return sshlessHeader + fmt.Sprintf(`
[[rule]]
action = "allow"
port = "7000"
proto = "tcp"

[[rule]]
action = "allow"
port = "%d"
proto = "tcp"
comment = "changes on every reload"
`, 9000+extra)
	}
	b.writePolicy(policy(0))
	b.mustMoat("up", "--force")

	// A long-lived connection, fed through a pipe.
	conn := b.inet.Cmd("socat", "-", "TCP:"+serverWan4+":7000")
	stdin, err := conn.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := conn.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Process.Kill(); conn.Wait() })
	echo := func(msg string) error {
		if _, err := fmt.Fprintln(stdin, msg); err != nil {
			return err
		}
		buf := make([]byte, len(msg)+1)
		done := make(chan error, 1)
		go func() {
			_, err := ioReadFull(stdout, buf)
			done <- err
		}()
		select {
		case err := <-done:
			if err != nil {
				return err
			}
			if string(buf) != msg+"\n" {
				return fmt.Errorf("echo %q, got %q", msg, buf)
			}
			return nil
		case <-time.After(3 * time.Second):
			return fmt.Errorf("no echo for %q", msg)
		}
	}
	if err := echo("before"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 20; i++ {
		b.writePolicy(policy(i))
		b.mustMoat("up", "--force")
		if err := echo(fmt.Sprintf("reload %d", i)); err != nil {
			t.Fatalf("after reload %d: %v", i, err)
		}
	}
	if tcpOpen(b.inet, serverWan4, 7001) {
		t.Errorf("a denied port answered after the reloads")
	}
}

// TestShowMatchesKernel: the text `moat show` prints, loaded with nft -f,
// gives the same ruleset as `moat up` over netlink.
func TestShowMatchesKernel(t *testing.T) {
	b := newBed(t)
	b.writePolicy(`
[defaults]
incoming = "reject"
outgoing = "deny"
routed = "deny"

[networks]
admins = ["198.51.100.0/24", "198.51.100.128/25", "2001:db8:a::/64"]

[guards]
syn_flood = "20/second"

[logging]
level = "high"

[[rule]]
action = "limit"
app = "ssh"
from = "admins"
conn_limit = 5
rate = "10/minute"
comment = "ssh from the office"

[[rule]]
action = "allow"
app = "dns"

[[rule]]
action = "allow"
direction = "out"
port = "80,443,8000:8100"
proto = "tcp"

[[rule]]
action = "deny"
from = "203.0.113.0/24"
to = "198.51.100.1"
port = "25"

[[rule]]
action = "reject"
in_on = "wan0"
proto = "icmp"

[[rule]]
action = "allow"
direction = "routed"
in_on = "adm0"
out_on = "wan0"

[[redirect]]
port = 2200
from = "!admins"
to = ["2222"]

[[redirect]]
port = 53
proto = "udp"
to = ["192.0.2.53:53", "[2001:db8:c::53]:53"]
`)
	text := b.mustMoat("show")
	b.mustMoat("up", "--force")
	viaNetlink := b.server.MustRun("nft", "-s", "list", "table", "inet", "moat")

	other := b.admin // any other namespace
	cmd := other.Cmd("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(text)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f of moat show: %v\n%s\n%s", err, out, text)
	}
	viaText := other.MustRun("nft", "-s", "list", "table", "inet", "moat")
	if viaNetlink != viaText {
		t.Errorf("netlink and text differ\n--- netlink\n%s\n--- nft -f\n%s", viaNetlink, viaText)
	}
}

// TestConnLimit: conn_limit caps a source's concurrent connections; the
// next one is refused with a reset, and another source is unaffected.
func TestConnLimit(t *testing.T) {
	b := newBed(t)
	listenTCP(b.server, 6000)
	b.writePolicy(sshlessHeader + `
[[rule]]
action = "allow"
port = "6000"
proto = "tcp"
conn_limit = 2
`)
	b.mustMoat("up", "--force")
	for range 2 {
		c := b.inet.Cmd("socat", "-", "TCP:"+serverWan4+":6000")
		stdin, _ := c.StdinPipe()
		must(t, c.Start())
		t.Cleanup(func() { stdin.Close(); c.Process.Kill(); c.Wait() })
	}
	time.Sleep(300 * time.Millisecond)
	if tcpOpen(b.inet, serverWan4, 6000) {
		t.Error("a third concurrent connection from one source got through")
	}
	if !tcpOpen(b.admin, serverAdm4, 6000) {
		t.Error("another source was capped too")
	}
}

// TestSYNFlood: the per-source SYN-flood guard drops new connections above
// its rate.
func TestSYNFlood(t *testing.T) {
	b := newBed(t)
	nettest.RequireTools(t, "hping3")
	listenTCP(b.server, 80)
	b.writePolicy(sshlessHeader + `
[guards]
syn_flood = "20/second"

[[rule]]
action = "allow"
port = "80"
proto = "tcp"
`)
	b.mustMoat("up", "--force")
	b.inet.Run("hping3", "-S", "-p", "80", "-i", "u1000", "-c", "500", serverWan4)
	if n := guardCounters(t, b)["guard in syn-flood"]; n < 300 {
		t.Errorf("syn-flood guard dropped %d of 500 SYNs sent at 1000/s, want most of them", n)
	}
	if !tcpOpen(b.admin, serverAdm4, 80) {
		t.Error("the flood from one source blocked another")
	}
}

// TestRPFilter (SECURITY.md B7): with rp_filter = "strict", packets from
// the internet link forged with the admin's address (IPv4 and IPv6) are
// dropped before the rules and the scan detector see them, while real
// traffic from both hosts passes; "loose" drops sources with no route.
func TestRPFilter(t *testing.T) {
	b := newBed(t)
	nettest.RequireTools(t, "hping3", "nmap")
	listenTCP(b.server, 80)
	policy := func(mode string) string {
		return sshlessHeader + `
[guards]
rp_filter = "` + mode + `"

[[rule]]
action = "allow"
port = "80"
proto = "tcp"
`
	}
	b.writePolicy(policy("strict"))
	b.mustMoat("up", "--force")
	if !tcpOpen(b.admin, serverAdm4, 80) || !tcpOpen(b.inet, serverWan4, 80) || !tcpOpen(b.inet, serverWan6, 80, "-s", inetV6) {
		t.Fatal("real traffic is dropped")
	}
	before := guardCounters(t, b)
	b.inet.Run("hping3", "-S", "-a", adminV4, "-p", "80", "-c", "20", "-i", "u2000", serverWan4)
	b.inet.Run("hping3", "-S", "-a", adminV4, "--scan", "1000-1050", serverWan4)
	b.inet.Run("nmap", "-6", "-n", "-Pn", "-sS", "-S", adminV6, "-e", "eth0", "-p", "80,1000-1020", "--max-retries", "0", serverWan6)
	after := guardCounters(t, b)
	if got := after["guard in rp-filter"] - before["guard in rp-filter"]; got < 20+51+20 {
		t.Errorf("rp-filter dropped %d forged packets, want every one (at least 91)", got)
	}
	if got := after["default in"] - before["default in"]; got != 0 {
		t.Errorf("%d forged packets reached the default drop (and the scan detector)", got)
	}
	if inKernelSet(b.server, "scan_v4", adminV4) || inKernelSet(b.server, "scan_v6", adminV6) {
		t.Error("forged probes blocked the admin")
	}
	if !tcpOpen(b.admin, serverAdm4, 80) || !tcpOpen(b.admin, serverAdm6, 80) {
		t.Error("the admin lost port 80")
	}

	// Loose: the forged admin address has a route (through the admin
	// link) and passes; an address with no route at all does not.
	b.writePolicy(policy("loose"))
	b.mustMoat("up", "--force")
	before = guardCounters(t, b)
	b.inet.Run("hping3", "-S", "-a", adminV4, "-p", "80", "-c", "5", "-i", "u2000", serverWan4)
	mid := guardCounters(t, b)
	b.inet.Run("hping3", "-S", "-a", "192.0.2.99", "-p", "80", "-c", "5", "-i", "u2000", serverWan4)
	after = guardCounters(t, b)
	if mid["guard in rp-filter"] != before["guard in rp-filter"] || after["guard in rp-filter"]-mid["guard in rp-filter"] < 5 {
		t.Errorf("loose: forged admin dropped %d (want 0), unroutable dropped %d (want 5)",
			mid["guard in rp-filter"]-before["guard in rp-filter"], after["guard in rp-filter"]-mid["guard in rp-filter"])
	}
}
