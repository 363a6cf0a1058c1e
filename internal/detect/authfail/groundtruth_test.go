package authfail

import (
	"bufio"
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/moat-sec/moat/internal/detect/authfail/authlog"
	"github.com/moat-sec/moat/internal/event"
)

// genLog generates a synthetic auth.log in memory.
func genLog(t testing.TB, lines int, seed uint64) ([]string, authlog.Truth) {
	t.Helper()
	var buf bytes.Buffer
	tr, err := authlog.Generate(&buf, authlog.Config{Seed: seed, Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, lines)
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out, tr
}

var (
	benchLogOnce sync.Once
	benchLog     []string
	benchTruth   authlog.Truth
)

// observations turns log lines into file observations, reading each line's
// own (year-less) timestamp.
func observations(t testing.TB, lines []string, now time.Time) []event.Observation {
	t.Helper()
	obs := make([]event.Observation, len(lines))
	for i, l := range lines {
		ts, ok := ParseSyslogTime(l, now)
		if !ok {
			t.Fatalf("line %d: no timestamp: %q", i+1, l)
		}
		obs[i] = event.Observation{Source: "file:/var/log/auth.log", Time: ts, Line: l}
	}
	return obs
}

// TestGroundTruth runs a generated log through a jail with the sshd filter
// and compares the findings with the generator's truth: every attacker
// found, nobody else (no injection victim, no legitimate user, no slow
// guesser, no IPv6 neighbour of a /64 walker).
func TestGroundTruth(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		lines, tr := genLog(t, 50000, seed)
		if len(tr.Ban) == 0 || len(tr.Never) == 0 {
			t.Fatalf("seed %d: degenerate truth: %d to ban, %d never", seed, len(tr.Ban), len(tr.Never))
		}
		j, err := NewJail(JailConfig{Name: "sshd", Filter: "sshd", MaxRetry: tr.MaxRetry, FindTime: 10 * time.Minute, IPv6Prefix: tr.IPv6Prefix}, nil)
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]bool{}
		for _, o := range observations(t, lines, tr.End) {
			if f := j.Observe(o); f != nil {
				found[keyFor(f.Addr, tr.IPv6Prefix).String()] = true
				if !f.Verified || f.Detector != "jail" || f.Jail != "sshd" || len(f.Evidence) != tr.MaxRetry {
					t.Errorf("seed %d: malformed finding %+v", seed, f)
				}
				if last := f.Evidence[len(f.Evidence)-1]; !strings.Contains(last, f.Addr.String()) {
					t.Errorf("seed %d: last evidence %q does not name %s", seed, last, f.Addr)
				}
			}
		}
		var got []string
		for k := range found {
			got = append(got, k)
		}
		slices.Sort(got)
		if diff := cmp.Diff(tr.Ban, got); diff != "" {
			t.Errorf("seed %d: findings differ from the truth (-want +got):\n%s", seed, diff)
		}
		for _, n := range tr.Never {
			if found[n] {
				t.Errorf("seed %d: %s must never be found", seed, n)
			}
		}
		victim := netip.MustParsePrefix("192.0.2.66/32").String()
		if !slices.Contains(tr.Never, victim) {
			t.Errorf("seed %d: the truth lost the injection victim", seed)
		}
		st := j.Stats()
		t.Logf("seed %d: %d lines, %d matches, %d failures, %d findings (%d sources), %d tracked, %d conns",
			seed, st.Lines, st.Matches, st.Failures, st.Findings, len(found), st.Tracked, st.Conns)
	}
}
