package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/nettest"
)

const trapPolicy = `
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
port = "80"
proto = "tcp"

[bans]
allowlist = ["admins"]

[honeypot]
tcp = [2323, 3389]
udp = [1900]
bantime = "1h"

[jail.sshd]
logpath = ["%s"]
`

// inKernelSet reports whether addr is an element of table moat's set.
func inKernelSet(ns *nettest.NS, set, addr string) bool {
	out, err := ns.Run("nft", "list", "set", "inet", "moat", set)
	return err == nil && strings.Contains(out, addr+" ") || strings.Contains(out, addr+",")
}

// TestHoneypot: a completed handshake on a trap port bans the source in the
// kernel (IPv4 and IPv6); a spoofed SYN bans nobody; a UDP datagram only
// alerts; an allowlisted admin is never banned; a connection flood leaves
// the daemon healthy.
func TestHoneypot(t *testing.T) {
	b := newBed(t)
	nettest.RequireTools(t, "hping3")
	logPath := filepath.Join(b.dir, "auth.log")
	must(t, os.WriteFile(logPath, nil, 0o600))
	listenTCP(b.server, 80)
	b.writePolicy(fmt.Sprintf(trapPolicy, logPath))
	b.mustMoat("up")
	b.daemon(t)

	// A spoofed SYN never completes a handshake: not with a source that
	// does not exist (192.0.2.99), nor with a live one (203.0.113.67, a
	// second address of the internet host, whose kernel answers our
	// SYN-ACK with a RST that conntrack counts as established).
	b.inet.MustRun("ip", "addr", "add", "203.0.113.67/24", "dev", "eth0")
	b.inet.Run("hping3", "-S", "-a", "192.0.2.99", "-p", "2323", "-c", "20", "-i", "u10000", serverWan4)
	b.inet.Run("hping3", "-S", "-a", "203.0.113.67", "-p", "2323", "-c", "20", "-i", "u10000", serverWan4)
	if inKernelSet(b.server, "ban_v4", "203.0.113.67") {
		t.Fatal("a SYN forged with a live host's address got that host banned (its RST to our SYN-ACK)")
	}
	// A UDP datagram to a UDP trap: alert only.
	udp := b.inet.Cmd("socat", "-T", "1", "-", fmt.Sprintf("UDP:%s:1900", serverWan4))
	udp.Stdin = strings.NewReader("M-SEARCH\n")
	udp.Run()
	time.Sleep(300 * time.Millisecond)
	if bans := b.bans(t); len(bans) != 0 {
		t.Errorf("spoofed SYNs or a UDP datagram caused bans: %v", bans)
	}
	if !tcpOpen(b.inet, serverWan4, 80) {
		t.Fatal("the internet host lost port 80 before touching a trap")
	}

	// The real thing, in both families.
	start := time.Now()
	tcpOpen(b.inet, serverWan4, 2323)
	if !inKernelSet(b.server, "ban_v4", inetV4) {
		t.Fatalf("no kernel ban right after a completed handshake (%v)", time.Since(start))
	}
	tcpOpen(b.inet, serverWan6, 3389, "-s", inetV6)
	if !inKernelSet(b.server, "ban_v6", inetV6) {
		t.Fatal("no kernel ban for the IPv6 trap connection")
	}
	if tcpOpen(b.inet, serverWan4, 80) || tcpOpen(b.inet, serverWan6, 80, "-s", inetV6) {
		t.Error("a trapped source still reaches port 80")
	}
	b.waitBanned(t, inetV4+"/32", true, 2*time.Second)
	if ban := b.bans(t)[inetV4+"/32"]; ban.Jail != "honeypot" || time.Until(ban.Expires) < 50*time.Minute {
		t.Errorf("recorded ban = %+v, want jail honeypot for about 1h", ban)
	}

	// The admin pokes the trap hard: allowlisted, never banned; the daemon
	// stays healthy through a flood of connections.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 40 {
				tcpOpen(b.admin, serverAdm4, 2323)
			}
		})
	}
	wg.Wait()
	if inKernelSet(b.server, "ban_v4", adminV4) {
		t.Error("the allowlisted admin was banned by the kernel trap rule")
	}
	if _, banned := b.bans(t)[adminV4+"/32"]; banned {
		t.Error("the allowlisted admin was banned by the daemon")
	}
	if out, code := b.moat("status"); code != 0 || !strings.Contains(out, "healthy") {
		t.Errorf("after a trap flood: exit %d\n%s", code, out)
	}
	if !tcpOpen(b.admin, serverAdm4, 80) {
		t.Error("the admin lost port 80")
	}
}

// TestScanBlock: an nmap SYN scan is blocked in the kernel after a few
// dropped probes, so it finds few of the six open ports; probes forged with
// the allowlisted admin's address block nobody.
func TestScanBlock(t *testing.T) {
	b := newBed(t)
	nettest.RequireTools(t, "nmap", "hping3")
	open := []int{22, 80, 443, 3306, 5432, 8080}
	for _, p := range open {
		listenTCP(b.server, p)
	}
	b.writePolicy(`
[defaults]
incoming = "deny"

[networks]
admins = ["198.51.100.0/24", "2001:db8:a::/64"]

[bans]
allowlist = ["admins"]

[[rule]]
action = "allow"
port = "22,80,443,3306,5432,8080"
proto = "tcp"
`)
	b.mustMoat("up")
	// Forged probes in the admin's name, from the internet side.
	b.inet.Run("hping3", "-S", "-a", adminV4, "--scan", "1000-1100", serverWan4)
	if inKernelSet(b.server, "scan_v4", adminV4) {
		t.Fatal("probes forged with the allowlisted admin's address blocked the admin")
	}
	if !tcpOpen(b.admin, serverAdm4, 80) {
		t.Fatal("the admin lost port 80")
	}
	start := guardCounters(t, b)
	out, _ := b.inet.Run("nmap", "-n", "-Pn", "-sS", "-T4", "--top-ports", "1000", "--max-retries", "1", "--host-timeout", "40s", serverWan4)
	if !inKernelSet(b.server, "scan_v4", inetV4) {
		t.Fatalf("the scanner is not in the kernel block set\n%s", out)
	}
	// The block lasts longer than the scan, so every probe that reached
	// the default drop came before the block.
	end := guardCounters(t, b)
	before := end["default in"] - start["default in"]
	after := end["scan-block scan_v4"] - start["scan-block scan_v4"]
	if before == 0 || before > 10 {
		t.Errorf("%d of nmap's probes reached the default drop before the block, want 1-10", before)
	}
	if after < 100 {
		t.Errorf("only %d probes met the block, want most of the scan's", after)
	}
	t.Logf("nmap probes dropped before the block: %d, after it: %d", before, after)
	if !tcpOpen(b.admin, serverAdm4, 3306) {
		t.Error("the admin is affected by the scanner's block")
	}
}
