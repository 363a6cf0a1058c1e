package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// moatEnv runs the CLI in-process against a temporary policy, state and run
// directory; nothing here touches the kernel.
type moatEnv struct {
	t   *testing.T
	dir string
}

func newMoat(t *testing.T) *moatEnv {
	return &moatEnv{t: t, dir: t.TempDir()}
}

func (m *moatEnv) run(args ...string) (string, int) {
	var out bytes.Buffer
	full := append([]string{"--config", filepath.Join(m.dir, "etc", "moat.toml"), "--state-dir", filepath.Join(m.dir, "state"), "--run-dir", filepath.Join(m.dir, "run")}, args...)
	code := Main(full, &out, &out)
	return out.String(), code
}

func (m *moatEnv) must(args ...string) string {
	m.t.Helper()
	out, code := m.run(args...)
	if code != 0 {
		m.t.Fatalf("moat %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

func (m *moatEnv) rules() string {
	data, err := os.ReadFile(filepath.Join(m.dir, "etc", "rules.toml"))
	if err != nil {
		m.t.Fatal(err)
	}
	return string(data)
}

func TestEditRules(t *testing.T) {
	m := newMoat(t)
	m.must("init")
	if _, code := m.run("init"); code == 0 {
		t.Error("init over an existing policy succeeded without --force")
	}
	m.must("allow", "http")
	m.must("allow", "from", "10.0.0.0/8", "to", "any", "port", "5432", "proto", "tcp")
	m.must("deny", "in", "on", "eth0", "23/tcp", "comment", "no telnet")
	if out := m.must("allow", "http"); !strings.Contains(out, "Skipping") {
		t.Errorf("duplicate add: %s", out)
	}
	m.must("insert", "2", "reject", "113/tcp")
	out := m.must("status", "numbered")
	for i, want := range []string{"[ 1]  limit ssh", "[ 2]  reject 113/tcp", "[ 3]  allow http", "[ 4]  allow from 10.0.0.0/8 to any port 5432 proto tcp", "[ 5]  deny in on eth0 23/tcp comment 'no telnet'"} {
		if !strings.Contains(out, want) {
			t.Errorf("status line %d: want %q in\n%s", i+1, want, out)
		}
	}
	m.must("delete", "3")
	m.must("delete", "deny", "in", "on", "eth0", "23/tcp", "comment", "no telnet")
	if r := m.rules(); strings.Contains(r, "http") || strings.Contains(r, "telnet") || !strings.Contains(r, "5432") {
		t.Errorf("rules after deletes:\n%s", r)
	}
	if _, code := m.run("delete", "9"); code != ExitUsage {
		t.Errorf("delete of a missing rule: exit %d, want %d", code, ExitUsage)
	}
}

// TestBadEditChangesNothing: a rule that does not validate is refused with
// the config exit code, and the managed file is left as it was.
func TestBadEditChangesNothing(t *testing.T) {
	m := newMoat(t)
	m.must("init")
	before := m.rules()
	for _, args := range [][]string{
		{"allow", "from", "no-such-network", "to", "any", "port", "22"},
		{"allow", "no-such-app"},
		{"allow", "70000/tcp"},
		{"allow", "from", "1.2.3.4/24"},
	} {
		out, code := m.run(args...)
		if code == 0 {
			t.Errorf("%v accepted:\n%s", args, out)
		}
		if m.rules() != before {
			t.Errorf("%v changed the rules file", args)
		}
	}
	if _, code := m.run("allow", "from"); code != ExitUsage {
		t.Errorf("incomplete rule: exit %d, want usage", code)
	}
}

func TestDefaultKeepsHandWriting(t *testing.T) {
	m := newMoat(t)
	m.must("init")
	m.must("default", "reject", "incoming")
	m.must("default", "allow", "routed")
	data, _ := os.ReadFile(filepath.Join(m.dir, "etc", "moat.toml"))
	s := string(data)
	if !strings.Contains(s, `incoming = "reject"    # allow, deny or reject`) || !strings.Contains(s, `routed = "allow"      # forwarded traffic`) {
		t.Errorf("moat.toml lost its comments or the value:\n%s", s)
	}
	if !strings.Contains(s, "# moat policy. Hand-written") {
		t.Error("header comment lost")
	}
	if _, code := m.run("default", "limit", "incoming"); code != ExitUsage {
		t.Errorf("default limit: exit %d, want usage", code)
	}
}

func TestCheckAndShow(t *testing.T) {
	m := newMoat(t)
	m.must("init")
	m.must("allow", "postgresql")
	out := m.must("check")
	if !strings.Contains(out, "database-exposed") {
		t.Errorf("check does not warn about PostgreSQL open to the world:\n%s", out)
	}
	show := m.must("show")
	if !strings.HasPrefix(show, "table inet moat {}\ndelete table inet moat\n") || !strings.Contains(show, "tcp dport 5432") {
		t.Errorf("show:\n%s", show)
	}
	os.WriteFile(filepath.Join(m.dir, "etc", "moat.toml"), []byte("[defaults]\nincomin = \"deny\"\n"), 0o644)
	out, code := m.run("check")
	if code != ExitConfig || !strings.Contains(out, "moat.toml:2:1: defaults.incomin: unknown key") {
		t.Errorf("check of a broken policy: exit %d\n%s", code, out)
	}
}

func TestApp(t *testing.T) {
	m := newMoat(t)
	if out := m.must("app", "list"); !strings.Contains(out, "postgresql") {
		t.Errorf("app list:\n%s", out)
	}
	if out := m.must("app", "info", "dns"); !strings.Contains(out, "53") {
		t.Errorf("app info dns:\n%s", out)
	}
	if _, code := m.run("app", "info", "nope"); code == 0 {
		t.Error("app info of an unknown profile succeeded")
	}
}

func TestInstallUnit(t *testing.T) {
	m := newMoat(t)
	dir := t.TempDir()
	m.must("install", "--unit-dir", dir, "--no-enable")
	for unit, wants := range map[string][]string{
		"moat-firewall.service": {"Before=network-pre.target", "Type=oneshot", " boot\n", "WantedBy=sysinit.target", "DefaultDependencies=no"},
		"moat.service":          {"Type=notify", "WatchdogSec=", " run\n", "ExecReload=/bin/kill -HUP $MAINPID", "After=moat-firewall.service"},
	} {
		data, err := os.ReadFile(filepath.Join(dir, unit))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range wants {
			if !strings.Contains(string(data), want) {
				t.Errorf("%s lacks %q:\n%s", unit, want, data)
			}
		}
	}
}

// TestCheckRefusesGreedyFilter: a custom filter whose pattern could take the
// address from attacker-controlled text is refused at load, with its place.
func TestCheckRefusesGreedyFilter(t *testing.T) {
	m := newMoat(t)
	m.must("init")
	f, err := os.OpenFile(filepath.Join(m.dir, "etc", "moat.toml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n[filter.myapp]\nfailregex = ['^myapp: login failed .* from <HOST>']\n\n[jail.myapp]\nlogpath = [\"/var/log/myapp.log\"]\n")
	f.Close()
	out, code := m.run("check")
	if code != ExitConfig || !strings.Contains(out, "filter.myapp.failregex") || !strings.Contains(out, "moat.toml:") {
		t.Errorf("greedy custom filter: exit %d\n%s", code, out)
	}
}

func TestCheckWarnsScanBlind(t *testing.T) {
	m := newMoat(t)
	m.must("init")
	m.must("allow", "http")
	path := filepath.Join(m.dir, "etc", "moat.toml")
	data, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(data), `nflog_group = 100`, `nflog_group = 0`, 1)), 0o644)
	if out := m.must("check"); !strings.Contains(out, "scan-blind") {
		t.Errorf("check with no NFLOG group:\n%s", out)
	}
}
