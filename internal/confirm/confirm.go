package confirm

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/moat-sec/moat/internal/nft"
)

// Applier puts a table into the kernel or takes it out.
type Applier interface {
	Replace(t *nft.Table) error
	Delete(table string) error
}

// Store keeps the apply state on disk:
//
//	StateDir/applied.json  the ruleset that is live and confirmed (restored at boot)
//	RunDir/pending.json    an unconfirmed apply: the ruleset to go back to, and when
//	RunDir/lock            serialises appliers, confirmers and timers
type Store struct {
	StateDir, RunDir string
	Now              func() time.Time
}

// Pending is an apply that waits for `moat confirm`.
type Pending struct {
	Token    string     `json:"token"`
	Deadline time.Time  `json:"deadline"`
	Table    string     `json:"table"`
	Prev     *nft.Table `json:"prev"` // nil: there was no table, rollback removes it
	Next     *nft.Table `json:"next"`
	TimerPID int        `json:"timer_pid,omitempty"`
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Store) appliedPath() string { return filepath.Join(s.StateDir, "applied.json") }
func (s *Store) namePath() string    { return filepath.Join(s.StateDir, "applied.table") }
func (s *Store) pendingPath() string { return filepath.Join(s.RunDir, "pending.json") }

// Lock takes the exclusive lock that serialises every change of state. The
// returned function releases it.
func (s *Store) Lock() (func(), error) {
	if err := os.MkdirAll(s.RunDir, 0o700); err != nil {
		return nil, fmt.Errorf("confirm: create run dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.RunDir, "lock"), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("confirm: open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("confirm: lock: %w", err)
	}
	return func() { f.Close() }, nil
}

// Applied returns the live, confirmed ruleset, or nil if there is none.
func (s *Store) Applied() (*nft.Table, error) {
	var t nft.Table
	if err := readJSON(s.appliedPath(), &t); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("confirm: read applied ruleset: %w", err)
	}
	return &t, nil
}

// SetApplied records t as the live, confirmed ruleset; nil records that
// there is none.
func (s *Store) SetApplied(t *nft.Table) error {
	if t == nil {
		for _, p := range []string{s.appliedPath(), s.namePath()} {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("confirm: forget applied ruleset: %w", err)
			}
		}
		return nil
	}
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return fmt.Errorf("confirm: create state dir: %w", err)
	}
	if err := writeJSON(s.appliedPath(), t); err != nil {
		return err
	}
	return writeJSON(s.namePath(), t.Name)
}

// EncodeApplied encodes t the way SetApplied stores it, so that callers
// can do it while the kernel applies t (it takes a while for big tables).
func EncodeApplied(t *nft.Table) ([]byte, error) {
	data, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("confirm: encode applied ruleset: %w", err)
	}
	return data, nil
}

// SetAppliedEncoded records the ruleset named name, encoded by
// EncodeApplied, as the live, confirmed one.
func (s *Store) SetAppliedEncoded(name string, data []byte) error {
	if err := os.MkdirAll(s.StateDir, 0o700); err != nil {
		return fmt.Errorf("confirm: create state dir: %w", err)
	}
	if err := writeFile(s.appliedPath(), data); err != nil {
		return err
	}
	return writeJSON(s.namePath(), name)
}

// AppliedName returns the name of the live, confirmed table ("" if none)
// without decoding the whole ruleset.
func (s *Store) AppliedName() (string, error) {
	var name string
	if err := readJSON(s.namePath(), &name); err == nil {
		return name, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("confirm: read applied table name: %w", err)
	}
	t, err := s.Applied() // written by an older moat: no name file
	if err != nil || t == nil {
		return "", err
	}
	return t.Name, nil
}

// Pending returns the unconfirmed apply, or nil.
func (s *Store) Pending() (*Pending, error) {
	var p Pending
	if err := readJSON(s.pendingPath(), &p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("confirm: read pending apply: %w", err)
	}
	return &p, nil
}

func (s *Store) clearPending() error {
	if err := os.Remove(s.pendingPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("confirm: clear pending apply: %w", err)
	}
	return nil
}

