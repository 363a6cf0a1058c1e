package config

import (
	"bufio"
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/policy"
)

// TestInvalid loads every fixture under testdata/invalid: each must fail
// with the error its "# wantErr:" line states (a prefix of the message,
// file named by base name).
func TestInvalid(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.toml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want := wantErr(t, f)
			ld, err := Load(f)
			if err == nil {
				t.Fatalf("loaded; want error %q (%d rules)", want, len(ld.Policy.Rules))
			}
			var ce Errors
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not config.Errors: %v", err, err)
			}
			got := strings.ReplaceAll(err.Error(), "testdata/invalid/", "")
			if !strings.HasPrefix(got, want) {
				t.Errorf("error:\n  %s\nwant prefix:\n  %s", got, want)
			}
		})
	}
}

func wantErr(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if w, ok := strings.CutPrefix(sc.Text(), "# wantErr: "); ok {
			return w
		}
	}
	t.Fatalf("%s has no # wantErr: line", path)
	return ""
}

func TestValidFull(t *testing.T) {
	ld, err := Load("testdata/valid/full.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := ld.Policy
	if p.Incoming != policy.Reject || p.Outgoing != policy.Deny || p.Routed != policy.Allow {
		t.Errorf("defaults: %v %v %v", p.Incoming, p.Outgoing, p.Routed)
	}
	if got := p.Networks["admins"]; len(got) != 3 || got[2] != netip.MustParsePrefix("198.51.100.7/32") {
		t.Errorf("admins = %v; want the mapped address unmapped to IPv4", got)
	}
	if p.Guards.SYNFlood != (policy.Rate{Count: 20, Per: time.Second}) || !p.Guards.Loopback {
		t.Errorf("guards = %+v", p.Guards)
	}
	if p.Limit.Rate != (policy.Rate{Count: 10, Per: time.Minute}) || p.Limit.IPv6Bits != 56 {
		t.Errorf("limit = %+v", p.Limit)
	}
	if len(p.Rules) != 2 || p.Rules[0].ConnLimit != 4 || p.Rules[0].Origin.Line != 24 {
		t.Fatalf("rules = %+v", p.Rules)
	}
	if len(p.SSHPorts) != 2 {
		t.Errorf("ssh ports = %v", p.SSHPorts)
	}
}

// TestDefaultsWhenEmpty: an empty file is the documented default policy.
func TestDefaultsWhenEmpty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "moat.toml")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	ld, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	p := ld.Policy
	if p.Table != "moat" || p.Incoming != policy.Deny || p.Outgoing != policy.Allow || p.Routed != policy.Deny {
		t.Errorf("defaults: %+v", p)
	}
	g := p.Guards
	if !g.Loopback || !g.Established || !g.Invalid || !g.BadTCPFlags || !g.ICMP || !g.SYNFlood.IsZero() {
		t.Errorf("guards: %+v", g)
	}
	if p.Logging.Level != policy.LogLow || p.Logging.Group != 100 {
		t.Errorf("logging: %+v", p.Logging)
	}
	if p.Limit.Rate != (policy.Rate{Count: 6, Per: 30 * time.Second}) || p.Limit.IPv6Bits != 64 {
		t.Errorf("limit: %+v", p.Limit)
	}
}

// TestStarterAndManaged: the starter policy loads; managed rules follow the
// hand-written ones and their errors name the managed file.
func TestStarterAndManaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "moat.toml")
	starter := Starter + "\n[[rule]]\naction = \"allow\"\nport = \"80\"\nproto = \"tcp\"\n"
	if err := WriteFile(path, []byte(starter)); err != nil {
		t.Fatal(err)
	}
	specs := []policy.Spec{{Action: "limit", App: "ssh"}, {Action: "allow", Port: "443", Proto: "tcp"}}
	data, err := RenderRules(specs)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(filepath.Join(dir, "rules.toml"), data); err != nil {
		t.Fatal(err)
	}
	ld, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if ld.HandWritten != 1 || len(ld.Managed) != 2 || len(ld.Policy.Rules) != 3 {
		t.Fatalf("handwritten %d managed %d rules %d", ld.HandWritten, len(ld.Managed), len(ld.Policy.Rules))
	}
	if !ld.Policy.Rules[1].Origin.Managed || !strings.EqualFold(ld.Policy.Rules[1].App, "ssh") {
		t.Errorf("rule 2 = %+v", ld.Policy.Rules[1])
	}
	bad, _ := RenderRules([]policy.Spec{{Action: "allow", Port: "99999"}})
	if err := WriteFile(filepath.Join(dir, "rules.toml"), bad); err != nil {
		t.Fatal(err)
	}
	_, err = Load(path)
	if err == nil || !strings.Contains(err.Error(), "rules.toml:6:8: rule[1].port:") {
		t.Errorf("managed error = %v", err)
	}
}

