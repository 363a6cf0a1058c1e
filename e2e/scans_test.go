package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/nettest"
)

const scanPolicy = `
[defaults]
incoming = "deny"

[networks]
admins = ["198.51.100.0/24", "2001:db8:a::/64"]

[bans]
allowlist = ["admins"]

[scan]
kernel_block = false   # let every probe reach the classifier
auto_block = %d

[[rule]]
action = "allow"
port = "80"
proto = "tcp"

[jail.sshd]
logpath = ["%s"]
`

type scanJSON struct {
	Src    string
	Types  []string
	Danger int
	Action string
}

func (b *bed) scans(t *testing.T) map[string]scanJSON {
	t.Helper()
	out := b.mustMoat("scans", "--json")
	var list []scanJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("scans --json: %v\n%s", err, out)
	}
	m := map[string]scanJSON{}
	for _, s := range list {
		m[s.Src] = s
	}
	return m
}

// firstResolver is the first IPv4 nameserver of /etc/resolv.conf, if any.
func firstResolver() (netip.Addr, bool) {
	f, err := os.Open("/etc/resolv.conf")
	if err != nil {
		return netip.Addr{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 2 && fs[0] == "nameserver" {
			if a, err := netip.ParseAddr(fs[1]); err == nil && a.Is4() && !a.IsLoopback() {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}

// TestScanDetection: each nmap scan type is detected and classified from
// the drops the firewall logs to NFLOG; scans forged with the gateway's,
// the resolver's or the admin's address alert but ban nobody; with
// auto-block on, a real scanner is banned.
func TestScanDetection(t *testing.T) {
	b := newBed(t)
	nettest.RequireTools(t, "nmap", "hping3")
	listenTCP(b.server, 80)
	logPath := filepath.Join(b.dir, "auth.log")
	must(t, os.WriteFile(logPath, nil, 0o600))
	b.server.MustRun("ip", "route", "add", "default", "via", "203.0.113.254", "dev", "wan0")
	b.writePolicy(fmt.Sprintf(scanPolicy, 0, logPath))
	b.mustMoat("up", "--force") // no SSH in this policy
	b.daemon(t)

	want := map[string]string{
		"-sS": "SYN (nmap -sS)", "-sT": "connect (nmap -sT)", "-sF": "FIN (nmap -sF)", "-sX": "XMAS (nmap -sX)",
		"-sN": "NULL (nmap -sN)", "-sA": "ACK (nmap -sA)", "-sU": "UDP (nmap -sU)",
	}
	for _, flag := range []string{"-sS", "-sT", "-sF", "-sX", "-sN", "-sA", "-sU"} {
		b.inet.Run("nmap", "-n", "-Pn", flag, "-p", "1-40,8080,3306", "--max-retries", "0", "--host-timeout", "30s", serverWan4)
	}
	time.Sleep(500 * time.Millisecond)
	got := b.scans(t)[inetV4]
	for flag, label := range want {
		if !slices.Contains(got.Types, label) {
			t.Errorf("nmap %s not classified as %q; types: %v", flag, label, got.Types)
		}
	}
	if got.Danger < 2 {
		t.Errorf("danger %d after seven scans of 42 ports", got.Danger)
	}

	// Forged scans: the gateway, the resolver, the admin.
	spoofed := []string{"203.0.113.254", adminV4}
	if r, ok := firstResolver(); ok {
		spoofed = append(spoofed, r.String())
	}
	b.writePolicy(fmt.Sprintf(scanPolicy, 1, logPath))
	b.mustMoat("reload")
	for _, src := range spoofed {
		b.inet.Run("hping3", "-S", "-a", src, "--scan", "2000-2100", serverWan4)
	}
	time.Sleep(time.Second)
	scans := b.scans(t)
	bans := b.bans(t)
	for _, src := range spoofed {
		if _, banned := bans[src+"/32"]; banned {
			t.Errorf("a scan forged with %s got it banned", src)
		}
		if s, ok := scans[src]; ok && s.Action == "banned" {
			t.Errorf("scan forged with %s: action %q", src, s.Action)
		}
	}
	if _, ok := scans["203.0.113.254"]; !ok {
		t.Errorf("the forged scan was not even alerted on: %v", scans)
	}

	// Auto-block on: a real scan is banned.
	b.inet.Run("nmap", "-n", "-Pn", "-sS", "-p", "1-200", "--max-retries", "0", "--host-timeout", "30s", serverWan4)
	b.waitBanned(t, inetV4+"/32", true, 5*time.Second)
	if s := b.scans(t)[inetV4]; s.Action != "banned" {
		t.Errorf("scanner action %q, want banned", s.Action)
	}
	if out := b.mustMoat("status"); !strings.Contains(out, "Top scanners") {
		t.Errorf("status lacks the top scanners:\n%s", out)
	}
}
