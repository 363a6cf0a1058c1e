package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/moat-sec/moat/internal/event"
)

// brief is the part of a Ban the table tests compare.
type brief struct {
	Prefix   string
	Jail     string
	Created  time.Time
	Expires  time.Time
	Offence  int
	Unbanned time.Time
}

func briefs(bs []Ban) []brief {
	var out []brief
	for _, b := range bs {
		out = append(out, brief{b.Prefix.String(), b.Jail, b.Created.UTC(), utc(b.Expires), b.Offence, utc(b.Unbanned)})
	}
	return out
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func TestBans(t *testing.T) {
	m := func(d time.Duration) time.Time { return t0.Add(d) }
	withOffence := func(d event.Decision, n int) event.Decision { d.Offence = n; return d }

	type step struct {
		at        time.Time
		add       []event.Decision
		remove    string // RemoveBan
		removeAll bool
		purge     bool
		want      int // result of remove (1 = true), removeAll or purge
	}
	tests := []struct {
		name        string
		steps       []step
		at          time.Time // ActiveBans(at)
		want        []brief
		historyOf   string
		wantHistory []brief
	}{
		{
			name:  "add",
			steps: []step{{at: t0, add: []event.Decision{ban("192.0.2.1", t0, 10*time.Minute, "sshd")}}},
			at:    m(time.Minute),
			want:  []brief{{"192.0.2.1/32", "sshd", t0, m(10 * time.Minute), 1, time.Time{}}},
		},
		{
			name: "extend with a later expiry",
			steps: []step{
				{at: t0, add: []event.Decision{ban("192.0.2.1", t0, 10*time.Minute, "sshd")}},
				{at: m(5 * time.Minute), add: []event.Decision{withOffence(ban("192.0.2.1", m(5*time.Minute), time.Hour, "recidive"), 2)}},
			},
			at:        m(30 * time.Minute),
			want:      []brief{{"192.0.2.1/32", "recidive", t0, m(65 * time.Minute), 2, time.Time{}}},
			historyOf: "192.0.2.1",
			wantHistory: []brief{
				{"192.0.2.1/32", "recidive", m(5 * time.Minute), m(65 * time.Minute), 2, time.Time{}},
				{"192.0.2.1/32", "sshd", t0, m(10 * time.Minute), 1, time.Time{}},
			},
		},
		{
			name: "never shorten",
			steps: []step{
				{at: t0, add: []event.Decision{withOffence(ban("192.0.2.1", t0, time.Hour, "recidive"), 3)}},
				{at: m(time.Minute), add: []event.Decision{withOffence(ban("192.0.2.1", m(time.Minute), 10*time.Minute, "sshd"), 1)}},
			},
			at:   m(30 * time.Minute),
			want: []brief{{"192.0.2.1/32", "recidive", t0, m(time.Hour), 3, time.Time{}}},
		},
		{
			name: "never shorten within one batch",
			steps: []step{{at: t0, add: []event.Decision{
				ban("192.0.2.1", t0, time.Hour, "recidive"),
				ban("192.0.2.1", t0, time.Minute, "sshd"),
			}}},
			at:   m(30 * time.Minute),
			want: []brief{{"192.0.2.1/32", "recidive", t0, m(time.Hour), 1, time.Time{}}},
		},
		{
			name: "permanent beats a later timed ban",
			steps: []step{
				{at: t0, add: []event.Decision{ban("2001:db8::/64", t0, 0, "manual")}},
				{at: m(time.Minute), add: []event.Decision{ban("2001:db8::/64", m(time.Minute), 24*time.Hour, "sshd")}},
			},
			at:   m(1000 * time.Hour),
			want: []brief{{"2001:db8::/64", "manual", t0, time.Time{}, 1, time.Time{}}},
		},
		{
			name: "permanent replaces a timed ban",
			steps: []step{
				{at: t0, add: []event.Decision{ban("192.0.2.1", t0, time.Hour, "sshd")}},
				{at: m(time.Minute), add: []event.Decision{ban("192.0.2.1", m(time.Minute), 0, "manual")}},
			},
			at:   m(1000 * time.Hour),
			want: []brief{{"192.0.2.1/32", "manual", t0, time.Time{}, 1, time.Time{}}},
		},
		{
			name: "an expired row not yet purged is replaced",
			steps: []step{
				{at: t0, add: []event.Decision{withOffence(ban("192.0.2.1", t0, 10*time.Minute, "recidive"), 5)}},
				{at: m(20 * time.Minute), add: []event.Decision{ban("192.0.2.1", m(20*time.Minute), 10*time.Minute, "sshd")}},
			},
			at:   m(25 * time.Minute),
			want: []brief{{"192.0.2.1/32", "sshd", m(20 * time.Minute), m(30 * time.Minute), 1, time.Time{}}},
		},
		{
			name: "prefixes are canonical",
			steps: []step{
				{at: t0, add: []event.Decision{ban("198.51.100.77/24", t0, time.Hour, "sshd")}},
				{at: t0, add: []event.Decision{ban("198.51.100.9/24", t0, 2*time.Hour, "sshd")}},
			},
			at:   m(time.Minute),
			want: []brief{{"198.51.100.0/24", "sshd", t0, m(2 * time.Hour), 1, time.Time{}}},
		},
		{
			name: "ordered by created and expired ones hidden",
			steps: []step{{at: t0, add: []event.Decision{
				ban("192.0.2.3", m(2*time.Minute), time.Hour, "c"),
				ban("192.0.2.1", t0, time.Hour, "a"),
				ban("192.0.2.9", t0, time.Minute, "gone"),
				ban("192.0.2.2", m(time.Minute), time.Hour, "b"),
			}}},
			at: m(10 * time.Minute),
			want: []brief{
				{"192.0.2.1/32", "a", t0, m(time.Hour), 1, time.Time{}},
				{"192.0.2.2/32", "b", m(time.Minute), m(61 * time.Minute), 1, time.Time{}},
				{"192.0.2.3/32", "c", m(2 * time.Minute), m(62 * time.Minute), 1, time.Time{}},
			},
		},
		{
			name: "manual unban keeps history",
			steps: []step{
				{at: t0, add: []event.Decision{ban("192.0.2.1", t0, time.Hour, "sshd"), ban("192.0.2.2", t0, time.Hour, "sshd")}},
				{at: m(5 * time.Minute), remove: "192.0.2.1", want: 1},
				{at: m(6 * time.Minute), remove: "192.0.2.1", want: 0},
				{at: m(6 * time.Minute), remove: "203.0.113.0/24", want: 0},
			},
			at:          m(7 * time.Minute),
			want:        []brief{{"192.0.2.2/32", "sshd", t0, m(time.Hour), 1, time.Time{}}},
			historyOf:   "192.0.2.1",
			wantHistory: []brief{{"192.0.2.1/32", "sshd", t0, m(time.Hour), 1, m(5 * time.Minute)}},
		},
		{
			name: "unban decision in a batch",
			steps: []step{
				{at: t0, add: []event.Decision{ban("192.0.2.1", t0, time.Hour, "sshd")}},
				{at: m(time.Minute), add: []event.Decision{
					{Op: event.Unban, Prefix: pfx("192.0.2.1"), Time: m(2 * time.Minute)},
					ban("192.0.2.5", m(2*time.Minute), time.Hour, "sshd"),
				}},
			},
			at:          m(3 * time.Minute),
			want:        []brief{{"192.0.2.5/32", "sshd", m(2 * time.Minute), m(62 * time.Minute), 1, time.Time{}}},
			historyOf:   "192.0.2.1",
			wantHistory: []brief{{"192.0.2.1/32", "sshd", t0, m(time.Hour), 1, m(2 * time.Minute)}},
		},
		{
			name: "remove all",
			steps: []step{
				{at: t0, add: []event.Decision{ban("192.0.2.1", t0, time.Hour, "a"), ban("192.0.2.2", t0, 0, "b"), ban("192.0.2.3", t0, time.Minute, "c")}},
				{at: m(10 * time.Minute), removeAll: true, want: 2},
			},
			at:          m(11 * time.Minute),
			want:        nil,
			historyOf:   "192.0.2.3",
			wantHistory: []brief{{"192.0.2.3/32", "c", t0, m(time.Minute), 1, time.Time{}}}, // had expired: not unbanned by hand
		},
		{
			name: "purge expired",
			steps: []step{
				{at: t0, add: []event.Decision{ban("192.0.2.1", t0, time.Hour, "a"), ban("192.0.2.2", t0, time.Minute, "b"), ban("192.0.2.3", t0, 0, "c")}},
				{at: m(2 * time.Minute), purge: true, want: 1},
				{at: m(3 * time.Minute), purge: true, want: 0},
			},
			at: m(3 * time.Minute),
			want: []brief{
				{"192.0.2.1/32", "a", t0, m(time.Hour), 1, time.Time{}},
				{"192.0.2.3/32", "c", t0, time.Time{}, 1, time.Time{}},
			},
			historyOf:   "192.0.2.2",
			wantHistory: []brief{{"192.0.2.2/32", "b", t0, m(time.Minute), 1, time.Time{}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClock(t0)
			s := openTest(t, c)
			for i, st := range tt.steps {
				c.Set(st.at)
				switch {
				case st.add != nil:
					if err := s.AddBans(st.add); err != nil {
						t.Fatalf("step %d: AddBans: %v", i, err)
					}
				case st.remove != "":
					ok, err := s.RemoveBan(pfx(st.remove))
					if err != nil || ok != (st.want == 1) {
						t.Fatalf("step %d: RemoveBan = %v, %v; want %v", i, ok, err, st.want == 1)
					}
				case st.removeAll:
					n, err := s.RemoveAll()
					if err != nil || n != st.want {
						t.Fatalf("step %d: RemoveAll = %d, %v; want %d", i, n, err, st.want)
					}
				case st.purge:
					n, err := s.PurgeExpired(st.at)
					if err != nil || n != st.want {
						t.Fatalf("step %d: PurgeExpired = %d, %v; want %d", i, n, err, st.want)
					}
				}
			}
			got, err := s.ActiveBans(tt.at)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, briefs(got)); diff != "" {
				t.Errorf("ActiveBans (-want +got):\n%s", diff)
			}
			if tt.historyOf != "" {
				h, err := s.History(pfx(tt.historyOf), 0)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.wantHistory, briefs(h)); diff != "" {
					t.Errorf("History (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestBanLookup(t *testing.T) {
	c := newClock(t0)
	s := openTest(t, c)
	d := ban("198.51.100.0/24", t0, time.Hour, "sshd")
	d.Reason, d.Detector = "5 failures in 10m0s", "jail"
	d.Evidence = []string{"Failed password for root from 198.51.100.7", "Failed password for root from 198.51.100.8"}
	if err := s.AddBan(d); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		at     time.Time
		prefix string
		ok     bool
	}{
		{"exact", t0, "198.51.100.0/24", true},
		{"host bits ignored", t0, "198.51.100.200/24", true},
		{"another length", t0, "198.51.100.7", false},
		{"expired", t0.Add(time.Hour), "198.51.100.0/24", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.Set(tt.at)
			b, ok, err := s.Ban(pfx(tt.prefix))
			if err != nil || ok != tt.ok {
				t.Fatalf("Ban(%s) = _, %v, %v; want %v", tt.prefix, ok, err, tt.ok)
			}
			if !ok {
				return
			}
			want := Ban{
				Prefix: pfx("198.51.100.0/24"), Jail: "sshd", Detector: "jail", Reason: d.Reason, Evidence: d.Evidence,
				Created: t0, Expires: t0.Add(time.Hour), Offence: 1,
			}
			if diff := cmp.Diff(want, b, cmpopts.EquateComparable(netip.Prefix{}), cmpopts.EquateApproxTime(0)); diff != "" {
				t.Errorf("Ban (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOffences(t *testing.T) {
	c := newClock(t0)
	s := openTest(t, c)
	h := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Hour) }
	// 192.0.2.1 banned at hours 0, 10, 20 (two jails); another address and a
	// covering prefix must not count.
	ds := []event.Decision{
		ban("192.0.2.1", h(0), time.Hour, "sshd"),
		ban("192.0.2.1", h(10), time.Hour, "postfix"),
		ban("192.0.2.1", h(20), time.Hour, "sshd"),
		ban("192.0.2.2", h(20), time.Hour, "sshd"),
		ban("192.0.2.0/24", h(20), time.Hour, "sshd"),
	}
	if err := s.AddBans(ds); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RemoveBan(pfx("192.0.2.1")); err != nil { // a lifted ban still counts
		t.Fatal(err)
	}
	tests := []struct {
		prefix string
		since  time.Time
		want   int
	}{
		{"192.0.2.1", h(-1), 3},
		{"192.0.2.1", h(0), 3}, // inclusive
		{"192.0.2.1", h(5), 2},
		{"192.0.2.1", h(15), 1},
		{"192.0.2.1", h(21), 0},
		{"192.0.2.2", h(0), 1},
		{"192.0.2.0/24", h(0), 1},
		{"2001:db8::1", h(0), 0},
	}
	for _, tt := range tests {
		n, err := s.Offences(pfx(tt.prefix), tt.since)
		if err != nil || n != tt.want {
			t.Errorf("Offences(%s, %v) = %d, %v; want %d", tt.prefix, tt.since, n, err, tt.want)
		}
	}
}

func TestHistory(t *testing.T) {
	c := newClock(t0)
	s := openTest(t, c)
	for i := range 5 {
		at := t0.Add(time.Duration(i) * time.Minute)
		if err := s.AddBans([]event.Decision{ban("192.0.2.1", at, time.Second, "sshd"), ban("192.0.2.2", at, time.Second, "web")}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		prefix string
		n      int
		want   []time.Time
	}{
		{"192.0.2.1", 3, []time.Time{t0.Add(4 * time.Minute), t0.Add(3 * time.Minute), t0.Add(2 * time.Minute)}},
		{"192.0.2.1", 0, []time.Time{t0.Add(4 * time.Minute), t0.Add(3 * time.Minute), t0.Add(2 * time.Minute), t0.Add(time.Minute), t0}},
		{"", 3, []time.Time{t0.Add(4 * time.Minute), t0.Add(4 * time.Minute), t0.Add(3 * time.Minute)}},
		{"203.0.113.1", 10, nil},
	}
	for _, tt := range tests {
		var p netip.Prefix
		if tt.prefix != "" {
			p = pfx(tt.prefix)
		}
		h, err := s.History(p, tt.n)
		if err != nil {
			t.Fatal(err)
		}
		var got []time.Time
		for _, b := range h {
			got = append(got, b.Created.UTC())
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("History(%q, %d) created (-want +got):\n%s", tt.prefix, tt.n, diff)
		}
	}
	if n, err := s.PruneHistory(t0.Add(2 * time.Minute)); err != nil || n != 4 {
		t.Errorf("PruneHistory = %d, %v; want 4", n, err)
	}
}

func TestEvidenceCapped(t *testing.T) {
	s := openTest(t, newClock(t0))
	long := strings.Repeat("é", 400)      // 800 bytes, two per rune
	odd := "x" + strings.Repeat("é", 400) // the 512th byte splits a rune
	ev := []string{long, "bad utf-8 \xff\xfe", strings.Repeat("x", 5000), odd}
	for i := range 30 {
		ev = append(ev, "line "+string(rune('a'+i)))
	}
	d := ban("192.0.2.1", t0, time.Hour, "sshd")
	d.Evidence = ev
	d.Reason = strings.Repeat("r", 10000)
	if err := s.AddBan(d); err != nil {
		t.Fatal(err)
	}
	b, ok, err := s.Ban(d.Prefix)
	if err != nil || !ok {
		t.Fatalf("Ban: %v %v", ok, err)
	}
	if len(b.Evidence) != MaxEvidenceLines {
		t.Errorf("kept %d evidence lines, want %d", len(b.Evidence), MaxEvidenceLines)
	}
	for i, l := range b.Evidence {
		if len(l) > MaxEvidenceLine || !utf8.ValidString(l) {
			t.Errorf("line %d: %d bytes, valid UTF-8 %v", i, len(l), utf8.ValidString(l))
		}
	}
	if b.Evidence[0] != strings.Repeat("é", 256) {
		t.Errorf("line 0 not cut on a rune boundary: %d bytes", len(b.Evidence[0]))
	}
	if want := "x" + strings.Repeat("é", 255); b.Evidence[3] != want {
		t.Errorf("line 3 = %d bytes ending %q, want a clean cut at 511 bytes", len(b.Evidence[3]), b.Evidence[3][len(b.Evidence[3])-4:])
	}
	if b.Evidence[1] != "bad utf-8 \uFFFD" {
		t.Errorf("line 1 = %q", b.Evidence[1])
	}
	if b.Evidence[19] != "line p" {
		t.Errorf("last line = %q, want the first lines kept", b.Evidence[19])
	}
	if len(b.Reason) != maxReason {
		t.Errorf("reason is %d bytes", len(b.Reason))
	}
}

func TestAddBansRejectsBadBatchWhole(t *testing.T) {
	s := openTest(t, newClock(t0))
	tests := []struct {
		name string
		bad  event.Decision
	}{
		{"invalid prefix", event.Decision{Op: event.Ban, Duration: time.Hour, Time: t0}},
		{"negative duration", event.Decision{Op: event.Ban, Prefix: pfx("192.0.2.9"), Duration: -time.Hour, Time: t0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.AddBans([]event.Decision{ban("192.0.2.1", t0, time.Hour, "sshd"), tt.bad})
			if err == nil || !strings.Contains(err.Error(), "decision 1") {
				t.Fatalf("AddBans = %v; want an error naming decision 1", err)
			}
			if got, _ := s.ActiveBans(t0); len(got) != 0 {
				t.Errorf("partial batch written: %v", got)
			}
		})
	}
}

func TestZeroTimesDefault(t *testing.T) {
	c := newClock(t0)
	s := openTest(t, c)
	// No Time, no Expires: created now, expires now+Duration.
	if err := s.AddBan(event.Decision{Op: event.Ban, Prefix: pfx("192.0.2.1"), Duration: time.Hour}); err != nil {
		t.Fatal(err)
	}
	b, ok, err := s.Ban(pfx("192.0.2.1"))
	if err != nil || !ok || !b.Created.Equal(t0) || !b.Expires.Equal(t0.Add(time.Hour)) || b.Permanent() {
		t.Errorf("Ban = %+v, %v, %v", b, ok, err)
	}
}

func TestWriteErrorsReturned(t *testing.T) {
	// A full disk and a read-only database must come back as errors the
	// daemon can classify, never a panic. The page limit stands in for a
	// full disk; query_only for a read-only file.
	tests := []struct {
		name   string
		pragma string
		want   error
	}{
		{"full", "PRAGMA max_page_count = 1", ErrFull},
		{"read-only", "PRAGMA query_only = 1", ErrReadOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openTest(t, newClock(t0))
			if _, err := s.w.Exec(tt.pragma); err != nil {
				t.Fatal(err)
			}
			var ds []event.Decision
			for i := range 2000 {
				ds = append(ds, ban(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}).String(), t0, time.Hour, strings.Repeat("j", 100)))
			}
			err := s.AddBans(ds)
			if !errors.Is(err, tt.want) {
				t.Fatalf("AddBans = %v; want %v", err, tt.want)
			}
			if err := s.SaveCursor("journal", strings.Repeat("c", 20000)); !errors.Is(err, tt.want) {
				t.Errorf("SaveCursor = %v; want %v", err, tt.want)
			}
			if got, err := s.ActiveBans(t0); err != nil || len(got) != 0 {
				t.Errorf("ActiveBans after failed write = %d, %v", len(got), err)
			}
		})
	}
}

// TestBatchMatchesOneByOne: a batch (multi-row statements, repeats of a
// prefix inside one statement, unbans in between) leaves the same state
// as the same decisions recorded one at a time.
func TestBatchMatchesOneByOne(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var ds []event.Decision
	at := t0
	for i := range 5 * chunkRows {
		at = at.Add(time.Duration(rng.IntN(90)) * time.Second)
		p := fmt.Sprintf("192.0.2.%d", rng.IntN(12))
		switch k := rng.IntN(20); {
		case k == 0:
			ds = append(ds, event.Decision{Op: event.Unban, Prefix: pfx(p), Time: at})
		case k == 1:
			ds = append(ds, withJail(ban(p, at, 0, "manual"), i))
		default:
			ds = append(ds, withJail(ban(p, at, time.Duration(1+rng.IntN(60))*time.Minute, "sshd"), i))
		}
	}
	c := newClock(at)
	batch, single := openTest(t, c), openTest(t, c)
	must(t, batch.AddBans(ds))
	for _, d := range ds {
		must(t, single.AddBan(d))
	}
	for _, when := range []time.Time{t0, at.Add(-time.Hour), at, at.Add(time.Hour)} {
		want, err := single.ActiveBans(when)
		must(t, err)
		got, err := batch.ActiveBans(when)
		must(t, err)
		if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
			t.Errorf("ActiveBans(%v): batch differs from one by one (-single +batch):\n%s", when, diff)
		}
	}
	want, err := single.History(netip.Prefix{}, 0)
	must(t, err)
	got, err := batch.History(netip.Prefix{}, 0)
	must(t, err)
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("History: batch differs from one by one (-single +batch):\n%s", diff)
	}
	if bans, _ := batch.ActiveBans(at); len(bans) == 0 {
		t.Error("no active bans: the test exercises nothing")
	}
}

func withJail(d event.Decision, i int) event.Decision {
	d.Jail = fmt.Sprintf("jail%d", i)
	d.Offence = i % 7
	return d
}
