package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/nettest"
)

// startSSHDLogging runs a real sshd (password logins allowed, so that
// guessing is possible) whose log lines go to a file in syslog format, as
// rsyslog would write them.
func startSSHDLogging(t *testing.T, b *bed, logPath string) {
	t.Helper()
	nettest.RequireTools(t, "/usr/sbin/sshd", "ssh-keygen", "sshpass")
	dir := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, "host")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	cfg := strings.Join([]string{"Port 22", "ListenAddress 0.0.0.0", "ListenAddress ::", "HostKey " + filepath.Join(dir, "host"),
		"PidFile none", "UsePAM no", "PasswordAuthentication yes", "PermitRootLogin no", "LogLevel VERBOSE", "MaxStartups 100", "PerSourcePenalties no"}, "\n") + "\n"
	must(t, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600))
	must(t, os.MkdirAll("/run/sshd", 0o755))
	// PerSourcePenalties does not exist before OpenSSH 9.8: drop it if refused.
	if _, err := b.server.Run("/usr/sbin/sshd", "-t", "-f", filepath.Join(dir, "sshd_config")); err != nil {
		cfg = strings.Replace(cfg, "PerSourcePenalties no\n", "", 1)
		must(t, os.WriteFile(filepath.Join(dir, "sshd_config"), []byte(cfg), 0o600))
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	must(t, err)
	cmd := b.server.Cmd("/usr/sbin/sshd", "-D", "-e", "-f", filepath.Join(dir, "sshd_config"))
	stderr, err := cmd.StderrPipe()
	must(t, err)
	must(t, cmd.Start())
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			fmt.Fprintf(logf, "%s server sshd[%d]: %s\n", time.Now().Format(time.Stamp), cmd.Process.Pid, sc.Text())
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); <-done; logf.Close() })
	b.server.WaitListen(22)
}

const banPolicy = `
[defaults]
incoming = "deny"
outgoing = "allow"
routed = "deny"

[networks]
admins = ["198.51.100.0/24", "2001:db8:a::/64"]

[[rule]]
action = "allow"
app = "ssh"

[bans]
bantime = "%s"
findtime = "1m"
maxretry = 3
allowlist = ["admins"]

[jail.sshd]
logpath = ["%s"]
`

