package e2e

import (
	"strings"
	"testing"
)

// TestEditWhileActive: with the firewall up, each CLI edit takes effect at
// once, like UFW; `moat boot` (what the systemd unit runs) restores the
// confirmed ruleset after a "reboot" emptied the kernel.
func TestEditWhileActive(t *testing.T) {
	b := newBed(t)
	listenTCP(b.server, 8080)
	listenTCP(b.server, 9090)
	b.writePolicy(sshFromAdmins)
	b.mustMoat("up")
	if tcpOpen(b.inet, serverWan4, 8080) {
		t.Fatal("8080 open before any rule")
	}
	b.mustMoat("allow", "8080/tcp")
	if !tcpOpen(b.inet, serverWan4, 8080) || !tcpOpen(b.inet, serverWan6, 8080) {
		t.Error("allow 8080/tcp did not open the port at once")
	}
	b.mustMoat("insert", "2", "deny", "from", inetV4, "to", "any", "port", "8080", "proto", "tcp")
	if tcpOpen(b.inet, serverWan4, 8080) {
		t.Error("inserted deny before the allow did not take effect")
	}
	if !tcpOpen(b.inet, serverWan6, 8080) {
		t.Error("the IPv4 deny closed IPv6 too")
	}
	b.mustMoat("delete", "2")
	if !tcpOpen(b.inet, serverWan4, 8080) {
		t.Error("deleting the deny did not reopen the port")
	}
	b.mustMoat("default", "allow", "incoming")
	if !tcpOpen(b.inet, serverWan4, 9090) {
		t.Error("default allow incoming did not open 9090")
	}
	b.mustMoat("default", "deny", "incoming")
	confirmed := b.server.MustRun("nft", "-s", "list", "table", "inet", "moat")

	// A reboot empties the kernel; the unit's `moat boot` restores it.
	b.server.MustRun("nft", "delete", "table", "inet", "moat")
	if !tcpOpen(b.inet, serverWan4, 9090) {
		t.Fatal("no table, yet 9090 is closed")
	}
	b.mustMoat("boot")
	if got := b.server.MustRun("nft", "-s", "list", "table", "inet", "moat"); got != confirmed {
		t.Errorf("boot restored a different ruleset\n--- confirmed\n%s\n--- restored\n%s", confirmed, got)
	}
	if tcpOpen(b.inet, serverWan4, 9090) {
		t.Error("after boot, 9090 is open")
	}
	out := b.mustMoat("status")
	if !strings.Contains(out, "Status: active") || !strings.Contains(out, "allow 8080/tcp") {
		t.Errorf("status:\n%s", out)
	}
}

// TestOtherTablesUntouched: moat owns one table; another tool's table
// survives up, reloads and down.
func TestOtherTablesUntouched(t *testing.T) {
	b := newBed(t)
	cmd := b.server.Cmd("nft", "-f", "-")
	cmd.Stdin = strings.NewReader("table ip other { chain c { type filter hook input priority 10; policy accept; counter; }; }\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	other := b.server.MustRun("nft", "-a", "-s", "list", "table", "ip", "other")
	b.writePolicy(sshFromAdmins)
	b.mustMoat("up")
	b.mustMoat("up")
	b.mustMoat("down")
	if got := b.server.MustRun("nft", "-a", "-s", "list", "table", "ip", "other"); got != other {
		t.Errorf("moat touched another table\n--- before\n%s\n--- after\n%s", other, got)
	}
	if out, err := b.server.Run("nft", "list", "table", "inet", "moat"); err == nil {
		t.Errorf("down left moat's table:\n%s", out)
	}
}
