package journal

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/event"
)

// The fake journalctl is this test binary, re-executed: it logs its argv,
// then follows a file of JSON lines like journalctl follows the journal.
const (
	envFake      = "MOAT_FAKE_JOURNALCTL" // the journal file; set = act as journalctl
	envArgv      = "MOAT_FAKE_ARGV"       // file to which each run appends its argv
	envExitAfter = "MOAT_FAKE_EXIT_AFTER" // exit 0 after this many entries (0: follow forever)
)

func TestHelperJournalctl(t *testing.T) {
	if os.Getenv(envFake) == "" {
		return
	}
	os.Exit(fakeJournalctl())
}

func fakeJournalctl() int {
	args := os.Args
	if i := slices.Index(args, "--"); i >= 0 {
		args = args[i+1:]
	}
	exitAfter, _ := strconv.Atoi(os.Getenv(envExitAfter))
	entries := func() []string {
		b, _ := os.ReadFile(os.Getenv(envFake))
		s := string(b)
		if i := strings.LastIndexByte(s, '\n'); i >= 0 {
			s = s[:i]
		} else {
			s = ""
		}
		if s == "" {
			return nil
		}
		return strings.Split(s, "\n")
	}
	next := len(entries()) // --lines=0
	for _, a := range args {
		if c, ok := strings.CutPrefix(a, "--after-cursor="); ok {
			all := entries()
			i := slices.IndexFunc(all, func(e string) bool { return strings.Contains(e, `"__CURSOR":"`+c+`"`) })
			if i < 0 {
				fmt.Fprintln(os.Stderr, "Failed to seek to cursor: Invalid argument")
				if f, err := os.OpenFile(os.Getenv(envArgv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
					fmt.Fprintln(f, strings.Join(args, " "))
					f.Close()
				}
				return 1
			}
			next = i + 1
		}
	}
	// Logged once positioned: a test that saw the log may append entries.
	if f, err := os.OpenFile(os.Getenv(envArgv), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644); err == nil {
		fmt.Fprintln(f, strings.Join(args, " "))
		f.Close()
	}
	w := bufio.NewWriter(os.Stdout)
	printed := 0
	for {
		all := entries()
		for ; next < len(all); next++ {
			fmt.Fprintln(w, all[next])
			printed++
			if exitAfter > 0 && printed == exitAfter {
				w.Flush()
				return 0
			}
		}
		w.Flush()
		time.Sleep(5 * time.Millisecond)
	}
}

// fake sets up a fake journal and returns its path and the argv log.
func fake(t *testing.T, exitAfter int) (journal, argvLog string) {
	dir := t.TempDir()
	journal, argvLog = filepath.Join(dir, "journal.jsonl"), filepath.Join(dir, "argv")
	if err := os.WriteFile(journal, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envFake, journal)
	t.Setenv(envArgv, argvLog)
	t.Setenv(envExitAfter, strconv.Itoa(exitAfter))
	return journal, argvLog
}

var fakeCommand = []string{os.Args[0], "-test.run=^TestHelperJournalctl$", "--"}

func entryJSON(i int) string {
	return fmt.Sprintf(`{"__CURSOR":"s=abc;i=%x","__REALTIME_TIMESTAMP":"%d","_UID":"0","_PID":"1234","_COMM":"sshd","SYSLOG_IDENTIFIER":"sshd","_SYSTEMD_UNIT":"ssh.service","MESSAGE":"Failed password for root from 203.0.113.%d port 22 ssh2"}`,
		i, 1700000000000000+i, i)
}

func entryLine(i int) string {
	return fmt.Sprintf("sshd[1234]: Failed password for root from 203.0.113.%d port 22 ssh2", i)
}

func appendJournal(t *testing.T, journal string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(strings.Join(lines, "\n") + "\n"); err != nil {
		t.Fatal(err)
	}
}

type memCursors struct {
	mu sync.Mutex
	m  map[string]string
}

func (c *memCursors) LoadCursor(key string) (string, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[key]
	return s, ok, nil
}

func (c *memCursors) SaveCursor(key, cursor string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[key] = cursor
	return nil
}

func (c *memCursors) get(key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[key]
}

type running struct {
	s      *Source
	out    chan event.Observation
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg Config) *running {
	t.Helper()
	if cfg.Command == nil {
		cfg.Command = fakeCommand
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.backoff0 = 10 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{s: s, out: make(chan event.Observation, 100), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- s.Run(ctx, r.out) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if r.done == nil {
		return
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
	r.done = nil
}

// expect receives the entries numbered want, in order.
func (r *running) expect(t *testing.T, want ...int) {
	t.Helper()
	for _, i := range want {
		select {
		case o := <-r.out:
			if o.Line != entryLine(i) || o.Source != r.s.Key() || !o.Trusted || o.Comm != "sshd" || o.Unit != "ssh.service" || !o.Time.Equal(time.UnixMicro(1700000000000000+int64(i))) {
				t.Fatalf("got %+v, want entry %d", o, i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no entry %d; stats %+v", i, r.s.Stats())
		}
	}
}

// quiet checks that nothing more comes.
func (r *running) quiet(t *testing.T) {
	t.Helper()
	select {
	case o := <-r.out:
		t.Fatalf("unexpected %+v", o)
	case <-time.After(100 * time.Millisecond):
	}
}

// waitRuns waits until n journalctl runs have positioned themselves.
func waitRuns(t *testing.T, argvLog string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(argvLog)
		if strings.Count(string(b), "\n") >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d journalctl runs, want %d", strings.Count(string(b), "\n"), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *running) waitStats(t *testing.T, what string, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok(r.s.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; stats %+v", what, r.s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func argvRuns(t *testing.T, argvLog string) []string {
	t.Helper()
	b, err := os.ReadFile(argvLog)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// TestRunFollowAndRestart: the first run starts at the journal's end; a
// journalctl that exits is restarted after the last cursor, so that
// nothing is lost or read twice.
func TestRunFollowAndRestart(t *testing.T) {
	journal, argvLog := fake(t, 2) // each journalctl exits after 2 entries
	appendJournal(t, journal, entryJSON(1), entryJSON(2))
	cursors := &memCursors{}
	r := start(t, Config{Units: []string{"ssh.service", "sshd.service"}, Cursors: cursors})
	waitRuns(t, argvLog, 1)
	appendJournal(t, journal, entryJSON(3))
	appendJournal(t, journal, entryJSON(4))
	r.expect(t, 3, 4)
	appendJournal(t, journal, entryJSON(5))
	r.expect(t, 5)
	r.quiet(t)
	r.stop(t)

	if got := cursors.get("journal:ssh.service,sshd.service"); got != "s=abc;i=5" {
		t.Errorf("saved cursor %q, want s=abc;i=5", got)
	}
	runs := argvRuns(t, argvLog)
	want0 := "--output=json --follow --no-pager --all --lines=0 _SYSTEMD_UNIT=ssh.service _SYSTEMD_UNIT=sshd.service"
	want1 := "--output=json --follow --no-pager --all --after-cursor=s=abc;i=4 _SYSTEMD_UNIT=ssh.service _SYSTEMD_UNIT=sshd.service"
	if len(runs) < 2 || runs[0] != want0 || runs[1] != want1 {
		t.Errorf("argv of the runs:\n%s\nwant first\n%s\n%s", strings.Join(runs, "\n"), want0, want1)
	}
	if st := r.s.Stats(); st.Restarts < 1 || st.Lines != 3 || st.Cursor != "s=abc;i=5" {
		t.Errorf("stats %+v", st)
	}
}

// TestRunResume: a saved cursor is resumed after; entries written while
// the daemon was down are read once.
func TestRunResume(t *testing.T) {
	journal, argvLog := fake(t, 0)
	appendJournal(t, journal, entryJSON(1), entryJSON(2), entryJSON(3))
	cursors := &memCursors{m: map[string]string{"journal:ssh.service": "s=abc;i=1"}}
	r := start(t, Config{Units: []string{"ssh.service"}, Cursors: cursors})
	r.expect(t, 2, 3)
	r.quiet(t)
	r.stop(t)
	if runs := argvRuns(t, argvLog); !strings.Contains(runs[0], " --after-cursor=s=abc;i=1 ") || strings.Contains(runs[0], "--lines") {
		t.Errorf("argv %q", runs[0])
	}
	if got := cursors.get("journal:ssh.service"); got != "s=abc;i=3" {
		t.Errorf("saved cursor %q", got)
	}
}

// TestRunBadCursor: a cursor journalctl refuses (vacuumed journal, SECURITY
// C9) is dropped after a few failures, for the journal's end: no replay.
func TestRunBadCursor(t *testing.T) {
	journal, argvLog := fake(t, 0)
	appendJournal(t, journal, entryJSON(1))
	cursors := &memCursors{m: map[string]string{"journal:ssh.service": "s=gone;i=1"}}
	r := start(t, Config{Units: []string{"ssh.service"}, Cursors: cursors})
	r.waitStats(t, "the cursor dropped", func(s Stats) bool {
		return strings.Contains(s.Err, "Failed to seek to cursor") && strings.Contains(s.Err, "dropped the saved cursor")
	})
	waitRuns(t, argvLog, cursorFailures+1)
	appendJournal(t, journal, entryJSON(2))
	r.expect(t, 2)
	r.quiet(t)
	r.stop(t)
	runs := argvRuns(t, argvLog)
	if len(runs) != cursorFailures+1 || !strings.Contains(runs[cursorFailures], "--lines=0") {
		t.Errorf("runs:\n%s", strings.Join(runs, "\n"))
	}
	if st := r.s.Stats(); st.Err != "" || st.Restarts != cursorFailures {
		t.Errorf("stats %+v, want healthy after %d restarts", st, cursorFailures)
	}
}

// TestRunHostileEntries: lines that are not JSON, entries over the JSON
// line limit, and long messages neither stop nor stall the source.
func TestRunHostileEntries(t *testing.T) {
	journal, argvLog := fake(t, 0)
	r := start(t, Config{Units: []string{"ssh.service"}, MaxLine: 100})
	waitRuns(t, argvLog, 1)
	huge := strings.Replace(entryJSON(9), "Failed", strings.Repeat("x", 1<<20), 1) // 1 MiB: over the limit
	long := strings.Replace(entryJSON(8), "Failed", strings.Repeat("y", 200), 1)
	appendJournal(t, journal, entryJSON(1), "not json", huge, long, `{"__CURSOR":"s=abc;i=77","__REALTIME_TIMESTAMP":"1"}`, entryJSON(2))
	r.expect(t, 1)
	select {
	case o := <-r.out:
		if !o.Truncated || len(o.Line) != 100 || !strings.HasPrefix(o.Line, "sshd[1234]: yyy") {
			t.Fatalf("long entry: %+v", o)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no long entry")
	}
	r.expect(t, 2)
	r.quiet(t)
	if st := r.s.Stats(); st.Dropped != 2 || st.Truncated != 1 || st.Lines != 3 {
		t.Errorf("stats %+v, want 2 dropped, 1 truncated, 3 lines", st)
	}
}

func TestRunStops(t *testing.T) {
	_, argvLog := fake(t, 0)
	r := start(t, Config{})
	waitRuns(t, argvLog, 1)
	r.stop(t)
	if st := r.s.Stats(); st.Following {
		t.Errorf("still running after stop: %+v", st)
	}
}

func TestRunMissingCommand(t *testing.T) {
	r := start(t, Config{Command: []string{filepath.Join(t.TempDir(), "no-journalctl")}})
	r.waitStats(t, "failures", func(s Stats) bool { return s.Restarts >= 2 && strings.Contains(s.Err, "no-journalctl") })
}

func TestNewRejects(t *testing.T) {
	for _, cfg := range []Config{
		{Units: []string{"ssh.service; rm -rf /"}},
		{Units: []string{"--since=yesterday"[2:] + " x"}},
		{Units: []string{""}},
		{Units: []string{"a\nb"}},
		{Units: []string{strings.Repeat("a", 300)}},
		{MaxLine: -1},
		{Command: []string{""}},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	s, err := New(Config{Units: []string{"sshd.service", "ssh.service", "ssh.service", "getty@tty1.service"}})
	if err != nil {
		t.Fatal(err)
	}
	if s.Key() != "journal:sshd.service,ssh.service,getty@tty1.service" {
		t.Errorf("key %q", s.Key())
	}
}

// TestRealJournal runs against this host's journald when there is one.
func TestRealJournal(t *testing.T) {
	if _, err := os.Stat("/run/systemd/journal/socket"); err != nil {
		t.Skip("no journald here")
	}
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("no journalctl")
	}
	logger, err := exec.LookPath("logger")
	if err != nil {
		t.Skip("no logger")
	}
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make(chan event.Observation, 1000)
	go s.Run(ctx, out)
	for !s.Stats().Following && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // journalctl seeks to the end
	tag := fmt.Sprintf("moat-test-%d", time.Now().UnixNano())
	if err := exec.Command(logger, "-t", tag, "hello from the test").Run(); err != nil {
		t.Skip("logger:", err)
	}
	for {
		select {
		case o := <-out:
			if strings.HasPrefix(o.Line, tag+"[") {
				if !o.Trusted || o.Comm != "logger" || o.PID == 0 || o.UID != os.Getuid() {
					t.Errorf("observation %+v", o)
				}
				return
			}
		case <-ctx.Done():
			t.Fatalf("message not seen; stats %+v", s.Stats())
		}
	}
}
