package authfail

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moat-sec/moat/internal/event"
)

var t0 = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func failed(addr string, pid int) string {
	return fmt.Sprintf("Mar 10 12:00:00 host sshd[%d]: Failed password for root from %s port 22 ssh2", pid, addr)
}

func obs(line string, at time.Time) event.Observation {
	return event.Observation{Source: "file:/var/log/auth.log", Time: at, Line: line}
}

func newJail(t *testing.T, cfg JailConfig) *Jail {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "sshd"
	}
	if cfg.Filter == "" {
		cfg.Filter = "sshd"
	}
	j, err := NewJail(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func TestJailWindow(t *testing.T) {
	j := newJail(t, JailConfig{MaxRetry: 3, FindTime: time.Minute})
	a := "198.51.100.7"
	// two failures, then one after the window: no finding
	for i, d := range []time.Duration{0, 10 * time.Second, 70 * time.Second} {
		if f := j.Observe(obs(failed(a, i), t0.Add(d))); f != nil {
			t.Fatalf("finding too early at %s: %+v", d, f)
		}
	}
	// two more within the window of the third: a finding on the fifth line
	if f := j.Observe(obs(failed(a, 10), t0.Add(80*time.Second))); f != nil {
		t.Fatal("finding at two failures in the window")
	}
	f := j.Observe(obs(failed(a, 11), t0.Add(90*time.Second)))
	if f == nil {
		t.Fatal("no finding at three failures in the window")
	}
	want := &event.Finding{
		Time:     t0.Add(90 * time.Second),
		Addr:     netip.MustParseAddr(a),
		Detector: "jail",
		Jail:     "sshd",
		Reason:   "3 failures in 1m0s",
		Evidence: []string{failed(a, 2), failed(a, 10), failed(a, 11)},
		Verified: true,
	}
	if diff := cmp.Diff(want, f, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); diff != "" {
		t.Errorf("finding (-want +got):\n%s", diff)
	}
	// the count starts again
	if f := j.Observe(obs(failed(a, 12), t0.Add(91*time.Second))); f != nil {
		t.Fatal("finding right after a reset")
	}
	st := j.Stats()
	if st.Lines != 6 || st.Matches != 6 || st.Failures != 6 || st.Findings != 1 || st.Tracked != 1 || st.Untrusted != 6 {
		t.Errorf("stats %+v", st)
	}
}

// R15: an attacker walking a /64 is one attacker; the next /64 is not.
func TestJailIPv6Prefix(t *testing.T) {
	j := newJail(t, JailConfig{})
	for i := range 4 {
		if f := j.Observe(obs(failed(fmt.Sprintf("2001:db8:1:2:%x::1", i+1), i), t0.Add(time.Duration(i)*time.Second))); f != nil {
			t.Fatal("finding too early")
		}
	}
	if f := j.Observe(obs(failed("2001:db8:1:3::1", 9), t0.Add(5*time.Second))); f != nil {
		t.Fatal("a neighbouring /64 counted with the walker")
	}
	f := j.Observe(obs(failed("2001:db8:1:2:ffff::9", 10), t0.Add(6*time.Second)))
	if f == nil || f.Addr != netip.MustParseAddr("2001:db8:1:2:ffff::9") {
		t.Fatalf("walker not found: %+v", f)
	}
	// with /128, every address is alone
	j = newJail(t, JailConfig{IPv6Prefix: 128})
	for i := range 10 {
		if f := j.Observe(obs(failed(fmt.Sprintf("2001:db8:1:2:%x::1", i+1), i), t0)); f != nil {
			t.Fatal("/128 grouped addresses")
		}
	}
	// IPv4-mapped addresses count as IPv4
	j = newJail(t, JailConfig{MaxRetry: 2})
	j.Observe(obs(failed("::ffff:198.51.100.7", 1), t0))
	if f := j.Observe(obs(failed("198.51.100.7", 2), t0)); f == nil {
		t.Error("::ffff:198.51.100.7 and 198.51.100.7 are not one source")
	}
}

// R11: the LRU bounds what is tracked, and window expiry drops stale
// sources.
func TestJailBounded(t *testing.T) {
	j := newJail(t, JailConfig{MaxTracked: 100, FindTime: time.Minute})
	for i := range 1000 {
		j.Observe(obs(failed(fmt.Sprintf("198.18.%d.%d", i/256, i%256), i), t0))
	}
	st := j.Stats()
	if st.Tracked != 100 || st.Evicted+st.NotAdmitted != 900 || st.NotAdmitted < 850 {
		t.Errorf("tracked %d, evicted %d, not admitted %d", st.Tracked, st.Evicted, st.NotAdmitted)
	}
	// long after, quiet sources go as new lines arrive
	for i := range 60 {
		j.Observe(obs("Mar 10 13:00:00 host CRON[1]: noise", t0.Add(time.Hour+time.Duration(i)*time.Second)))
	}
	if st := j.Stats(); st.Tracked > 0 {
		t.Errorf("%d stale sources kept", st.Tracked)
	}
}

// SECURITY.md A7: journald's trusted fields refuse lines a local user
// forged with logger.
func TestJailTrustedFields(t *testing.T) {
	j := newJail(t, JailConfig{MaxRetry: 2, RequireUnits: []string{"ssh.service", "sshd.service"}})
	forged := []event.Observation{
		{Trusted: true, Unit: "ssh.service", Comm: "logger", UID: 0},
		{Trusted: true, Unit: "user@1000.service", Comm: "sshd", UID: 0},
		{Trusted: true, Unit: "ssh.service", Comm: "python3", UID: 0},
		{Trusted: true, Unit: "ssh.service", Comm: "sshd", UID: 1000},
		{Trusted: true, Unit: "ssh.service", Comm: "systemd-cat", UID: 0},
	}
	for i, o := range forged {
		for k := range 3 {
			o.Source, o.Time, o.Line = "journal:ssh.service", t0, failed("203.0.113.10", 100*i+k)
			if f := j.Observe(o); f != nil {
				t.Fatalf("forged line %+v made a finding", o)
			}
		}
	}
	if st := j.Stats(); st.Refused != 15 || st.Failures != 0 {
		t.Errorf("stats %+v", st)
	}
	var f *event.Finding
	for k := range 2 {
		f = j.Observe(event.Observation{Source: "journal:ssh.service", Time: t0, Line: failed("198.51.100.7", 900+k),
			Trusted: true, Unit: "ssh.service", Comm: "sshd-session", UID: 0})
	}
	if f == nil {
		t.Error("the daemon's own lines were refused")
	}
	// files are accepted, and counted as untrusted
	j = newJail(t, JailConfig{MaxRetry: 1, RequireUnits: []string{"ssh.service"}})
	if f := j.Observe(obs(failed("198.51.100.7", 1), t0)); f == nil {
		t.Error("a file line was refused")
	}
	if st := j.Stats(); st.Untrusted != 1 {
		t.Errorf("untrusted %d", st.Untrusted)
	}
}

func TestJailSources(t *testing.T) {
	j := newJail(t, JailConfig{MaxRetry: 1, Sources: []string{"journal:ssh.service"}})
	if f := j.Observe(obs(failed("198.51.100.7", 1), t0)); f != nil {
		t.Error("a line from another source was read")
	}
	if st := j.Stats(); st.OtherSource != 1 || st.Lines != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestJailEvidenceCut(t *testing.T) {
	j := newJail(t, JailConfig{MaxRetry: 1})
	user := strings.Repeat("é", 400)
	f := j.Observe(obs("Mar 10 12:00:00 host sshd[1]: Failed password for invalid user "+user+" from 198.51.100.7 port 22 ssh2", t0))
	if f == nil {
		t.Fatal("no finding")
	}
	if e := f.Evidence[0]; len(e) > EvidenceLineLen || len(e) < EvidenceLineLen-1 || !strings.HasSuffix(e, "é") {
		t.Errorf("evidence cut to %d bytes, ending %q", len(e), e[len(e)-4:])
	}
}

func TestJailMultiLine(t *testing.T) {
	// "Disconnecting: Too many authentication failures" has no address;
	// the connection's earlier line gives it.
	j := newJail(t, JailConfig{MaxRetry: 1})
	if f := j.Observe(obs("Mar 10 12:00:00 host sshd[5]: Connection from 198.51.100.7 port 51353 on 192.0.2.1 port 22", t0)); f != nil {
		t.Fatal("a connection is not a failure")
	}
	f := j.Observe(obs("Mar 10 12:00:01 host sshd[5]: Disconnecting: Too many authentication failures [preauth]", t0.Add(time.Second)))
	if f == nil || f.Addr.String() != "198.51.100.7" {
		t.Fatalf("got %+v", f)
	}
	// a pid reused much later does not inherit a pending failure
	j = newJail(t, JailConfig{MaxRetry: 1})
	j.Observe(obs("Mar 10 12:00:00 host sshd[6]: Disconnecting: Too many authentication failures [preauth]", t0))
	if f := j.Observe(obs("Mar 10 13:00:00 host sshd[6]: Connection closed by 203.0.113.10 port 5 [preauth]", t0.Add(time.Hour))); f != nil {
		t.Errorf("stale pending failure attributed to %s", f.Addr)
	}
	// A17: PAM and sshd log one attempt twice; it counts once
	j = newJail(t, JailConfig{MaxRetry: 2})
	if f := j.Observe(obs("Mar 10 12:00:00 host sshd[7]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7  user=root", t0)); f != nil {
		t.Fatal("a PAM line alone is a failure")
	}
	if f := j.Observe(obs(failed("198.51.100.7", 7), t0)); f != nil {
		t.Fatal("one attempt counted twice")
	}
}

func TestNewJailErrors(t *testing.T) {
	sshd := mustBuiltin(t, "sshd", "")
	for _, tc := range []struct {
		cfg JailConfig
		f   *Filter
		msg string
	}{
		{JailConfig{Filter: "sshd"}, nil, "no name"},
		{JailConfig{Name: "x"}, nil, "no filter"},
		{JailConfig{Name: "x", Filter: "nope"}, nil, "no builtin filter"},
		{JailConfig{Name: "x", Filter: "postfix"}, sshd, "given"},
		{JailConfig{Name: "x", MaxRetry: -1}, sshd, "maxretry"},
		{JailConfig{Name: "x", FindTime: -1}, sshd, "findtime"},
		{JailConfig{Name: "x", BanTime: -1}, sshd, "bantime"},
		{JailConfig{Name: "x", IPv6Prefix: 129}, sshd, "prefix"},
		{JailConfig{Name: "x", MaxTracked: -1}, sshd, "maxtracked"},
	} {
		if _, err := NewJail(tc.cfg, tc.f); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.msg)
		}
	}
	j, err := NewJail(JailConfig{Name: "x"}, sshd)
	if err != nil {
		t.Fatal(err)
	}
	c := j.Config()
	if c.MaxRetry != 5 || c.FindTime != 10*time.Minute || c.BanTime != 10*time.Minute || c.IPv6Prefix != 64 || c.MaxTracked != 100000 {
		t.Errorf("defaults %+v", c)
	}
}

