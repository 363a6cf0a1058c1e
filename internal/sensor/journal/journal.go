package journal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/sensor/logtail"
)

// CursorStore persists the position in the journal by key (the daemon
// backs it with SQLite).
type CursorStore interface {
	LoadCursor(key string) (string, bool, error)
	SaveCursor(key, cursor string) error
}

// Config is one journal source.
type Config struct {
	// Units are matched on _SYSTEMD_UNIT (journalctl ORs them); none
	// means the whole journal. Debian's sshd is "ssh.service".
	Units   []string
	MaxLine int         // bytes of Observation.Line; 0 means logtail.DefaultMaxLine
	Cursors CursorStore // may be nil: then every start begins at the journal's end
	// Command is the journalctl argv to which the flags are appended;
	// nil means {"journalctl"}. Tests inject a fake. No shell is involved.
	Command []string
}

// Stats is a snapshot of a Source's counters and health.
type Stats struct {
	Lines     uint64 // observations emitted
	Truncated uint64 // of which cut at MaxLine
	Dropped   uint64 // entries skipped: not JSON, no timestamp, or over the JSON line limit
	Restarts  uint64 // journalctl runs after the first
	Following bool   // journalctl is running
	LastLine  time.Time
	Cursor    string // of the last entry emitted
	Err       string // the last failure (journalctl's exit and last stderr line), empty while healthy
}

var unitRE = regexp.MustCompile(`^[A-Za-z0-9@._:-]+$`)

// cursorRE accepts journald cursors ("s=…;i=…;b=…;m=…;t=…;x=…").
var cursorRE = regexp.MustCompile(`^[A-Za-z0-9=;_-]{1,512}$`)

const (
	minBackoff = time.Second
	maxBackoff = time.Minute
	// healthyRun resets the backoff: journalctl ran this long.
	healthyRun = time.Minute
	// cursorFailures is how many runs in a row with a saved cursor may
	// fail without one entry before the cursor is dropped (vacuumed or
	// corrupt journal: start at the end rather than never; SECURITY C9).
	cursorFailures = 3
	stderrMax      = 512
	// saveGap spaces cursor saves on a busy journal; a crash re-reads at
	// most this much. Stopping always saves.
	saveGap = time.Second
)

// Source follows the journal through a supervised journalctl child.
// Create it with New, then call Run once.
type Source struct {
	key      string
	units    []string
	maxLine  int
	jsonMax  int
	cursors  CursorStore
	command  []string
	backoff0 time.Duration // minBackoff; tests shorten it

	running atomic.Bool

	mu    sync.Mutex
	stats Stats

	// Owned by Run's goroutine.
	cursor  string    // of the last entry sent
	saved   string    // what the store last accepted
	savedAt time.Time // when, to save at most once per saveGap
}

// New checks cfg and returns a Source for it.
func New(cfg Config) (*Source, error) {
	for _, u := range cfg.Units {
		if len(u) > 256 || !unitRE.MatchString(u) {
			return nil, fmt.Errorf("new journal source: unit %q: want letters, digits and @._:-", u)
		}
	}
	maxLine := cfg.MaxLine
	switch {
	case maxLine == 0:
		maxLine = logtail.DefaultMaxLine
	case maxLine < 0 || maxLine > 16<<20:
		return nil, fmt.Errorf("new journal source: max line %d: must be between 1 and %d", maxLine, 16<<20)
	}
	command := cfg.Command
	if len(command) == 0 {
		command = []string{"journalctl"}
	}
	if command[0] == "" {
		return nil, errors.New("new journal source: empty command")
	}
	var units []string // in config order, without repeats
	for _, u := range cfg.Units {
		if !slices.Contains(units, u) {
			units = append(units, u)
		}
	}
	s := &Source{
		key:      "journal",
		units:    units,
		maxLine:  maxLine,
		jsonMax:  8*maxLine + 64<<10, // MESSAGE as an array of bytes is up to 4 bytes per byte
		cursors:  cfg.Cursors,
		command:  slices.Clone(command),
		backoff0: minBackoff,
	}
	if len(units) > 0 {
		s.key = "journal:" + strings.Join(units, ",")
	}
	return s, nil
}

// Key is the source's name, the Source of its observations, and its key in
// the CursorStore: "journal:" + the units in config order joined by ",",
// or "journal" without units.
func (s *Source) Key() string { return s.key }

// Stats returns a snapshot; it is safe to call while Run runs.
func (s *Source) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// argv is the journalctl command line: after the saved cursor, else from
// the journal's end (no replay of history), restricted to the units.
func (s *Source) argv() []string {
	a := slices.Clone(s.command)
	a = append(a, "--output=json", "--follow", "--no-pager", "--all")
	if s.cursor != "" {
		a = append(a, "--after-cursor="+s.cursor)
	} else {
		a = append(a, "--lines=0")
	}
	for _, u := range s.units {
		a = append(a, "_SYSTEMD_UNIT="+u)
	}
	return a
}

