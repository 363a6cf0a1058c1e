package logtail

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/moat-sec/moat/internal/event"
)

// DefaultPoll is the stat poll interval when a Config gives none.
const DefaultPoll = time.Second

const (
	maxRetired = 4       // rotated-away files still read for late writes
	saveEvery  = 1 << 20 // save the offset at least every this many bytes of a long read
)

// Offset is where a file was read up to, as persisted between runs.
type Offset struct {
	Dev, Ino uint64 // the file's identity; a file at the same path with another identity is a new file
	// Pos is the first byte not yet accounted for: the start of the next
	// line, or a point inside a line whose first MaxLine bytes were already
	// emitted (a resume then skips to that line's end).
	Pos  int64
	Size int64 // the file's size when saved
	// Mark is the FNV-1a hash of the (up to 64) bytes just before Pos, so
	// that a resume notices a file rewritten in place; 0 means unknown.
	Mark uint64
}

// OffsetStore persists offsets by path (the daemon backs it with SQLite).
type OffsetStore interface {
	LoadOffset(path string) (Offset, bool, error)
	SaveOffset(path string, o Offset) error
}

// Config is one file to follow.
type Config struct {
	Path    string        // absolute path of one file (no globs); a symlink is followed to its target
	MaxLine int           // bytes; 0 means DefaultMaxLine. Longer lines are cut (Observation.Truncated)
	Poll    time.Duration // stat poll, also the fallback when inotify says nothing; 0 means DefaultPoll
	// Linger is how long a rotated-away or deleted file is still read after
	// its last write, for writers that reopen late; 0 means 10×Poll.
	Linger  time.Duration
	Offsets OffsetStore      // may be nil: then every start is a first sight (EOF)
	Now     func() time.Time // receive time of lines; nil means time.Now
}

// Stats is a snapshot of a Tailer's counters and health.
type Stats struct {
	Lines       uint64 // observations emitted
	Truncated   uint64 // of which cut at MaxLine
	Rotations   uint64 // every kind: rename, delete, symlink swap, truncation
	Truncations uint64 // of which in place (copytruncate, or a rewrite of the same file)
	Suppressed  uint64 // lines of a rewritten file dropped as already read
	Following   bool   // the file at Path is open
	Watching    bool   // inotify watches are in place (else poll only)
	// Forgeable: the file, or its directory (not sticky), is group- or
	// world-writable, so its lines may be forged (SECURITY R3).
	Forgeable bool
	LastLine  time.Time
	Err       string // the current problem, e.g. "missing"; empty when following normally
}

// StatusMissing is Stats.Err while no file exists at Path (not an error: the
// tailer waits for it, and reads it from its start when it appears).
const StatusMissing = "missing"

