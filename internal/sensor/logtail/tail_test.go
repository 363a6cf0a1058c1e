package logtail

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/event"
)

const testPoll = 20 * time.Millisecond

// memStore is an OffsetStore in memory.
type memStore struct {
	mu    sync.Mutex
	m     map[string]Offset
	saves int
}

func (s *memStore) LoadOffset(path string) (Offset, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.m[path]
	return o, ok, nil
}

func (s *memStore) SaveOffset(path string, o Offset) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]Offset{}
	}
	s.m[path] = o
	s.saves++
	return nil
}

// run is a Tailer running in the background with a collector.
type run struct {
	t      *Tailer
	cancel context.CancelFunc
	done   chan error

	mu   sync.Mutex
	got  []event.Observation
	more chan struct{}
}

func startTailer(tb testing.TB, cfg Config) *run { return startTailerPoll(tb, cfg, false) }

// startTailerPoll starts a Tailer, without inotify when pollOnly.
func startTailerPoll(tb testing.TB, cfg Config, pollOnly bool) *run {
	tb.Helper()
	if cfg.Poll == 0 {
		cfg.Poll = testPoll
	}
	tl, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tl.noInotify = pollOnly
	ctx, cancel := context.WithCancel(context.Background())
	r := &run{t: tl, cancel: cancel, done: make(chan error, 1), more: make(chan struct{}, 1)}
	out := make(chan event.Observation, 1024)
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			select {
			case o := <-out:
				r.mu.Lock()
				r.got = append(r.got, o)
				r.mu.Unlock()
				select {
				case r.more <- struct{}{}:
				default:
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		err := tl.Run(ctx, out)
		<-collected
		r.done <- err
	}()
	tb.Cleanup(func() { r.stop(tb) })
	return r
}

// stop cancels Run and waits for it; idempotent.
func (r *run) stop(tb testing.TB) {
	tb.Helper()
	r.cancel()
	if r.done == nil {
		return
	}
	select {
	case err := <-r.done:
		if err != nil {
			tb.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		tb.Fatal("run did not return after cancel")
	}
	r.done = nil
}

func (r *run) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := make([]string, len(r.got))
	for i, o := range r.got {
		s[i] = o.Line
	}
	return s
}

// waitLines waits until n lines arrived, then a little longer to catch
// any extra (duplicate) line, and returns them all.
func (r *run) waitLines(tb testing.TB, n int) []string {
	tb.Helper()
	deadline := time.After(15 * time.Second)
	for {
		r.mu.Lock()
		have := len(r.got)
		r.mu.Unlock()
		if have >= n {
			break
		}
		select {
		case <-r.more:
		case <-deadline:
			tb.Fatalf("got %d lines, want %d; stats %+v; last lines %q", have, n, r.t.Stats(), tail(r.lines(), 5))
		}
	}
	time.Sleep(5 * testPoll)
	return r.lines()
}

func (r *run) waitStats(tb testing.TB, what string, ok func(Stats) bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(r.t.Stats()) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s; stats %+v", what, r.t.Stats())
		}
		time.Sleep(testPoll / 4)
	}
}

func tail(s []string, n int) []string { return s[max(len(s)-n, 0):] }

// writer appends numbered lines "line 000042 ..." with one write each.
type writer struct {
	tb   testing.TB
	path string
	f    *os.File
	next int
}

func newWriter(tb testing.TB, path string) *writer {
	w := &writer{tb: tb, path: path}
	w.reopen()
	tb.Cleanup(func() { w.f.Close() })
	return w
}

func (w *writer) reopen() {
	if w.f != nil {
		w.f.Close()
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		w.tb.Fatal(err)
	}
	w.f = f
}

func lineText(i int) string {
	return fmt.Sprintf("line %06d sshd[1]: Failed password for root from 192.0.2.1", i)
}

func (w *writer) write(n int) {
	for range n {
		if _, err := w.f.WriteString(lineText(w.next) + "\n"); err != nil {
			w.tb.Error(err)
			return
		}
		w.next++
	}
}

func lineNo(tb testing.TB, s string) int {
	tb.Helper()
	f := strings.Fields(s)
	if len(f) < 2 || f[0] != "line" {
		tb.Fatalf("unexpected line %q", s)
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		tb.Fatalf("unexpected line %q", s)
	}
	return n
}