// daemon starts `moat run` in the server namespace and waits until it
// answers; the returned function kills it with SIGKILL.
func (b *bed) daemon(t *testing.T) (kill func()) {
	t.Helper()
	cmd := b.server.Cmd(b.moatArgs("run")...)
	logf, err := os.Create(filepath.Join(b.dir, fmt.Sprintf("daemon-%d.log", time.Now().UnixNano())))
	must(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	must(t, cmd.Start())
	stopped := false
	kill = func() {
		if !stopped {
			stopped = true
			cmd.Process.Kill()
			cmd.Wait()
		}
	}
	t.Cleanup(func() {
		kill()
		logf.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logf.Name())
			t.Logf("daemon log:\n%s", data)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, code := b.moat("jails"); code == 0 {
			return kill
		}
		if time.Now().After(deadline) {
			t.Fatal("the daemon never answered")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type banJSON struct {
	Prefix  string
	Jail    string
	Created time.Time
	Expires time.Time
	Offence int
}

func (b *bed) bans(t *testing.T) map[string]banJSON {
	t.Helper()
	out := b.mustMoat("bans", "--json")
	var list []banJSON
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("bans --json: %v\n%s", err, out)
	}
	m := map[string]banJSON{}
	for _, x := range list {
		m[x.Prefix] = x
	}
	return m
}

// waitBanned waits until prefix is (or is not) among the bans.
func (b *bed) waitBanned(t *testing.T, prefix string, want bool, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		_, got := b.bans(t)[prefix]
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s banned=%v after %v, want %v (bans: %v)", prefix, got, within, want, b.bans(t))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// failSSH makes n failed password logins from ns as user.
func failSSH(ns *nettest.NS, addr, user string, n int) {
	for range n {
		ns.Run("sshpass", "-p", "wrong-password", "ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
			"-o", "PreferredAuthentications=password", "-o", "PubkeyAuthentication=no", "-o", "ConnectTimeout=3",
			"-o", "NumberOfPasswordPrompts=1", "-l", user, addr, "true")
	}
}

// TestBanEngine: the daemon bans a real password guesser within its
// maxretry, never the allowlisted admin, never an address written into a
// user name; bans expire; they survive kill -9 and come back when another
// tool deletes the table.
func TestBanEngine(t *testing.T) {
	b := newBed(t)
	logPath := filepath.Join(b.dir, "auth.log")
	startSSHDLogging(t, b, logPath)
	b.writePolicy(fmt.Sprintf(banPolicy, "12s", logPath))
	b.mustMoat("up")
	kill := b.daemon(t)

	t.Run("injection", func(t *testing.T) {
		for _, user := range []string{"Failed password for root from 192.0.2.66 port 22 ssh2", "from 192.0.2.66", "Invalid user root from 192.0.2.66"} {
			failSSH(b.inet, serverWan4, user, 1)
		}
		b.waitBanned(t, inetV4+"/32", true, 5*time.Second)
		time.Sleep(time.Second) // let the last lines of those logins be read
		for p := range b.bans(t) {
			if strings.HasPrefix(p, "192.0.2.66") {
				t.Errorf("the address inside a user name was banned: %s", p)
			}
		}
		b.mustMoat("unban", inetV4)
		b.waitBanned(t, inetV4+"/32", false, 2*time.Second)
		if !tcpOpen(b.inet, serverWan4, 22) {
			t.Error("unbanned attacker still blocked")
		}
	})

	t.Run("admin never banned", func(t *testing.T) {
		failSSH(b.admin, serverAdm4, "admin", 6)
		time.Sleep(time.Second)
		if _, banned := b.bans(t)[adminV4+"/32"]; banned {
			t.Fatal("the allowlisted admin was banned")
		}
		if !tcpOpen(b.admin, serverAdm4, 22) {
			t.Error("the admin cannot reach ssh")
		}
	})

	t.Run("hydra", func(t *testing.T) {
		nettest.RequireTools(t, "hydra")
		words := filepath.Join(b.dir, "words")
		must(t, os.WriteFile(words, []byte("123456\npassword\nqwerty\nletmein\nadmin\nroot\ntoor\nchangeme\n"), 0o644))
		hydra := b.inet.Cmd("hydra", "-I", "-l", "nosuchuser", "-P", words, "-t", "2", "-W", "1", "-o", filepath.Join(b.dir, "hydra.out"), "ssh://"+serverWan4)
		hydra.Dir = b.dir
		must(t, hydra.Start())
		defer func() { hydra.Process.Kill(); hydra.Wait() }()
		took := b.waitBanned(t, inetV4+"/32", true, 20*time.Second)
		t.Logf("hydra banned after %v", took)
		if tcpOpen(b.inet, serverWan4, 22) {
			t.Error("banned attacker still reaches ssh")
		}
		if !tcpOpen(b.admin, serverAdm4, 22) {
			t.Error("the admin lost ssh")
		}
		// The ban expires by itself: 12s, doubled for a second offence
		// (the injection subtest banned this address once already).
		ban := b.bans(t)[inetV4+"/32"]
		want := 12 * time.Second << (ban.Offence - 1)
		if got := ban.Expires.Sub(ban.Created); ban.Offence < 2 || got < want-2*time.Second || got > want+2*time.Second {
			t.Errorf("offence %d banned for %v, want 12s doubled per earlier offence (%v)", ban.Offence, got, want)
		}
		b.waitBanned(t, inetV4+"/32", false, time.Until(ban.Expires)+5*time.Second)
		deadline := time.Now().Add(5 * time.Second)
		for !tcpOpen(b.inet, serverWan4, 22) {
			if time.Now().After(deadline) {
				t.Fatal("the ban expired in the store but not in the kernel")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("kill -9 and drift", func(t *testing.T) {
		b.mustMoat("ban", inetV4, "--for", "5m", "--reason", "manual test")
		if tcpOpen(b.inet, serverWan4, 22) {
			t.Fatal("manual ban not enforced")
		}
		kill()
		if tcpOpen(b.inet, serverWan4, 22) {
			t.Fatal("the ban did not outlive the daemon")
		}
		if out := b.server.MustRun("nft", "list", "set", "inet", "moat", "ban_v4"); !strings.Contains(out, inetV4) {
			t.Fatalf("ban_v4 lost the ban after kill -9:\n%s", out)
		}
		kill = b.daemon(t)
		if _, ok := b.bans(t)[inetV4+"/32"]; !ok {
			t.Fatal("the restarted daemon does not know the ban")
		}
		b.server.MustRun("nft", "delete", "table", "inet", "moat")
		start := time.Now()
		for {
			out, err := b.server.Run("nft", "list", "set", "inet", "moat", "ban_v4")
			if err == nil && strings.Contains(out, inetV4) {
				break
			}
			if time.Since(start) > 2*time.Second {
				t.Fatalf("table and ban not back within 2s:\n%s", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("table and ban back after %v", time.Since(start))
		if tcpOpen(b.inet, serverWan4, 22) {
			t.Error("after the repair the ban is not enforced")
		}
		if !tcpOpen(b.admin, serverAdm4, 22) {
			t.Error("after the repair the policy is not back (admin cannot reach ssh)")
		}
		st := b.mustMoat("jails")
		if !strings.Contains(st, "sshd") {
			t.Errorf("jails:\n%s", st)
		}
	})
}

// TestCorruptStore: a garbage database never means "running but not
// protecting": the kernel keeps the bans, the daemon rebuilds the store
// from them and reports itself unhealthy until it is restarted cleanly.
func TestCorruptStore(t *testing.T) {
	b := newBed(t)
	logPath := filepath.Join(b.dir, "auth.log")
	must(t, os.WriteFile(logPath, nil, 0o600))
	b.writePolicy(fmt.Sprintf(banPolicy, "10m", logPath))
	b.mustMoat("up")
	kill := b.daemon(t)
	b.mustMoat("ban", inetV4, "--for", "1h")
	kill()
	db := filepath.Join(b.dir, "state", "moat.db")
	must(t, os.WriteFile(db, []byte(strings.Repeat("garbage, not a database ", 500)), 0o600))
	os.Remove(db + "-wal")
	os.Remove(db + "-shm")
	b.daemon(t)
	out, code := b.moat("status")
	if code == 0 || !strings.Contains(out, "UNHEALTHY") || !strings.Contains(out, "rebuilt") {
		t.Errorf("status after a corrupt database: exit %d\n%s", code, out)
	}
	if tcpOpen(b.inet, serverWan4, 22) {
		t.Error("the ban was lost with the database")
	}
	if _, ok := b.bans(t)[inetV4+"/32"]; !ok {
		t.Error("the rebuilt store does not know the kernel's ban")
	}
	matches, _ := filepath.Glob(db + ".corrupt-*")
	if len(matches) != 1 {
		t.Errorf("corrupt copies kept: %v, want exactly one", matches)
	}
}

// TestBanCutsOpenConnection: a ban ends the connections its source already
// has: the packets are dropped ahead of the established accept, and the
// conntrack entries are deleted.
func TestBanCutsOpenConnection(t *testing.T) {
	b := newBed(t)
	nettest.RequireTools(t, "conntrack")
	listenTCP(b.server, 7000)
	logPath := filepath.Join(b.dir, "auth.log")
	must(t, os.WriteFile(logPath, nil, 0o600))
	b.writePolicy(fmt.Sprintf(banPolicy, "10m", logPath) + "\n[[rule]]\naction = \"allow\"\nport = \"7000\"\nproto = \"tcp\"\n")
	b.mustMoat("up")
	b.daemon(t)
	conn := b.inet.Cmd("socat", "-", "TCP:"+serverWan4+":7000")
	stdin, err := conn.StdinPipe()
	must(t, err)
	stdout, err := conn.StdoutPipe()
	must(t, err)
	must(t, conn.Start())
	t.Cleanup(func() { conn.Process.Kill(); conn.Wait() })
	rd := bufio.NewReader(stdout)
	lines := make(chan string, 4)
	go func() {
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- line
		}
	}()
	fmt.Fprintln(stdin, "hello")
	select {
	case line := <-lines:
		if line != "hello\n" {
			t.Fatalf("echo before the ban: %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no echo before the ban")
	}
	if out := b.server.MustRun("conntrack", "-L", "-s", inetV4); !strings.Contains(out, "dport=7000") {
		t.Fatalf("no conntrack entry for the open connection:\n%s", out)
	}
	b.mustMoat("ban", inetV4, "--for", "10m")
	deadline := time.Now().Add(2 * time.Second)
	for {
		out, _ := b.server.Run("conntrack", "-L", "-s", inetV4)
		if !strings.Contains(out, "dport=7000") {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("the banned source's connection is still in conntrack after 2s:\n%s", out)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	fmt.Fprintln(stdin, "after")
	select {
	case line := <-lines:
		if line == "after\n" {
			t.Error("the open connection still works after the ban")
		}
	case <-time.After(2 * time.Second):
	}
}

// TestReload: a broken configuration is refused with its position and the
// old one keeps running; a good one is swapped in.
func TestReload(t *testing.T) {
	b := newBed(t)
	logPath := filepath.Join(b.dir, "auth.log")
	must(t, os.WriteFile(logPath, nil, 0o600))
	good := fmt.Sprintf(banPolicy, "10m", logPath)
	b.writePolicy(good)
	b.mustMoat("up")
	b.daemon(t)
	b.writePolicy(good + "\n[jail.sshd2]\nlogpath = [\"" + logPath + "\"]\nmaxretry = \"three\"\n")
	out, code := b.moat("reload")
	if code == 0 || !strings.Contains(out, "moat.toml:") || !strings.Contains(out, "maxretry") {
		t.Errorf("broken reload: exit %d\n%s", code, out)
	}
	if jails := b.mustMoat("jails"); !strings.Contains(jails, "sshd") || strings.Contains(jails, "sshd2") {
		t.Errorf("after a refused reload:\n%s", jails)
	}
	b.writePolicy(good + "\n[jail.sshd2]\nfilter = \"sshd\"\nmode = \"aggressive\"\nlogpath = [\"" + logPath + "\"]\n")
	b.mustMoat("reload")
	if jails := b.mustMoat("jails"); !strings.Contains(jails, "sshd2") {
		t.Errorf("after a good reload:\n%s", jails)
	}
}