// A6: a huge line is refused quickly and does not disturb the next one.
func TestJailHugeLines(t *testing.T) {
	j := newJail(t, JailConfig{MaxRetry: 1})
	huge := "Mar 10 12:00:00 host sshd[1]: Invalid user " + strings.Repeat("A ", 1<<19) + "from 198.51.100.7 port 1"
	start := time.Now()
	for range 10 {
		if f := j.Observe(obs(huge, t0)); f != nil {
			t.Fatal("a 1 MiB line made a finding")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("10 huge lines took %s", d)
	}
	if f := j.Observe(obs(failed("198.51.100.7", 2), t0)); f == nil {
		t.Error("a normal line after huge ones was lost")
	}
}

func TestRecidive(t *testing.T) {
	f := mustBuiltin(t, "recidive", "")
	line := "Mar 10 12:00:00 host moat[812]: " + RecidiveLine("2001:db8:1:2::/64", "sshd", "jail", 2, "10m0s", `5 failures in "10m"`)
	checkLines(t, f, []lineCase{
		{"moat", line, "2001:db8:1:2::"},
		{"moat v4", "Mar 10 12:00:00 host moat[812]: " + RecidiveLine("198.51.100.7/32", "sshd", "jail", 1, "10m0s", "x jail=recidive"), "198.51.100.7"},
		{"own bans", "Mar 10 12:00:00 host moat[812]: " + RecidiveLine("198.51.100.7/32", "recidive", "jail", 1, "1w", "x"), ""},
		{"forged tag", "Mar 10 12:00:00 host sshd[1]: " + RecidiveLine("198.51.100.7/32", "sshd", "jail", 1, "1w", "x"), ""},
		{"unban", "Mar 10 12:00:00 host moat[812]: unban 198.51.100.7/32 jail=sshd", ""},
	})
}

// TestJailFlood: a flood of one-off sources fills the table, and a slow
// attacker failing once per 10,000 flood lines is still banned at its
// maxretry-th failure (plain LRU would evict its count every time).
func TestJailFlood(t *testing.T) {
	j := newJail(t, JailConfig{MaxTracked: 5000, FindTime: 10 * time.Minute, MaxRetry: 5})
	attacker := "192.0.2.77"
	var found *event.Finding
	failures := 0
	at := t0
	for i := 0; i < 200000 && found == nil; i++ {
		at = at.Add(10 * time.Microsecond)
		if i%10000 == 9999 {
			failures++
			found = j.Observe(obs(failed(attacker, 1), at))
			continue
		}
		if f := j.Observe(obs(failed(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), i), at)); f != nil {
			t.Fatalf("a one-off source was banned: %v", f.Addr)
		}
	}
	if found == nil || found.Addr.String() != attacker {
		t.Fatalf("the slow attacker was not banned (finding %v) after %d failures; stats %+v", found, failures, j.Stats())
	}
	if failures != 5 {
		t.Errorf("banned after %d failures, want maxretry (5)", failures)
	}
	if st := j.Stats(); st.Tracked > 5000 {
		t.Errorf("tracked %d > bound", st.Tracked)
	}
}