// checkExactlyOnce asserts lines are lineText(from)…lineText(to-1), each
// once, in order.
func checkExactlyOnce(tb testing.TB, lines []string, from, to int) {
	tb.Helper()
	want := from
	for i, l := range lines {
		n := lineNo(tb, l)
		if n != want {
			tb.Fatalf("line %d is number %d, want %d (duplicate, lost or reordered); around: %q", i, n, want, lines[max(i-3, 0):min(i+3, len(lines))])
		}
		if l != lineText(n) {
			tb.Fatalf("line %d = %q, mangled", i, l)
		}
		want++
	}
	if want != to {
		tb.Fatalf("last line number %d, want %d", want-1, to-1)
	}
}

func mustWrite(tb testing.TB, path, data string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func copyFile(tb testing.TB, from, to string) {
	tb.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		tb.Fatal(err)
	}
	mustWrite(tb, to, string(b))
}

// TestRotation follows a file written continuously through several
// rotations of each style, with lines written before, during and after
// each one.
func TestRotation(t *testing.T) {
	const (
		total   = 3000
		every   = 500 // lines between rotations
		burst   = 10  // lines per write burst
		during  = 5   // lines written to the old file after it was rotated away
		rotates = total/every - 1
	)
	tests := []struct {
		name string
		// setup creates the followed path and returns the file the writer
		// writes to.
		setup func(t *testing.T, dir, path string) string
		// rotate rotates, writing `during` lines to the old file when the
		// style allows, and leaves w writing to the new file. It returns
		// the numbers of lines that may be lost (copytruncate's window).
		rotate func(t *testing.T, path string, w *writer, n int) []int
		exact  bool // every line exactly once
	}{
		{
			name:  "rename+create",
			setup: func(t *testing.T, dir, path string) string { mustWrite(t, path, ""); return path },
			rotate: func(t *testing.T, path string, w *writer, _ int) []int {
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
				w.write(during) // the daemon has not reopened yet
				w.reopen()      // logrotate's create, then the daemon's reopen
				return nil
			},
			exact: true,
		},
		{
			name:  "rename+create, gap before create",
			setup: func(t *testing.T, dir, path string) string { mustWrite(t, path, ""); return path },
			rotate: func(t *testing.T, path string, w *writer, _ int) []int {
				if err := os.Rename(path, path+".1"); err != nil {
					t.Fatal(err)
				}
				w.write(during)
				time.Sleep(3 * testPoll) // the tailer sees the path missing
				w.write(during)
				w.reopen()
				return nil
			},
			exact: true,
		},
		{
			name:  "copytruncate",
			setup: func(t *testing.T, dir, path string) string { mustWrite(t, path, ""); return path },
			rotate: func(t *testing.T, path string, w *writer, _ int) []int {
				copyFile(t, path, path+".1")
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
				return nil
			},
			exact: true,
		},
		{
			name:  "copytruncate, writes between copy and truncate",
			setup: func(t *testing.T, dir, path string) string { mustWrite(t, path, ""); return path },
			rotate: func(t *testing.T, path string, w *writer, _ int) []int {
				copyFile(t, path, path+".1")
				first := w.next
				w.write(during) // in neither the copy nor the truncated file
				if err := os.Truncate(path, 0); err != nil {
					t.Fatal(err)
				}
				var window []int
				for i := first; i < w.next; i++ {
					window = append(window, i)
				}
				return window
			},
		},
		{
			name: "symlink swap",
			setup: func(t *testing.T, dir, path string) string {
				target := filepath.Join(dir, "pods", "0.log")
				if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
					t.Fatal(err)
				}
				mustWrite(t, target, "")
				if err := os.Symlink(target, path); err != nil {
					t.Fatal(err)
				}
				return target
			},
			rotate: func(t *testing.T, path string, w *writer, n int) []int {
				// kubelet-style: a new target in a new directory, the link
				// replaced atomically, the old target written a little more.
				target := filepath.Join(filepath.Dir(path), "pods", fmt.Sprint(n), "0.log")
				if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
					t.Fatal(err)
				}
				mustWrite(t, target, "")
				tmp := path + ".tmp"
				if err := os.Symlink(target, tmp); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, path); err != nil {
					t.Fatal(err)
				}
				w.write(during)
				w.path = target
				w.reopen()
				return nil
			},
			exact: true,
		},
		{
			name:  "delete+recreate",
			setup: func(t *testing.T, dir, path string) string { mustWrite(t, path, ""); return path },
			rotate: func(t *testing.T, path string, w *writer, _ int) []int {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				w.write(during) // to the deleted file, still open
				time.Sleep(3 * testPoll)
				w.reopen()
				return nil
			},
			exact: true,
		},
	}
	for _, tc := range tests {
		for _, pollOnly := range []bool{false, true} {
			name := tc.name
			if pollOnly {
				name += ", poll only"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "auth.log")
				wpath := tc.setup(t, dir, path)
				r := startTailerPoll(t, Config{Path: path}, pollOnly)
				r.waitStats(t, "following", func(s Stats) bool { return s.Following })

				w := newWriter(t, wpath)
				mayLose := map[int]bool{}
				rot, since := 0, 0
				for w.next < total {
					if since >= every && rot < rotates {
						rot, since = rot+1, 0
						for _, n := range tc.rotate(t, path, w, rot) {
							mayLose[n] = true
						}
					}
					w.write(burst)
					since += burst
					time.Sleep(time.Millisecond)
				}
				lines := r.waitLines(t, w.next-len(mayLose))
				st := r.t.Stats()
				r.stop(t)

				if tc.exact {
					checkExactlyOnce(t, lines, 0, w.next)
				} else {
					// Copytruncate: lines written between the copy and the
					// truncate may be lost (they are in neither file); every
					// other line exactly once, in order.
					prev := -1
					for _, l := range lines {
						n := lineNo(t, l)
						if n <= prev {
							t.Fatalf("line %d after %d: duplicate or reordered", n, prev)
						}
						for m := prev + 1; m < n; m++ {
							if !mayLose[m] {
								t.Fatalf("line %d lost, and it was not written in a copy→truncate window", m)
							}
						}
						prev = n
					}
					if prev != w.next-1 {
						t.Fatalf("last line %d, want %d", prev, w.next-1)
					}
				}
				if st.Rotations != rotates {
					t.Errorf("Stats.Rotations = %d, want %d", st.Rotations, rotates)
				}
				if strings.HasPrefix(tc.name, "copytruncate") && st.Truncations != rotates {
					t.Errorf("Stats.Truncations = %d, want %d", st.Truncations, rotates)
				}
				if st.Lines != uint64(len(lines)) {
					t.Errorf("Stats.Lines = %d, %d received", st.Lines, len(lines))
				}
				if st.Watching == pollOnly {
					t.Errorf("Stats.Watching = %v with poll only %v", st.Watching, pollOnly)
				}
			})
		}
	}
}

