package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/event"
)

// fillDB writes a database with enough rows to span many pages and
// closes it, so everything is in the main file.
func fillDB(t *testing.T, path string) {
	t.Helper()
	s, err := Open(Options{Path: path, Now: newClock(t0).Now})
	if err != nil {
		t.Fatal(err)
	}
	var ds []event.Decision
	for i := range 3000 {
		d := ban(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}).String(), t0, time.Hour, "sshd")
		d.Evidence = []string{strings.Repeat("Failed password for invalid user admin ", 5)}
		ds = append(ds, d)
	}
	must(t, s.AddBans(ds))
	must(t, s.Close())
}

var copyName = regexp.MustCompile(`\.corrupt-[0-9]+(\.[0-9]+)?$`)

// corruptCopies lists the moved-aside databases (not their companions).
func corruptCopies(t *testing.T, path string) []string {
	t.Helper()
	m, err := filepath.Glob(path + ".corrupt-*")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, n := range m {
		if copyName.MatchString(filepath.Base(n)) {
			out = append(out, filepath.Base(n))
		}
	}
	sort.Strings(out)
	return out
}

func TestCorruptDatabaseRecovered(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		recover bool
		reason  string // in RecoveryReason
	}{
		{
			name: "random bytes",
			prepare: func(t *testing.T, path string) {
				must(t, os.WriteFile(path, randBytes(64<<10), 0o600))
			},
			recover: true, reason: "bad header",
		},
		{
			name:    "short garbage",
			prepare: func(t *testing.T, path string) { must(t, os.WriteFile(path, []byte("hello"), 0o600)) },
			recover: true, reason: "shorter than a header",
		},
		{
			name: "truncated to half",
			prepare: func(t *testing.T, path string) {
				fillDB(t, path)
				fi, err := os.Stat(path)
				must(t, err)
				must(t, os.Truncate(path, fi.Size()/2))
			},
			recover: true,
		},
		{
			name: "pages overwritten in the middle",
			prepare: func(t *testing.T, path string) {
				fillDB(t, path)
				f, err := os.OpenFile(path, os.O_RDWR, 0)
				must(t, err)
				fi, err := f.Stat()
				must(t, err)
				_, err = f.WriteAt(randBytes(3*4096), fi.Size()/2/4096*4096)
				must(t, err)
				must(t, f.Close())
			},
			recover: true,
		},
		{
			name: "directory in its place",
			prepare: func(t *testing.T, path string) {
				must(t, os.Mkdir(path, 0o700))
				must(t, os.WriteFile(filepath.Join(path, "x"), []byte("x"), 0o600))
			},
			recover: true, reason: "is a directory",
		},
		{
			name: "garbage with a stale WAL beside it",
			prepare: func(t *testing.T, path string) {
				must(t, os.WriteFile(path, randBytes(8192), 0o600))
				must(t, os.WriteFile(path+"-wal", randBytes(8192), 0o600))
			},
			recover: true, reason: "bad header",
		},
		{
			name:    "zero length is a new database",
			prepare: func(t *testing.T, path string) { must(t, os.WriteFile(path, nil, 0o600)) },
			recover: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "moat.db")
			tt.prepare(t, path)
			c := newClock(t0)

			s, err := Open(Options{Path: path, Now: c.Now, Logf: t.Logf})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			rec, why := s.Recovered()
			if rec != tt.recover {
				t.Fatalf("Recovered() = %v (%q), want %v", rec, why, tt.recover)
			}
			if !strings.Contains(why, tt.reason) {
				t.Errorf("reason %q does not mention %q", why, tt.reason)
			}
			// The store works: the daemon rebuilds into it.
			must(t, s.AddBan(ban("192.0.2.1", t0, time.Hour, "sshd")))
			if bans, err := s.ActiveBans(t0); err != nil || len(bans) != 1 {
				t.Fatalf("ActiveBans after recovery = %v, %v", bans, err)
			}
			must(t, s.Close())

			wantCopies := 0
			if tt.recover {
				wantCopies = 1
				if want := fmt.Sprintf("moat.db.corrupt-%d", t0.Unix()); !strings.Contains(why, want) {
					t.Errorf("reason %q does not name %s", why, want)
				}
			}
			if got := corruptCopies(t, path); len(got) != wantCopies {
				t.Fatalf("moved-aside copies %v, want %d", got, wantCopies)
			}
			if _, err := os.Stat(path + "-wal"); err == nil {
				t.Error("a WAL is left beside the closed database")
			}

			// Opening again neither recovers nor moves the fresh database.
			c.Add(time.Minute)
			s = openAt(t, path, c)
			if rec, why := s.Recovered(); rec {
				t.Fatalf("second Open recovered again: %s", why)
			}
			if bans, err := s.ActiveBans(t0); err != nil || len(bans) != 1 {
				t.Errorf("rebuilt ban lost: %v, %v", bans, err)
			}
			if got := corruptCopies(t, path); len(got) != wantCopies {
				t.Errorf("after reopen: moved-aside copies %v, want %d", got, wantCopies)
			}
		})
	}
}