// TestSetKey edits one value in place and keeps everything else.
func TestSetKey(t *testing.T) {
	for _, c := range []struct{ name, in, table, key, value, want string }{
		{"replace", "# c\n[defaults]\nincoming = \"deny\" # keep\noutgoing = \"allow\"\n", "defaults", "incoming", "allow",
			"# c\n[defaults]\nincoming = \"allow\" # keep\noutgoing = \"allow\"\n"},
		{"add to table", "[defaults]\noutgoing = \"allow\"\n[guards]\n", "defaults", "routed", "allow",
			"[defaults]\nrouted = \"allow\"\noutgoing = \"allow\"\n[guards]\n"},
		{"add table", "# only a comment", "defaults", "incoming", "reject",
			"# only a comment\n\n[defaults]\nincoming = \"reject\"\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := setKey([]byte(c.in), c.table, c.key, c.value)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

func TestRefusesWorldWritable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "moat.toml")
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o666)
	if _, err := Load(path); err == nil || !strings.Contains(err.Error(), "world-writable") {
		t.Errorf("err = %v", err)
	}
}

// FuzzDecode: no policy text crashes the loader; whatever loads is
// internally consistent, and every error has a position or a file.
func FuzzDecode(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*/*.toml")
	for _, s := range seeds {
		data, _ := os.ReadFile(s)
		f.Add(data)
	}
	f.Add([]byte(Starter))
	dir := f.TempDir()
	path := filepath.Join(dir, "moat.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		ld, err := load(path, data)
		if err != nil {
			var ce Errors
			if !errors.As(err, &ce) || len(ce) == 0 {
				t.Fatalf("error %T without positions: %v", err, err)
			}
			for _, e := range ce {
				if e.File == "" || e.Msg == "" {
					t.Fatalf("incomplete error %+v", e)
				}
			}
			return
		}
		if ld.Policy == nil || ld.Policy.Table == "" {
			t.Fatal("loaded without a policy")
		}
		for _, r := range ld.Policy.Rules {
			for _, p := range append(r.From.Prefixes, r.To.Prefixes...) {
				if !p.IsValid() || p.Masked() != p {
					t.Fatalf("invalid prefix %v", p)
				}
			}
		}
		_ = bytes.MinRead
	})
}

func TestJails(t *testing.T) {
	ld, err := Load("testdata/valid/jails.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(ld.Jails) != 1 {
		t.Fatalf("jails = %+v (a disabled jail is left out)", ld.Jails)
	}
	j := ld.Jails[0]
	if j.Name != "sshd" || j.Filter != "sshd" || j.MaxRetry != 3 || j.FindTime != 24*time.Hour || j.BanTime != time.Hour || j.Line != 13 {
		t.Errorf("jail = %+v", j)
	}
	b := ld.Bans
	if b.MaxBanTime != 28*24*time.Hour || b.AggregateV4 != (Aggregate{5, 24}) || len(b.Allowlist) != 2 || b.IPv6Prefix != 64 {
		t.Errorf("bans = %+v", b)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"10m": 10 * time.Minute, "1h30m": 90 * time.Minute, "7d": 7 * 24 * time.Hour, "1w": 7 * 24 * time.Hour, "1d12h": 36 * time.Hour, "1.5h": 90 * time.Minute} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "600", "10", "-1h", "1y", "h", "1e9d"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

// TestKnownKeys: the hints know every table and key, the newest included.
func TestKnownKeys(t *testing.T) {
	for table, keys := range map[string][]string{
		"":         {"firewall", "rule", "redirect", "honeypot", "jail", "filter", "networks"},
		"honeypot": {"udp_verify", "tcp_bytes", "listen"},
		"scan":     {"hold", "hold_window", "kernel_rate"},
		"redirect": {"port", "from", "to", "proto"},
		"rule":     {"action", "conn_limit", "comment"},
		"jail.*":   {"logpath", "journal"},
	} {
		for _, k := range keys {
			if !slices.Contains(knownKeys[table], k) {
				t.Errorf("table %q: no hint for %q (have %v)", table, k, knownKeys[table])
			}
		}
	}
	if got := suggest([]string{"honeypot", "udp_verfy"}); !strings.Contains(got, `did you mean "udp_verify"`) {
		t.Errorf("suggest: %s", got)
	}
}

func TestRPFilterKey(t *testing.T) {
	for in, want := range map[string]string{"": "", "off": "", "loose": "loose", "strict": "strict"} {
		ld, err := load("moat.toml", []byte("[guards]\nrp_filter = \""+in+"\"\n"))
		if err != nil || ld.Policy.Guards.RPFilter != want {
			t.Errorf("rp_filter %q: %v, %q; want %q", in, err, ld.Policy.Guards.RPFilter, want)
		}
	}
	if _, err := load("moat.toml", []byte("[guards]\nrp_filter = \"on\"\n")); err == nil || !strings.HasPrefix(err.Error(), "moat.toml:2:13: guards.rp_filter: \"on\": want off, loose or strict") {
		t.Errorf("error: %v", err)
	}
}