// TestFirstSightAtEOF: history is not replayed; a partial last line at
// startup is history too.
func TestFirstSightAtEOF(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	w.write(100)
	w.f.WriteString("half a line of history")
	r := startTailer(t, Config{Path: path})
	r.waitStats(t, "following", func(s Stats) bool { return s.Following })
	w.f.WriteString(" ends here\n")
	w.write(5)
	checkExactlyOnce(t, r.waitLines(t, 5), 100, 105)
}

// TestResume: lines written while the tailer was stopped are read exactly
// once by the next one, whatever happened to the file meanwhile.
func TestResume(t *testing.T) {
	tests := []struct {
		name string
		// whileDown changes the file while no tailer runs; it returns the
		// number of the first line the next tailer must emit.
		whileDown func(t *testing.T, path string, w *writer) int
	}{
		{"appended", func(t *testing.T, path string, w *writer) int {
			w.write(50)
			return 100
		}},
		{"appended with a partial line at stop", func(t *testing.T, path string, w *writer) int {
			// the partial line was held, not emitted: it is read again whole
			w.f.WriteString(lineText(w.next)[:10])
			time.Sleep(3 * testPoll)
			return -1 // special: handled below
		}},
		{"rotated by rename", func(t *testing.T, path string, w *writer) int {
			w.write(20)
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			w.write(5)
			w.reopen()
			w.write(30)
			return 100
		}},
		{"rotated by rename, not yet recreated", func(t *testing.T, path string, w *writer) int {
			w.write(20)
			if err := os.Rename(path, path+".1"); err != nil {
				t.Fatal(err)
			}
			return 100
		}},
		{"copytruncated", func(t *testing.T, path string, w *writer) int {
			w.write(20)
			copyFile(t, path, path+".1")
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			w.write(30)
			return 100
		}},
		{"copytruncated without a copy", func(t *testing.T, path string, w *writer) int {
			w.write(20) // lost: only in a copy the tailer cannot find
			if err := os.Truncate(path, 0); err != nil {
				t.Fatal(err)
			}
			w.write(30)
			return 120
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "auth.log")
			store := &memStore{}
			w := newWriter(t, path)
			w.write(10) // history
			r := startTailer(t, Config{Path: path, Offsets: store})
			r.waitStats(t, "following", func(s Stats) bool { return s.Following })
			w.write(90)
			checkExactlyOnce(t, r.waitLines(t, 90), 10, 100)
			if tc.name == "appended with a partial line at stop" {
				w.f.WriteString(lineText(w.next)[:10])
				time.Sleep(3 * testPoll)
				r.stop(t)
				w.f.WriteString(lineText(w.next)[10:] + "\n")
				w.next++
				w.write(9)
				r2 := startTailer(t, Config{Path: path, Offsets: store})
				checkExactlyOnce(t, r2.waitLines(t, 10), 100, 110)
				return
			}
			r.stop(t)
			if store.saves == 0 {
				t.Fatal("no offset saved")
			}
			first := tc.whileDown(t, path, w)

			r2 := startTailer(t, Config{Path: path, Offsets: store})
			time.Sleep(3 * testPoll)
			if _, err := os.Stat(path); err != nil {
				w.reopen() // created after the restart
			}
			w.write(10) // after the restart
			checkExactlyOnce(t, r2.waitLines(t, w.next-first), first, w.next)
		})
	}
}

