package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/nettest"
)

// sshd runs a real OpenSSH server in the server namespace, reachable with
// the returned client key as root.
func startSSHD(t *testing.T, b *bed) (key string) {
	t.Helper()
	nettest.RequireTools(t, "ssh", "ssh-keygen", "/usr/sbin/sshd")
	dir := t.TempDir()
	for _, k := range []string{"host", "client"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "client.pub"))
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "authorized_keys"), pub, 0o600))
	cfg := strings.Join([]string{
		"Port 22", "ListenAddress 0.0.0.0", "ListenAddress ::",
		"HostKey " + filepath.Join(dir, "host"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PidFile none", "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password",
		"PasswordAuthentication no", "KbdInteractiveAuthentication no", "LogLevel VERBOSE",
		"ClientAliveInterval 0",
	}, "\n") + "\n"
	must(t, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600))
	must(t, os.MkdirAll("/run/sshd", 0o755))
	b.server.Start("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	b.server.WaitListen(22)
	return filepath.Join(dir, "client")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// sshCmd runs remote on the server over SSH from ns.
func sshCmd(ns *nettest.NS, key, addr string, remote ...string) *exec.Cmd {
	args := []string{"ssh", "-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR", "root@" + addr}
	return ns.Cmd(append(args, remote...)...)
}

// shellQuote quotes words for the remote shell sshd runs the command with.
func shellQuote(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

const sshFromAdmins = `
[defaults]
incoming = "deny"
outgoing = "allow"
routed = "deny"

[networks]
admins = ["198.51.100.0/24", "2001:db8:a::/64"]

[[rule]]
action = "allow"
app = "ssh"
from = "admins"
`

const sshFromElsewhere = `
[defaults]
incoming = "deny"
outgoing = "allow"
routed = "deny"

[[rule]]
action = "allow"
app = "ssh"
from = "192.0.2.0/24"
`

// TestLockoutGuard: `moat up` over SSH refuses a policy that would refuse
// the admin's next SSH connection, and one that admits no SSH at all; the
// ruleset stays as it was.
func TestLockoutGuard(t *testing.T) {
	b := newBed(t)
	key := startSSHD(t, b)
	b.writePolicy(sshFromAdmins)
	up := shellQuote(b.moatArgs("up"))
	if out, err := sshCmd(b.admin, key, serverAdm4, up).CombinedOutput(); err != nil {
		t.Fatalf("moat up over ssh, policy admitting the admin: %v\n%s", err, out)
	}
	before := nftList(b.server)

	b.writePolicy(sshFromElsewhere)
	out, err := sshCmd(b.admin, key, serverAdm4, up).CombinedOutput()
	if code := exitCode(err); code != 4 {
		t.Fatalf("policy cutting the session: exit %d, want 4 (refused)\n%s", code, out)
	}
	if !strings.Contains(string(out), adminV4) {
		t.Errorf("the refusal does not name the session's peer %s:\n%s", adminV4, out)
	}
	if after := nftList(b.server); after != before {
		t.Errorf("refused policy changed the ruleset\n--- before\n%s\n--- after\n%s", before, after)
	}

	b.writePolicy(sshlessHeader)
	out2, code := b.moat("up")
	if code != 4 || !strings.Contains(out2, "no rule admits SSH") {
		t.Errorf("policy with no SSH at all: exit %d, want 4 and a reason\n%s", code, out2)
	}
	if after := nftList(b.server); after != before {
		t.Errorf("refused policy changed the ruleset")
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// TestConfirmRollback: `moat up --confirm` over SSH applies a policy that
// cuts the admin off; the SSH client dies; at the deadline moat puts the
// previous ruleset back by itself and the admin gets in again.
func TestConfirmRollback(t *testing.T) {
	b := newBed(t)
	key := startSSHD(t, b)
	b.writePolicy(sshFromAdmins)
	b.mustMoat("up")
	before := b.server.MustRun("nft", "-s", "list", "table", "inet", "moat")
	canSSH := func() bool { return sshCmd(b.admin, key, serverAdm4, "true").Run() == nil }
	if !canSSH() {
		t.Fatal("admin cannot ssh in under the first policy")
	}

	b.writePolicy(sshFromElsewhere)
	remote := shellQuote(b.moatArgs("up", "--confirm", "6s", "--force")) + " && sleep 600"
	client := sshCmd(b.admin, key, serverAdm4, remote)
	must(t, client.Start())
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.server.MustRun("nft", "-s", "list", "table", "inet", "moat"), "192.0.2.0/24") {
		if time.Now().After(deadline) {
			t.Fatal("the new policy never got applied")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The confirming client is gone for good.
	client.Process.Kill()
	client.Wait()
	if canSSH() {
		t.Fatal("the new policy should refuse the admin's new connections")
	}
	time.Sleep(8 * time.Second)
	after := b.server.MustRun("nft", "-s", "list", "table", "inet", "moat")
	if after != before {
		t.Errorf("rollback did not restore the previous ruleset\n--- before\n%s\n--- after\n%s", before, after)
	}
	if !canSSH() {
		t.Error("after the rollback the admin still cannot ssh in")
	}
	if out, code := b.moat("confirm"); code == 0 {
		t.Errorf("confirm after the rollback succeeded:\n%s", out)
	}
}

// TestConfirmKeeps: a confirmed apply survives its deadline; an apply with
// nothing before it rolls back to no table at all.
func TestConfirmKeeps(t *testing.T) {
	b := newBed(t)
	b.writePolicy(sshFromAdmins)
	b.mustMoat("up", "--confirm", "2s")
	b.mustMoat("confirm")
	time.Sleep(3 * time.Second)
	if _, err := b.server.Run("nft", "list", "table", "inet", "moat"); err != nil {
		t.Fatalf("confirmed table gone after the deadline: %v", err)
	}
	b.mustMoat("down")
	b.mustMoat("up", "--confirm", "2s")
	time.Sleep(4 * time.Second)
	if out, err := b.server.Run("nft", "list", "table", "inet", "moat"); err == nil {
		t.Fatalf("unconfirmed first apply was not rolled back to nothing:\n%s", out)
	}
}

// TestBrokenPolicyChangesNothing: each broken policy is refused with file,
// line, column and field, exit code 3, and the live ruleset (handles
// included, so not even rebuilt) stays byte-identical.
func TestBrokenPolicyChangesNothing(t *testing.T) {
	b := newBed(t)
	b.writePolicy(sshFromAdmins)
	b.mustMoat("up")
	before := nftList(b.server)
	cases := []struct {
		name, policy, want string
	}{
		{"unknown key", "[defaults]\nincomin = \"deny\"\n", `moat.toml:2:1: defaults.incomin: unknown key "incomin" (did you mean "incoming"?)`},
		{"bad prefix", "[networks]\nadmins = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n", `moat.toml:2:25: networks.admins[2]: invalid prefix "10.0.0.0/33"`},
		{"host bits", "[networks]\nadmins = [\"1.2.3.4/24\"]\n", `did you mean 1.2.3.0/24?`},
		{"port out of range", sshFromAdmins + "\n[[rule]]\naction = \"allow\"\nport = \"70000\"\n", `moat.toml:17:8: rule[2].port:`},
		{"unknown network", "[[rule]]\naction = \"allow\"\nfrom = \"admns\"\n", `moat.toml:3:8: rule[1].from:`},
		{"wrong type", "[firewall]\npriority = \"high\"\n", `moat.toml:2:`},
		{"syntax", "[defaults\nincoming = \"deny\"\n", `moat.toml:1:`},
		{"bad default", "[defaults]\nincoming = \"limit\"\n", `moat.toml:2:12: defaults.incoming:`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b.writePolicy(c.policy)
			out, code := b.moat("up")
			if code != 3 {
				t.Errorf("exit %d, want 3\n%s", code, out)
			}
			if !strings.Contains(out, c.want) {
				t.Errorf("error does not say %q:\n%s", c.want, out)
			}
			if _, code := b.moat("check"); code != 3 {
				t.Errorf("check: exit %d, want 3", code)
			}
			if after := nftList(b.server); after != before {
				t.Errorf("ruleset changed\n--- before\n%s\n--- after\n%s", before, after)
			}
		})
	}
}