// Tailer follows one file. Create it with New, then call Run once.
//
// It watches the file's directory (and its symlink target's) with inotify,
// and also stats the path every Poll, so that it works where inotify says
// nothing (NFS, some overlays) and after missed events. A file is known by
// its (device, inode), never by its name. Guarantees, per case:
//
//   - First sight (no saved offset): start at the end; history, including
//     an unfinished last line, is not replayed.
//   - Restart with a saved offset for the same file: resume there; lines
//     written while stopped are read once. If the file was rotated by
//     rename meanwhile, the rest of the old one is read from path.1 when it
//     is there (same inode), then the new file from 0. If it was truncated
//     meanwhile, the new content is read from 0. After a clean stop nothing
//     is read twice; after a crash, at most the lines after the last save
//     (saves are at most one per Poll).
//   - Rename + create, delete + recreate, symlink swap: the old file is read
//     to its end, then the new one from 0; the old one is still read for
//     Linger after its last write, for writers that reopen late. Zero lines
//     lost or duplicated. Lines written to an old file before a line of the
//     new one are sent before it (unless written after Linger).
//   - Copytruncate (size below the read position, or the bytes before it
//     changed): counted in Stats.Truncations, then read from 0. Lines that
//     were appended after the last read and before the truncate are read
//     from the copy when it is path.1 and its bytes agree with what was
//     read; with another copy name they are lost. Lines written between
//     the copy and the truncate are in neither file: that loss is inherent
//     to copytruncate. Two truncations between checks lose the first
//     cycle's unread lines.
//   - Rewritten in place (SECURITY A15): as copytruncate, and leading lines
//     that are among the last 1024 read are dropped (Stats.Suppressed), so
//     a capped log rewritten per event yields only its new lines. The
//     catch: a genuinely repeated identical line right after a truncation
//     is dropped too.
//   - A file moved away and back is the same file, continued, not reread.
//   - A missing file is not an error: Stats.Err is StatusMissing, and the
//     file is read from 0 when it appears.
//
// A line is what ends at '\n'. One physical line is one Observation; NUL,
// '\r' and invalid UTF-8 stay in it as they are. A line over MaxLine bytes
// is sent cut at MaxLine (Truncated) as soon as that much of it is seen,
// and its rest is skipped. A last line without '\n' is held until it is
// completed (or, for a rotated-away file, until the file is let go).
// Memory is bounded: a 64 KiB buffer, and MaxLine per open file (at most
// 6 open files).
type Tailer struct {
	path, source string
	maxLine      int
	poll, linger time.Duration
	offsets      OffsetStore
	now          func() time.Time

	running   atomic.Bool
	noInotify bool // tests: poll only, as on filesystems without inotify

	mu    sync.Mutex
	stats Stats

	// Owned by Run's goroutine.
	w       *fsnotify.Watcher // nil: poll only
	cur     *file
	retired []*file
	target  string // the resolved path of cur (differs from path for a symlink)
	buf     []byte
	recent  recent
	saved   Offset    // what the store last accepted, to skip redundant saves
	savedAt time.Time // when, to save at most once per poll interval
}

// New checks cfg and returns a Tailer for it.
func New(cfg Config) (*Tailer, error) {
	if cfg.Path == "" || !filepath.IsAbs(cfg.Path) {
		return nil, fmt.Errorf("new tailer: path %q: must be absolute", cfg.Path)
	}
	maxLine, err := checkMaxLine(cfg.MaxLine)
	if err != nil {
		return nil, fmt.Errorf("new tailer %s: %w", cfg.Path, err)
	}
	if cfg.Poll < 0 || cfg.Linger < 0 {
		return nil, fmt.Errorf("new tailer %s: negative poll or linger", cfg.Path)
	}
	t := &Tailer{
		path:    filepath.Clean(cfg.Path),
		maxLine: maxLine,
		poll:    cfg.Poll,
		linger:  cfg.Linger,
		offsets: cfg.Offsets,
		now:     cfg.Now,
	}
	t.source = "file:" + t.path
	if t.poll == 0 {
		t.poll = DefaultPoll
	}
	if t.linger == 0 {
		t.linger = 10 * t.poll
	}
	if t.now == nil {
		t.now = time.Now
	}
	t.recent.seed = newSeed()
	return t, nil
}

// Stats returns a snapshot; it is safe to call while Run runs.
func (t *Tailer) Stats() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
}

// Run follows the file until ctx is done, sending each line to out. It
// never closes out, and returns nil when ctx is done: missing files,
// unreadable files and store failures are retried and reported in
// Stats.Err, never returned. It returns an error only for misuse (a nil
// out, a second Run).
func (t *Tailer) Run(ctx context.Context, out chan<- event.Observation) error {
	if out == nil {
		return fmt.Errorf("run tailer %s: nil channel", t.path)
	}
	if !t.running.CompareAndSwap(false, true) {
		return fmt.Errorf("run tailer %s: already running", t.path)
	}
	t.buf = make([]byte, readSize)
	defer t.closeAll()

	var (
		events <-chan fsnotify.Event
		errs   <-chan error
	)
	if w, err := fsnotify.NewWatcher(); err == nil && !t.noInotify {
		t.w = w
		defer w.Close()
		events, errs = w.Events, w.Errors
	}

	if err := t.start(ctx, out); err != nil {
		return t.stop()
	}
	t.watch()

	tick := time.NewTicker(t.poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return t.stop()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if !t.relevant(ev) {
				continue
			}
			drainEvents(events)
		case _, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// Overflow or a watch lost: reconcile by stat now.
			drainEvents(events)
		case <-tick.C:
			t.watch()
		}
		if err := t.check(ctx, out); err != nil {
			return t.stop()
		}
	}
}