// TestLongLine: a 1 MiB line is cut at MaxLine and counted, the lines
// after it flow, and memory stays bounded by MaxLine.
func TestLongLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	r := startTailer(t, Config{Path: path, MaxLine: 1000})
	r.waitStats(t, "following", func(s Stats) bool { return s.Following })
	w.write(1)
	long := strings.Repeat("A ", 1<<19) // 1 MiB, no IP (SECURITY A6)
	// written in pieces, so the tailer also sees it unfinished
	for i := 0; i < len(long); i += 64 << 10 {
		w.f.WriteString(long[i : i+64<<10])
		time.Sleep(time.Millisecond)
	}
	w.f.WriteString("\n")
	w.next++ // the long line takes number 1
	w.write(3)
	lines := r.waitLines(t, 5)
	if len(lines) != 5 {
		t.Fatalf("got %d lines, want 5", len(lines))
	}
	if lines[1] != long[:1000] {
		t.Errorf("cut line = %.40q… (%d bytes), want the first 1000 bytes", lines[1], len(lines[1]))
	}
	r.mu.Lock()
	if !r.got[1].Truncated || r.got[0].Truncated || r.got[2].Truncated {
		t.Errorf("Truncated flags wrong: %v %v %v", r.got[0].Truncated, r.got[1].Truncated, r.got[2].Truncated)
	}
	r.mu.Unlock()
	if lines[0] != lineText(0) || lines[2] != lineText(2) || lines[4] != lineText(4) {
		t.Errorf("lines around the long one: %q", []string{lines[0], lines[2], lines[4]})
	}
	if st := r.t.Stats(); st.Truncated != 1 {
		t.Errorf("Stats.Truncated = %d, want 1", st.Truncated)
	}
}

// TestPartialLine: a line without its '\n' is held until completed, then
// sent once, whole.
func TestPartialLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	r := startTailer(t, Config{Path: path})
	r.waitStats(t, "following", func(s Stats) bool { return s.Following })
	w.f.WriteString("Failed password for ro")
	time.Sleep(5 * testPoll)
	if got := r.lines(); len(got) != 0 {
		t.Fatalf("partial line emitted: %q", got)
	}
	w.f.WriteString("ot from 192.0.2.1\x00 with a NUL\r and a CR\nnext\n")
	got := r.waitLines(t, 2)
	want := []string{"Failed password for root from 192.0.2.1\x00 with a NUL\r and a CR", "next"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %q, want %q", got, want)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if o := r.got[0]; o.Source != "file:"+path || o.Trusted || o.Time.IsZero() {
		t.Errorf("observation %+v", o)
	}
}

// TestMissingFile: a file that does not exist yet is waited for, then read
// from its start.
func TestMissingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "auth.log") // even the directory is missing
	r := startTailer(t, Config{Path: path})
	r.waitStats(t, "missing", func(s Stats) bool { return s.Err == StatusMissing && !s.Following })
	time.Sleep(3 * testPoll)
	if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, path)
	w.write(20)
	checkExactlyOnce(t, r.waitLines(t, 20), 0, 20)
	if st := r.t.Stats(); !st.Following || st.Err != "" {
		t.Errorf("stats %+v, want following without error", st)
	}
}