// Begin records an unconfirmed apply of next that rolls back to prev at
// now+wait, and starts the timer that will do it: a detached process (exe
// with args, then the token appended) in its own session, so that it outlives
// the shell and SSH session that ran `moat up`. The caller holds the lock,
// and applies next after Begin returns.
func (s *Store) Begin(prev, next *nft.Table, wait time.Duration, exe string, args []string) (*Pending, error) {
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, fmt.Errorf("confirm: token: %w", err)
	}
	p := &Pending{Token: hex.EncodeToString(tok), Deadline: s.now().Add(wait), Table: next.Name, Prev: prev, Next: next}
	if old, err := s.Pending(); err == nil && old != nil {
		// An earlier apply is still unconfirmed: going back means going back
		// to what was confirmed before it, and its timer is superseded.
		p.Prev = old.Prev
		stopTimer(old.TimerPID)
	}
	if err := writeJSON(s.pendingPath(), p); err != nil {
		return nil, err
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("confirm: open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	cmd := exec.Command(exe, append(args, p.Token)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, devnull, devnull
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		s.clearPending()
		return nil, fmt.Errorf("confirm: start rollback timer: %w", err)
	}
	p.TimerPID = cmd.Process.Pid
	cmd.Process.Release()
	if err := writeJSON(s.pendingPath(), p); err != nil {
		return nil, err
	}
	return p, nil
}

// Confirm makes the pending apply permanent. It fails if nothing is pending
// (for instance because the timer already rolled back).
func (s *Store) Confirm() (*Pending, error) {
	p, err := s.Pending()
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, ErrNothingPending
	}
	if err := s.SetApplied(p.Next); err != nil {
		return nil, err
	}
	if err := s.clearPending(); err != nil {
		return nil, err
	}
	stopTimer(p.TimerPID)
	return p, nil
}

// Cancel forgets the pending apply without rolling back (a plain `moat up`
// or `moat down` supersedes it).
func (s *Store) Cancel() error {
	p, err := s.Pending()
	if err != nil || p == nil {
		return err
	}
	stopTimer(p.TimerPID)
	return s.clearPending()
}

// ErrNothingPending is returned by Confirm when no apply awaits confirmation.
var ErrNothingPending = errors.New("no apply is waiting for confirmation (it may have been rolled back already)")

// RunTimer is the body of the detached timer process: it sleeps until the
// deadline of the pending apply with this token and, if that apply is still
// unconfirmed, restores the previous ruleset. sleep returns false if it was
// interrupted (by `moat confirm`, which signals the timer, or by shutdown);
// then nothing is rolled back. It returns whether it rolled back.
func (s *Store) RunTimer(token string, a Applier, sleep func(time.Duration) bool) (bool, error) {
	p, err := s.Pending()
	if err != nil || p == nil || p.Token != token {
		return false, err
	}
	if !sleep(p.Deadline.Sub(s.now())) {
		return false, nil
	}
	unlock, err := s.Lock()
	if err != nil {
		return false, err
	}
	defer unlock()
	p, err = s.Pending()
	if err != nil || p == nil || p.Token != token {
		return false, err // confirmed, cancelled or superseded meanwhile
	}
	if err := Rollback(a, p); err != nil {
		return false, err
	}
	return true, s.clearPending()
}

// Rollback restores the ruleset that was live before p.
func Rollback(a Applier, p *Pending) error {
	if p.Prev == nil {
		if err := a.Delete(p.Table); err != nil {
			return fmt.Errorf("confirm: roll back (remove table): %w", err)
		}
		return nil
	}
	if err := a.Replace(p.Prev); err != nil {
		return fmt.Errorf("confirm: roll back: %w", err)
	}
	return nil
}

func stopTimer(pid int) {
	if pid > 0 {
		// The timer re-checks the token under the lock, so a timer that
		// survives this (another process reused the pid, say) does nothing.
		syscall.Kill(pid, syscall.SIGTERM)
	}
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// writeJSON replaces path atomically, so a crash never leaves half a file.
func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("confirm: encode %s: %w", filepath.Base(path), err)
	}
	return writeFile(path, data)
}

// writeFile replaces path atomically with data.
func writeFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("confirm: write %s: %w", filepath.Base(path), err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("confirm: write %s: %w", filepath.Base(path), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("confirm: write %s: %w", filepath.Base(path), err)
	}
	tmp.Close()
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("confirm: write %s: %w", filepath.Base(path), err)
	}
	return nil
}