// drainEvents swallows events already queued: one check covers them all.
func drainEvents(events <-chan fsnotify.Event) {
	for range 1024 {
		select {
		case _, ok := <-events:
			if !ok {
				return
			}
		default:
			return
		}
	}
}

func (t *Tailer) relevant(ev fsnotify.Event) bool {
	if ev.Name == t.path || ev.Name == t.target || t.cur == nil {
		return true
	}
	// A rotated-away file is written under a name we do not know.
	return len(t.retired) > 0
}

// watch puts inotify watches on the directories of path and of its
// symlink target, and drops stale ones. Failures leave the poll to do the
// work; the next tick retries.
func (t *Tailer) watch() {
	w := t.w
	if w == nil {
		t.update(func(s *Stats) { s.Watching = false })
		return
	}
	want := []string{filepath.Dir(t.path)}
	if t.target != "" && filepath.Dir(t.target) != want[0] {
		want = append(want, filepath.Dir(t.target))
	}
	have := w.WatchList()
	ok := true
	for _, d := range want {
		if !slices.Contains(have, d) {
			if err := w.Add(d); err != nil {
				ok = false
			}
		}
	}
	for _, d := range have {
		if !slices.Contains(want, d) {
			_ = w.Remove(d)
		}
	}
	t.update(func(s *Stats) { s.Watching = ok })
}

// check is one reconciliation: read what the rotated-away files and the
// current file have gained, detect truncation, then look at what path
// names now.
//
// Order: a line written to an old file before a line written to the new
// one is sent first. The new file's size is taken before the old files are
// read, and the new file is read only up to it: any line within it was
// written after every old-file line the old files' reads could miss.
func (t *Tailer) check(ctx context.Context, out chan<- event.Observation) error {
	limit := int64(-1)
	if t.cur != nil {
		var err error
		if limit, err = t.rewound(ctx, t.cur, out); err != nil {
			return err
		}
		if len(t.retired) == 0 {
			limit = -1
		}
	}
	if err := t.drainRetired(ctx, out); err != nil {
		return err
	}
	if err := t.expire(ctx, out); err != nil {
		return err
	}
	if t.cur != nil {
		if err := t.drain(ctx, t.cur, out, limit); err != nil {
			return err
		}
	}
	if err := t.reopen(ctx, out); err != nil {
		return err
	}
	t.save(false)
	return nil
}

func (t *Tailer) drainRetired(ctx context.Context, out chan<- event.Observation) error {
	for _, r := range t.retired {
		if err := t.drain(ctx, r, out, -1); err != nil {
			return err
		}
	}
	return nil
}

// expire closes rotated-away files nobody has written to for Linger, and
// the oldest beyond maxRetired; a last line without '\n' is emitted then.
func (t *Tailer) expire(ctx context.Context, out chan<- event.Observation) error {
	now := time.Now()
	keep := t.retired[:0]
	for i, r := range t.retired {
		if now.Sub(r.lastRead) < t.linger && len(t.retired)-i <= maxRetired {
			keep = append(keep, r)
			continue
		}
		if err := t.flush(ctx, r, out); err != nil {
			return err
		}
		r.f.Close()
	}
	clear(t.retired[len(keep):])
	t.retired = keep
	return nil
}

func (t *Tailer) retire(f *file) {
	f.lastRead = time.Now()
	t.retired = append(t.retired, f)
}

// rewound fstats f and, when f shrank below what was read (copytruncate)
// or the bytes before the read position changed (a rewrite in place),
// handles that and positions f at 0. It returns f's size.
func (t *Tailer) rewound(ctx context.Context, f *file, out chan<- event.Observation) (int64, error) {
	fi, err := f.f.Stat()
	if err != nil {
		t.setErr(fmt.Sprintf("stat %s: %v", t.path, err))
		return -1, nil
	}
	f.size, f.mtime = fi.Size(), fi.ModTime()
	if f.size < f.pos || !f.markHolds() {
		return f.size, t.truncated(ctx, f, out)
	}
	return f.size, nil
}