// TestFastWriter: 100k lines written as fast as possible, none lost.
func TestFastWriter(t *testing.T) {
	const n = 100_000
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	store := &memStore{}
	w := newWriter(t, path)
	r := startTailer(t, Config{Path: path, Offsets: store})
	r.waitStats(t, "following", func(s Stats) bool { return s.Following })
	var b strings.Builder
	for w.next < n {
		b.Reset()
		for range 100 { // several lines per write, and writes split lines
			b.WriteString(lineText(w.next) + "\n")
			w.next++
		}
		s := b.String()
		w.f.WriteString(s[:len(s)/3])
		w.f.WriteString(s[len(s)/3:])
	}
	checkExactlyOnce(t, r.waitLines(t, n), 0, n)
	r.stop(t)
	st, _ := os.Stat(path)
	if o := store.m[path]; o.Pos != st.Size() || o.Mark == 0 {
		t.Errorf("saved offset %+v, file size %d", o, st.Size())
	}
	if store.saves > n/100 {
		t.Errorf("%d saves for %d lines: not batched", store.saves, n)
	}
}

// TestRewrittenInPlace: a capped log rewritten with its old lines plus a
// new one (SECURITY A15) yields only the new line.
func TestRewrittenInPlace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "capped.log")
	r := startTailer(t, Config{Path: path})
	r.waitStats(t, "missing", func(s Stats) bool { return s.Err == StatusMissing })
	content := func(from, to int) string {
		var b strings.Builder
		for i := from; i < to; i++ {
			b.WriteString(lineText(i) + "\n")
		}
		return b.String()
	}
	mustWrite(t, path, content(0, 100)) // appears: read from 0
	checkExactlyOnce(t, r.waitLines(t, 100), 0, 100)
	for i := 1; i <= 5; i++ {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(content(i, 100+i))
		f.Close()
		r.waitLines(t, 100+i)
		time.Sleep(2 * testPoll)
	}
	checkExactlyOnce(t, r.waitLines(t, 105), 0, 105)
	if st := r.t.Stats(); st.Truncations != 5 || st.Suppressed != 5*99 {
		t.Errorf("stats %+v, want 5 truncations and %d suppressed", st, 5*99)
	}
}

// TestNotRegular: a FIFO at the path neither blocks nor is read.
func TestNotRegular(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	if err := mkfifo(path); err != nil {
		t.Skip("mkfifo:", err)
	}
	r := startTailer(t, Config{Path: path})
	r.waitStats(t, "refusal", func(s Stats) bool { return s.Err == "not a regular file" })
	r.stop(t)
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []Config{
		{},
		{Path: "relative.log"},
		{Path: "/var/log/auth.log", MaxLine: -1},
		{Path: "/var/log/auth.log", MaxLine: maxMaxLine + 1},
		{Path: "/var/log/auth.log", Poll: -time.Second},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

// TestForgeable: a world-writable log is reported (SECURITY R3).
func TestForgeable(t *testing.T) {
	for _, mode := range []os.FileMode{0o640, 0o666} {
		dir := t.TempDir()
		path := filepath.Join(dir, "auth.log")
		mustWrite(t, path, "")
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		r := startTailer(t, Config{Path: path})
		r.waitStats(t, "following", func(s Stats) bool { return s.Following })
		if got, want := r.t.Stats().Forgeable, mode == 0o666; got != want {
			t.Errorf("mode %v: Forgeable %v, want %v", mode, got, want)
		}
		r.stop(t)
	}
}

// TestRenamedBack: a file moved away and back (or a link swapped back) is
// the same file: not read again from its start.
func TestRenamedBack(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.log")
	w := newWriter(t, path)
	r := startTailer(t, Config{Path: path})
	r.waitStats(t, "following", func(s Stats) bool { return s.Following })
	w.write(10)
	r.waitLines(t, 10)
	if err := os.Rename(path, path+".away"); err != nil {
		t.Fatal(err)
	}
	r.waitStats(t, "missing", func(s Stats) bool { return s.Err == StatusMissing })
	w.write(5)
	if err := os.Rename(path+".away", path); err != nil {
		t.Fatal(err)
	}
	r.waitStats(t, "following", func(s Stats) bool { return s.Following })
	w.write(5)
	checkExactlyOnce(t, r.waitLines(t, 20), 0, 20)
}
