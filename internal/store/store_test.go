package store

import (
	"errors"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/moat-sec/moat/internal/event"
)

func TestPositionsRoundTrip(t *testing.T) {
	s := openTest(t, newClock(t0))
	offsets := []struct {
		path string
		o    Offset
	}{
		{"/var/log/auth.log", Offset{Dev: 2049, Ino: 131, Pos: 4096, Size: 8192}},
		{"/var/log/nginx/access.log", Offset{Dev: math.MaxUint64, Ino: 1 << 63, Pos: math.MaxInt64, Size: 0}},
		{"/var/log/auth.log", Offset{Dev: 2049, Ino: 132, Pos: 0, Size: 10}}, // rotated: overwrites
		{"/path with ?#% and ünïcode", Offset{Dev: 1, Ino: 2, Pos: 3, Size: 4}},
	}
	for _, tt := range offsets {
		if err := s.SaveOffset(tt.path, tt.o); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.LoadOffset(tt.path)
		if err != nil || !ok || got != tt.o {
			t.Errorf("LoadOffset(%q) = %+v, %v, %v; want %+v", tt.path, got, ok, err, tt.o)
		}
	}
	if _, ok, err := s.LoadOffset("/nope"); ok || err != nil {
		t.Errorf("LoadOffset(missing) = %v, %v", ok, err)
	}

	cursors := []struct{ key, cursor string }{
		{"journal:ssh.service", "s=0123;i=4567;b=89ab;m=cdef;t=1;x=2"},
		{"journal:ssh.service", "s=0123;i=4568;b=89ab;m=cdef;t=2;x=3"},
		{"journal:", ""},
	}
	for _, tt := range cursors {
		if err := s.SaveCursor(tt.key, tt.cursor); err != nil {
			t.Fatal(err)
		}
		got, ok, err := s.LoadCursor(tt.key)
		if err != nil || !ok || got != tt.cursor {
			t.Errorf("LoadCursor(%q) = %q, %v, %v; want %q", tt.key, got, ok, err, tt.cursor)
		}
	}
	if _, ok, err := s.LoadCursor("journal:nope"); ok || err != nil {
		t.Errorf("LoadCursor(missing) = %v, %v", ok, err)
	}
}

func TestAllowlist(t *testing.T) {
	c := newClock(t0)
	s := openTest(t, c)
	steps := []struct {
		op      string // add, remove
		prefix  string
		comment string
		want    bool // remove result
	}{
		{"add", "192.0.2.7", "office", false},
		{"add", "2001:db8:1::5/48", "vpn", false}, // stored canonical
		{"add", "192.0.2.7", "office (new IP)", false},
		{"add", "198.51.100.0/24", "gone soon", false},
		{"remove", "198.51.100.99/24", "", true},
		{"remove", "198.51.100.0/24", "", false},
	}
	for _, st := range steps {
		c.Add(time.Second)
		switch st.op {
		case "add":
			if err := s.AllowlistAdd(pfx(st.prefix), st.comment); err != nil {
				t.Fatal(err)
			}
		case "remove":
			ok, err := s.AllowlistRemove(pfx(st.prefix))
			if err != nil || ok != st.want {
				t.Errorf("AllowlistRemove(%s) = %v, %v; want %v", st.prefix, ok, err, st.want)
			}
		}
	}
	got, err := s.Allowlist()
	if err != nil {
		t.Fatal(err)
	}
	want := []AllowEntry{
		{pfx("192.0.2.7"), "office (new IP)", t0.Add(time.Second)},
		{pfx("2001:db8:1::/48"), "vpn", t0.Add(2 * time.Second)},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateComparable(netip.Prefix{}), cmpopts.EquateApproxTime(0)); diff != "" {
		t.Errorf("Allowlist (-want +got):\n%s", diff)
	}
	if err := s.AllowlistAdd(netip.Prefix{}, ""); err == nil {
		t.Error("AllowlistAdd(invalid) succeeded")
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	c := newClock(t0)
	path := filepath.Join(t.TempDir(), "state", "moat.db")
	s, err := Open(Options{Path: path, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	d := ban("192.0.2.1", t0, time.Hour, "sshd")
	must(t, s.AddBans([]event.Decision{d, ban("2001:db8::/64", t0, 0, "manual")}))
	must(t, s.SaveOffset("/var/log/auth.log", Offset{Dev: 1, Ino: 2, Pos: 3, Size: 4}))
	must(t, s.SaveCursor("journal", "cur"))
	must(t, s.AllowlistAdd(pfx("10.0.0.0/8"), "lan"))
	must(t, s.Close())

	for _, name := range []string{path, filepath.Dir(path)} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}

	s = openAt(t, path, c)
	if rec, why := s.Recovered(); rec {
		t.Fatalf("reopen reports recovery: %s", why)
	}
	bans, err := s.ActiveBans(t0)
	if err != nil || len(bans) != 2 {
		t.Fatalf("ActiveBans after reopen = %v, %v", bans, err)
	}
	if o, ok, _ := s.LoadOffset("/var/log/auth.log"); !ok || o.Pos != 3 {
		t.Errorf("offset lost: %+v %v", o, ok)
	}
	if cur, ok, _ := s.LoadCursor("journal"); !ok || cur != "cur" {
		t.Errorf("cursor lost: %q %v", cur, ok)
	}
	if al, _ := s.Allowlist(); len(al) != 1 {
		t.Errorf("allowlist lost: %v", al)
	}
	if n, _ := s.Offences(d.Prefix, t0); n != 1 {
		t.Errorf("history lost: %d offences", n)
	}
	var version int
	if err := s.r.QueryRow(`SELECT max(version) FROM schema_version`).Scan(&version); err != nil || version != 2 {
		t.Errorf("schema version = %d, %v", version, err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "moat.db")
	s := openAt(t, path, newClock(t0))
	if _, err := s.w.Exec(`INSERT INTO schema_version VALUES (999, '0999_future', 0)`); err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())
	_, err := Open(Options{Path: path})
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open = %v; want ErrNewerSchema", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database moved although only newer: %v", err)
	}
}

func TestMigrationsNamed(t *testing.T) {
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.version != i+1 {
			t.Errorf("migration %s: version %d, want %d (no gaps)", m.name, m.version, i+1)
		}
		if !strings.HasSuffix(m.sql, "\n") {
			t.Errorf("migration %s: no final newline", m.name)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	s := openTest(t, newClock(t0))
	done := make(chan error, 8)
	for g := range 4 {
		go func() {
			var err error
			for i := range 50 {
				a := netip.AddrFrom4([4]byte{10, byte(g), 0, byte(i)})
				if err = s.AddBan(ban(a.String(), t0, time.Hour, "sshd")); err != nil {
					break
				}
			}
			done <- err
		}()
		go func() {
			var err error
			for range 50 {
				if _, err = s.ActiveBans(t0); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if bans, _ := s.ActiveBans(t0); len(bans) != 200 {
		t.Errorf("%d bans, want 200", len(bans))
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
