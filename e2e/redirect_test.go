package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/moat-sec/moat/internal/nettest"
)

// The honeypot host, on its own link behind the server.
const (
	serverHp4 = "192.0.2.1"
	honeyV4   = "192.0.2.9"
	serverHp6 = "2001:db8:c::1"
	honeyV6   = "2001:db8:c::9"
)

const redirectPolicy = `
[defaults]
incoming = "deny"
outgoing = "allow"
routed = "deny"

[networks]
admins = ["198.51.100.0/24", "2001:db8:a::/64"]

[[rule]]
action = "allow"
app = "ssh"

[[rule]]
action = "allow"
port = "80,8000"
proto = "tcp"

# A container published by another tool's DNAT (as Docker does): the
# routed traffic to it is allowed by moat, and bans still apply.
[[rule]]
action = "allow"
direction = "routed"
to = "192.0.2.9"
port = "8080"
proto = "tcp"

[bans]
allowlist = ["admins"]

[[redirect]]
port = 80
to = ["192.0.2.9:8080", "[2001:db8:c::9]:8080"]

[[redirect]]
port = 22
from = "!admins"
to = ["2222"]

[jail.sshd]
logpath = ["%s"]
`

// serve runs a TCP service on port in ns that sends what argv prints
// (dual-stack); socat puts the client's address in SOCAT_PEERADDR.
func serve(ns *nettest.NS, port int, argv string) {
	ns.Start("socat", "-lf", "/dev/null", fmt.Sprintf("TCP6-LISTEN:%d,fork,reuseaddr,ipv6only=0", port), "EXEC:"+argv)
	ns.WaitListen(port)
}

// banner returns what the service at addr:port sends first, or "" when
// the connection does not complete.
func banner(ns *nettest.NS, addr string, port int, extra ...string) string {
	args := append([]string{"nc", "-n", "-w", "1"}, extra...)
	out, _ := ns.Run(append(args, addr, strconv.Itoa(port))...)
	line, _, _ := strings.Cut(out, "\n")
	return strings.TrimSpace(line)
}