// truncated handles a file cut or rewritten in place. What was appended
// after the last read and before the cut exists only in the copy that
// copytruncate made; when that copy is path.1 (logrotate's default name)
// and agrees with what was read, it is read from there. The file is then
// read from 0, dropping leading lines that were already read (a capped log
// rewritten with its old lines plus a new one).
func (t *Tailer) truncated(ctx context.Context, f *file, out chan<- event.Observation) error {
	t.update(func(s *Stats) { s.Rotations++; s.Truncations++ })
	if f.done > 0 && f.markPos == f.done && f.mark != 0 { // the mark of the bytes before the cut
		if err := t.recoverCopy(ctx, f.dev, f.ino, f.done, f.mark, f.split.skipping, out); err != nil {
			return err
		}
	}
	f.rewind()
	f.suppress = true
	return nil
}

// recoverCopy reads path.1 from pos to its end when it is a different file
// whose bytes before pos hash to mark: the copy copytruncate made of the
// file being followed.
func (t *Tailer) recoverCopy(ctx context.Context, dev, ino uint64, pos int64, mark uint64, skipping bool, out chan<- event.Observation) error {
	c, err := t.openFile(t.path + ".1")
	if err != nil {
		return nil // no copy to recover from
	}
	defer c.f.Close()
	if (c.dev == dev && c.ino == ino) || c.size <= pos || mark == 0 {
		return nil
	}
	c.pos, c.done = pos, pos
	if m, ok := c.markAt(pos); !ok || m != mark {
		return nil
	}
	c.split.skipping = skipping
	if err := t.drain(ctx, c, out, -1); err != nil {
		return err
	}
	return t.flush(ctx, c, out)
}

// recoverRenamed reads path.1 from o.Pos when it is the file o was saved
// for: rotated by rename while the daemon was down.
func (t *Tailer) recoverRenamed(ctx context.Context, o Offset, out chan<- event.Observation) error {
	c, err := t.openFile(t.path + ".1")
	if err != nil {
		return nil // no copy to recover from
	}
	defer c.f.Close()
	if c.dev != o.Dev || c.ino != o.Ino || c.size < o.Pos {
		return nil
	}
	if !c.resume(o) {
		return nil
	}
	if err := t.drain(ctx, c, out, -1); err != nil {
		return err
	}
	return t.flush(ctx, c, out)
}

// reopen looks at what path names now: missing, the file already open, or
// a new file (rename, delete and recreate, symlink swap), read from 0
// once the old one has been read to its end.
func (t *Tailer) reopen(ctx context.Context, out chan<- event.Observation) error {
	fi, err := os.Stat(t.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			t.lost(StatusMissing)
		} else {
			t.setErr(fmt.Sprintf("stat %s: %v", t.path, err))
		}
		return nil
	}
	if !fi.Mode().IsRegular() {
		t.lost("not a regular file")
		return nil
	}
	dev, ino, _ := ident(fi)
	if t.cur != nil && dev == t.cur.dev && ino == t.cur.ino {
		t.following()
		return nil
	}
	n, err := t.openFile(t.path)
	if err != nil {
		t.lostErr(err)
		return nil
	}
	if t.cur != nil && n.dev == t.cur.dev && n.ino == t.cur.ino {
		n.f.Close()
		return nil
	}
	if i := slices.IndexFunc(t.retired, func(r *file) bool { return r.dev == n.dev && r.ino == n.ino }); i >= 0 {
		// A file we still hold came back (renamed back, link swapped
		// back): go on from where it was, never from 0 again.
		n.f.Close()
		n = t.retired[i]
		t.retired = slices.Delete(t.retired, i, i+1)
		n.size = -1 // limit below: read it to its end
	}
	// n's size is known: read the old files to their end, then n up to it.
	if t.cur != nil {
		t.retire(t.cur)
		t.cur = nil
		t.update(func(s *Stats) { s.Rotations++ })
	}
	t.adopt(n)
	if err := t.drainRetired(ctx, out); err != nil {
		return err
	}
	limit := n.size
	if limit < 0 {
		limit = -1
	}
	return t.drain(ctx, n, out, limit)
}

// lost records that path names no readable file; the open file, if any,
// is kept reading as a rotated-away one.
func (t *Tailer) lost(why string) {
	if t.cur != nil {
		t.retire(t.cur)
		t.cur = nil
		t.target = ""
		t.update(func(s *Stats) { s.Rotations++ })
	}
	t.update(func(s *Stats) { s.Following = false; s.Err = why })
}