func TestCorruptCopiesBounded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "moat.db")
	c := newClock(t0)
	// Someone else's file with a similar name is left alone.
	must(t, os.WriteFile(path+".corrupt-notes.txt", []byte("mine"), 0o600))
	for i := range 6 {
		if i == 3 {
			// Same second as the previous one: must not overwrite it.
			c.Add(-time.Hour)
		}
		c.Add(time.Hour)
		must(t, os.WriteFile(path, randBytes(4096), 0o600))
		must(t, os.WriteFile(path+"-wal", randBytes(4096), 0o600))
		s, err := Open(Options{Path: path, Now: c.Now, Logf: t.Logf})
		if err != nil {
			t.Fatal(err)
		}
		if rec, _ := s.Recovered(); !rec {
			t.Fatalf("round %d: not recovered", i)
		}
		must(t, s.Close())
		if got := corruptCopies(t, path); len(got) > keepCorrupt {
			t.Fatalf("round %d: %d copies kept: %v", i, len(got), got)
		}
	}
	h := func(n int) int64 { return t0.Add(time.Duration(n) * time.Hour).Unix() }
	want := []string{
		fmt.Sprintf("moat.db.corrupt-%d.1", h(3)),
		fmt.Sprintf("moat.db.corrupt-%d", h(4)),
		fmt.Sprintf("moat.db.corrupt-%d", h(5)),
	}
	sort.Strings(want)
	got := corruptCopies(t, path)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("kept %v, want %v", got, want)
	}
	if _, err := os.Stat(path + ".corrupt-notes.txt"); err != nil {
		t.Errorf("a file the store did not write was deleted: %v", err)
	}
	wals, _ := filepath.Glob(path + ".corrupt-*-wal")
	if len(wals) != keepCorrupt {
		t.Errorf("kept WALs %v, want one per kept copy", wals)
	}
}

func TestLockedDatabase(t *testing.T) {
	tests := []struct {
		name    string
		journal string // the other process's journal mode
	}{
		{"WAL writer", "WAL"},
		{"rollback journal exclusive", "DELETE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "moat.db")
			if tt.journal == "WAL" {
				fillDB(t, path)
			}
			// The other process: its own connection holding an exclusive
			// transaction with a pending write.
			other, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode("+tt.journal+")")
			must(t, err)
			defer other.Close()
			ctx := context.Background()
			conn, err := other.Conn(ctx)
			must(t, err)
			defer conn.Close()
			for _, q := range []string{"CREATE TABLE IF NOT EXISTS other (x)", "BEGIN EXCLUSIVE", "INSERT INTO other VALUES (1)"} {
				if _, err := conn.ExecContext(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			before, err := os.ReadFile(path)
			must(t, err)

			start := time.Now()
			s, err := Open(Options{Path: path, BusyTimeout: 200 * time.Millisecond, Logf: t.Logf})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded on a locked database")
			}
			t.Logf("Open: %v", err)
			if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "locked") {
				t.Errorf("Open = %v; want ErrLocked naming the lock", err)
			}
			if el := time.Since(start); el < 200*time.Millisecond {
				t.Errorf("gave up after %v, before the busy timeout", el)
			}
			if got := corruptCopies(t, path); len(got) != 0 {
				t.Errorf("locked database moved aside: %v", got)
			}
			if after, err := os.ReadFile(path); err != nil || string(after) != string(before) {
				t.Errorf("locked database changed (%v)", err)
			}

			// Once the lock is released, Open works and keeps the data.
			_, err = conn.ExecContext(ctx, "ROLLBACK")
			must(t, err)
			s = openAt(t, path, newClock(t0))
			if rec, why := s.Recovered(); rec {
				t.Errorf("recovered after lock: %s", why)
			}
			if tt.journal == "WAL" {
				if bans, err := s.ActiveBans(t0); err != nil || len(bans) != 3000 {
					t.Errorf("after lock: %d bans, %v", len(bans), err)
				}
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	must(t, os.WriteFile(file, nil, 0o600))
	tests := []struct {
		name string
		path string
	}{
		{"empty path", ""},
		{"parent is a file", filepath.Join(file, "moat.db")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(Options{Path: tt.path})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			t.Logf("Open: %v", err)
		})
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