// TestRedirect: banned sources that try the web server meet a honeypot host
// instead (IPv4 and IPv6), which sees their real address; SSH from outside
// the admins' network meets a local honeypot while the admins reach the
// real sshd; a connection another tool DNATs for a banned source is still
// dropped; other bits of the connection mark survive; a policy that would
// send the admin's own SSH session to the honeypot is refused.
func TestRedirect(t *testing.T) {
	b := newBed(t)
	nettest.RequireTools(t, "conntrack")
	hp := nettest.New(t, "mhpot")
	nettest.Link(t, b.server, "hp0", []string{serverHp4 + "/24", serverHp6 + "/64"}, hp, "eth0", []string{honeyV4 + "/24", honeyV6 + "/64"})
	hp.MustRun("ip", "route", "add", "default", "via", serverHp4)
	hp.MustRun("ip", "-6", "route", "add", "default", "via", serverHp6)
	b.server.MustRun("sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")

	startSSHD(t, b)
	serve(b.server, 80, "echo real-web")
	serve(b.server, 8000, "echo real-app")
	serve(b.server, 2222, "echo SSH-2.0-local-honeypot")
	serve(hp, 8080, "printenv SOCAT_PEERADDR")

	logPath := filepath.Join(b.dir, "auth.log")
	must(t, os.WriteFile(logPath, nil, 0o600))
	b.writePolicy(fmt.Sprintf(redirectPolicy, logPath))

	// The admin's own session comes from outside admins: refused.
	up := b.server.Cmd(b.moatArgs("up")...)
	up.Env = append(os.Environ(), "SSH_CONNECTION="+inetV4+" 50000 "+serverWan4+" 22")
	if out, err := up.CombinedOutput(); exitCode(err) != 4 || !strings.Contains(string(out), "honeypot") {
		t.Fatalf("a redirect of the admin's own SSH session: exit %d, want 4 (refused)\n%s", exitCode(err), out)
	}
	b.mustMoat("up")
	b.daemon(t)

	// Another tool's DNAT, as Docker publishes a container's port; and a
	// tool that marks connections with a bit of its own, which must
	// survive ours.
	foreign := `table ip dockerish {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 8001 dnat to 192.0.2.9:8080
	}
	chain marker {
		type filter hook prerouting priority -150; policy accept;
		ct state new ct mark set ct mark | 0x1
	}
}
`
	load := b.server.Cmd("nft", "-f", "-")
	load.Stdin = strings.NewReader(foreign)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("load the foreign table: %v\n%s", err, out)
	}

	// Nobody banned: the web server and the app are real for everyone;
	// SSH is real for the admins and a honeypot for everyone else.
	for _, c := range []struct {
		ns         *nettest.NS
		addr       string
		port       int
		want, name string
		extra      []string
	}{
		{b.inet, serverWan4, 80, "real-web", "web, v4", nil},
		{b.inet, serverWan6, 80, "real-web", "web, v6", []string{"-s", inetV6}},
		{b.inet, serverWan4, 8001, "0000:ffff:cb00:7142]", "the foreign DNAT", nil},
		{b.admin, serverAdm4, 22, "SSH-2.0-OpenSSH", "admin ssh, v4", nil},
		{b.admin, serverAdm6, 22, "SSH-2.0-OpenSSH", "admin ssh, v6", nil},
		{b.inet, serverWan4, 22, "SSH-2.0-local-honeypot", "untrusted ssh, v4", nil},
		{b.inet, serverWan6, 22, "SSH-2.0-local-honeypot", "untrusted ssh, v6", []string{"-s", inetV6}},
	} {
		if got := banner(c.ns, c.addr, c.port, c.extra...); !strings.Contains(got, c.want) {
			t.Errorf("before the ban, %s: got %q, want %q", c.name, got, c.want)
		}
	}

	b.mustMoat("ban", inetV4, "--for", "10m")
	b.mustMoat("ban", inetV6, "--for", "10m")
	// Banned: the web port leads to the honeypot host, which sees the
	// attacker's own address; the other allowed port and the foreign DNAT
	// are dropped as bans are.
	if got := peerOf(banner(b.inet, serverWan4, 80)); got != inetV4 {
		t.Errorf("banned v4 source on port 80: got %q, want the honeypot host reporting %s", got, inetV4)
	}
	if got := peerOf(banner(b.inet, serverWan6, 80, "-s", inetV6)); got != inetV6 {
		t.Errorf("banned v6 source on port 80: got %q, want the honeypot host reporting %s", got, inetV6)
	}
	if got := banner(b.inet, serverWan6, 80, "-s", inetV6b); got != "real-web" {
		t.Errorf("an unbanned neighbour in the same /64: got %q, want the real web server", got)
	}
	for _, c := range []struct {
		port  int
		extra []string
		addr  string
	}{{8000, nil, serverWan4}, {8000, []string{"-s", inetV6}, serverWan6}, {8001, nil, serverWan4}} {
		if got := banner(b.inet, c.addr, c.port, c.extra...); got != "" {
			t.Errorf("banned source reached [%s]:%d: %q", c.addr, c.port, got)
		}
	}
	if got := banner(b.inet, serverWan4, 22); !strings.HasPrefix(got, "SSH-2.0-local-honeypot") {
		t.Errorf("banned source on ssh: got %q, want the local honeypot", got)
	}
	if got := banner(b.admin, serverAdm4, 80); got != "real-web" {
		t.Errorf("the admin on port 80: got %q", got)
	}
	// Our bit joins the other tool's.
	ct, _ := b.server.Run("conntrack", "-L", "-p", "tcp", "-s", inetV4, "--dport", "80")
	if !strings.Contains(ct, "mark=1073741825") {
		t.Errorf("conntrack mark of a redirected connection: want 0x40000001 (ours and the other tool's)\n%s", ct+b.server.MustRun("conntrack", "-L"))
	}

	b.mustMoat("unban", inetV4)
	if got := banner(b.inet, serverWan4, 80); got != "real-web" {
		t.Errorf("after the unban: got %q, want the real web server", got)
	}
	counters := b.server.MustRun("nft", "list", "chain", "inet", "moat", "redirects")
	status := b.mustMoat("status")
	if !strings.Contains(status, "tcp/80 from banned sources to 192.0.2.9:8080 and [2001:db8:c::9]:8080  2") ||
		!strings.Contains(status, "tcp/22 from sources outside admins to port 2222") {
		t.Errorf("moat status does not show the redirects and their use:\n%s", status)
	}
	for _, set := range []string{"@ban_v4 ", "@ban_v6 ", "@net_admins_v4 ", "@net_admins_v6 "} {
		i := strings.Index(counters, set)
		if i < 0 || strings.HasPrefix(counters[i+strings.Index(counters[i:], "counter"):], "counter packets 0 ") {
			t.Errorf("the redirect rule on %s counted nothing:\n%s", set, counters)
		}
	}
}

// peerOf reads the address the honeypot host's socat reports, in its
// bracketed, expanded form.
func peerOf(s string) string {
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return s
	}
	return a.Unmap().String()
}