func (t *Tailer) lostErr(err error) {
	if errors.Is(err, fs.ErrNotExist) {
		t.lost(StatusMissing)
		return
	}
	t.lost(err.Error())
}

func (t *Tailer) adopt(f *file) {
	t.cur = f
	t.target, _ = filepath.EvalSymlinks(t.path)
	t.watch()
	forgeable := false
	if fi, err := f.f.Stat(); err == nil && fi.Mode().Perm()&0o022 != 0 {
		forgeable = true
	}
	for _, d := range []string{filepath.Dir(t.path), filepath.Dir(t.target)} {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
			forgeable = true
		}
	}
	t.update(func(s *Stats) { s.Forgeable = forgeable })
	t.following()
}

func (t *Tailer) following() {
	t.update(func(s *Stats) { s.Following = true; s.Err = "" })
}

// start opens the file at Run's start: at EOF on first sight, at the
// saved offset when the same file is still there, and after reading what
// the old file gained when it was rotated while the daemon was down.
func (t *Tailer) start(ctx context.Context, out chan<- event.Observation) error {
	var (
		saved Offset
		ok    bool
	)
	if t.offsets != nil {
		var err error
		saved, ok, err = t.offsets.LoadOffset(t.path)
		if err != nil {
			t.setErr(fmt.Sprintf("load offset %s: %v", t.path, err))
			ok = false
		}
		t.saved = saved
	}
	f, err := t.openFile(t.path)
	switch {
	case err != nil:
		if ok {
			if err := t.recoverRenamed(ctx, saved, out); err != nil {
				return err
			}
		}
		t.lostErr(err)
		return nil
	case ok && f.dev == saved.Dev && f.ino == saved.Ino:
		if f.size < saved.Pos || !f.resume(saved) {
			// Truncated or rewritten while the daemon was down.
			t.update(func(s *Stats) { s.Rotations++; s.Truncations++ })
			if err := t.recoverCopy(ctx, saved.Dev, saved.Ino, saved.Pos, saved.Mark, false, out); err != nil {
				f.f.Close()
				return err
			}
			f.rewind()
		}
	case ok:
		// Rotated while the daemon was down: what the old file gained is
		// in path.1 if anywhere; the new file is all unread.
		t.update(func(s *Stats) { s.Rotations++ })
		if err := t.recoverRenamed(ctx, saved, out); err != nil {
			f.f.Close()
			return err
		}
	default:
		f.seekEnd()
	}
	t.adopt(f)
	if err := t.drain(ctx, f, out, -1); err != nil {
		return err
	}
	t.save(true)
	return nil
}

// save stores cur's offset when it moved: after a batch of lines, but at
// most once per poll interval unless forced (a new file, a long read,
// shutdown), so that a busy log does not cost a store write per line. A
// crash re-reads at most what came after the last save.
func (t *Tailer) save(force bool) {
	f := t.cur
	if t.offsets == nil || f == nil {
		return
	}
	if f.dev == t.saved.Dev && f.ino == t.saved.Ino && f.done == t.saved.Pos {
		return
	}
	if !force && time.Since(t.savedAt) < t.poll {
		return
	}
	o := Offset{Dev: f.dev, Ino: f.ino, Pos: f.done, Size: max(f.size, f.pos), Mark: f.markHash()}
	if err := t.offsets.SaveOffset(t.path, o); err != nil {
		t.setErr(fmt.Sprintf("save offset %s: %v", t.path, err))
		return
	}
	t.saved, t.savedAt = o, time.Now()
}

// stop saves where reading stopped; lines sent are accounted for, the
// line whose send was interrupted is not.
func (t *Tailer) stop() error {
	t.save(true)
	return nil
}

func (t *Tailer) closeAll() {
	if t.cur != nil {
		t.cur.f.Close()
		t.cur = nil
	}
	for _, r := range t.retired {
		r.f.Close()
	}
	t.retired = nil
	t.update(func(s *Stats) { s.Following = false })
}

func (t *Tailer) update(fn func(*Stats)) {
	t.mu.Lock()
	fn(&t.stats)
	t.mu.Unlock()
}

func (t *Tailer) setErr(msg string) { t.update(func(s *Stats) { s.Err = msg }) }