// Run follows the journal until ctx is done, sending each entry to out as
// Parse makes it, with Source set to Key.
// It never closes out and returns nil when ctx is done: a journalctl that
// fails or exits is restarted with backoff (1 s doubling to 1 min, reset
// after a run that produced entries or lasted a minute), and its failure
// is reported in Stats.Err. It returns an error only for misuse (a nil
// out, a second Run).
func (s *Source) Run(ctx context.Context, out chan<- event.Observation) error {
	if out == nil {
		return fmt.Errorf("run journal source %s: nil channel", s.key)
	}
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("run journal source %s: already running", s.key)
	}
	if s.cursors != nil {
		c, ok, err := s.cursors.LoadCursor(s.key)
		switch {
		case err != nil:
			s.setErr(fmt.Sprintf("load cursor %s: %v", s.key, err))
		case ok && !cursorRE.MatchString(c):
			s.setErr(fmt.Sprintf("load cursor %s: malformed, starting at the end", s.key))
		case ok:
			s.cursor, s.saved = c, c
		}
	}
	backoff := s.backoff0
	failures := 0 // runs in a row that used a cursor and gave nothing
	for runs := 0; ; runs++ {
		if runs > 0 {
			s.update(func(st *Stats) { st.Restarts++ })
		}
		hadCursor := s.cursor != ""
		start := time.Now()
		n, err := s.runOnce(ctx, out)
		if ctx.Err() != nil {
			return nil
		}
		s.setErr(err.Error())
		if n > 0 || time.Since(start) >= healthyRun {
			backoff, failures = s.backoff0, 0
		} else if hadCursor {
			if failures++; failures >= cursorFailures {
				s.cursor, failures = "", 0
				s.setErr(err.Error() + "; dropped the saved cursor, following from the end")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// runOnce runs journalctl until it exits or ctx is done, and returns how
// many entries it sent and why it ended.
func (s *Source) runOnce(ctx context.Context, out chan<- event.Observation) (int, error) {
	argv := s.argv()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	cmd.SysProcAttr = sysProcAttr()
	stderr := &lastLine{}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return 0, fmt.Errorf("run %s: %w", argv[0], err)
	}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("run %s: %w", argv[0], err)
	}
	s.update(func(st *Stats) { st.Following = true })
	defer s.update(func(st *Stats) { st.Following = false })

	n := 0
	done := ctx.Done()
	// The batch ends when the reader is asked for more: save the cursor
	// before possibly blocking on journalctl.
	r := &beforeRead{r: stdout, fn: func() { s.save(false) }}
	serr := logtail.Scan(r, s.jsonMax, func(line []byte, cut bool) error {
		if cut {
			s.update(func(st *Stats) { st.Dropped++ })
			return nil
		}
		o, cursor, err := parse(line, s.maxLine)
		o.Source = s.key
		if err != nil {
			if cursor != "" && errors.Is(err, ErrNoMessage) {
				s.cursor = cursor
			} else {
				s.update(func(st *Stats) { st.Dropped++ })
			}
			return nil
		}
		select {
		case out <- o:
		case <-done:
			return ctx.Err()
		}
		if n++; n == 1 {
			s.setErr("") // healthy again
		}
		if cursor != "" {
			s.cursor = cursor
		}
		s.update(func(st *Stats) {
			st.Lines++
			if o.Truncated {
				st.Truncated++
			}
			st.LastLine = time.Now()
			st.Cursor = s.cursor
		})
		return nil
	})
	s.save(true)
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return n, ctx.Err()
	}
	switch {
	case serr != nil:
		err = fmt.Errorf("read %s: %w", argv[0], serr)
	case werr != nil:
		err = fmt.Errorf("%s: %w", argv[0], werr)
	default:
		err = fmt.Errorf("%s: exited", argv[0])
	}
	if msg := stderr.String(); msg != "" {
		err = fmt.Errorf("%w: %s", err, msg)
	}
	return n, err
}

// save stores the cursor of the last entry sent, when it moved: after
// each batch, at most once per saveGap unless forced.
func (s *Source) save(force bool) {
	if s.cursors == nil || s.cursor == "" || s.cursor == s.saved {
		return
	}
	if !force && time.Since(s.savedAt) < saveGap {
		return
	}
	if err := s.cursors.SaveCursor(s.key, s.cursor); err != nil {
		s.setErr(fmt.Sprintf("save cursor %s: %v", s.key, err))
		return
	}
	s.saved, s.savedAt = s.cursor, time.Now()
}

func (s *Source) update(fn func(*Stats)) {
	s.mu.Lock()
	fn(&s.stats)
	s.mu.Unlock()
}

func (s *Source) setErr(msg string) { s.update(func(st *Stats) { st.Err = msg }) }

// beforeRead calls fn before each Read of r.
type beforeRead struct {
	r  io.Reader
	fn func()
}

func (b *beforeRead) Read(p []byte) (int, error) {
	b.fn()
	return b.r.Read(p)
}

// lastLine keeps the last non-empty line written to it, cut at stderrMax
// bytes: journalctl's complaint when it fails.
type lastLine struct {
	mu   sync.Mutex
	cur  []byte // the line being written
	last string
}

func (l *lastLine) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range p {
		if c == '\n' {
			if s := strings.TrimSpace(string(l.cur)); s != "" {
				l.last = s
			}
			l.cur = l.cur[:0]
			continue
		}
		if len(l.cur) < stderrMax {
			l.cur = append(l.cur, c)
		}
	}
	return len(p), nil
}

func (l *lastLine) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := strings.TrimSpace(string(l.cur)); s != "" {
		return s
	}
	return l.last
}
