package logtail

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"os"
	"time"

	"github.com/moat-sec/moat/internal/event"
)

// markLen is how many bytes before the read position Offset.Mark covers.
const markLen = 64

// file is one open file and how far it was read.
type file struct {
	f        *os.File
	dev, ino uint64
	pos      int64 // the next byte to read
	done     int64 // the first byte no emitted line accounts for: pos minus the held partial line
	split    splitter
	size     int64     // at the last fstat
	mtime    time.Time // at the last fstat
	mark     uint64    // hash of the markLen bytes before markPos, when markPos == done
	markPos  int64
	suppress bool      // after a rewrite: drop leading lines already read (A15)
	skipNUL  bool      // after a truncation: skip the hole a writer without O_APPEND leaves
	lastRead time.Time // when bytes last came (wall clock, not Config.Now); a rotated-away file lingers while written
}

// errNotRegular refuses a FIFO, device or directory at a log's path.
var errNotRegular = errors.New("not a regular file")

// openFile opens name if it is a regular file.
func (t *Tailer) openFile(name string) (*file, error) {
	fd, err := os.OpenFile(name, openFlags, 0)
	if err != nil {
		return nil, err
	}
	fi, err := fd.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errNotRegular
	}
	var dev, ino uint64
	if err == nil {
		var ok bool
		if dev, ino, ok = ident(fi); !ok {
			err = errors.New("no device and inode")
		}
	}
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return &file{
		f: fd, dev: dev, ino: ino,
		split:    splitter{max: t.maxLine},
		size:     fi.Size(),
		mtime:    fi.ModTime(),
		lastRead: time.Now(),
	}, nil
}

// seekEnd positions f at its end (first sight: no replay of history). If
// the end is inside a line, that line's rest is skipped.
func (f *file) seekEnd() {
	f.pos, f.done = f.size, f.size
	f.split.skipping = f.size > 0 && !f.endsLine(f.size)
}

// resume positions f at o.Pos if the bytes before it still hash to o.Mark
// (when known), and reports whether it did.
func (f *file) resume(o Offset) bool {
	if o.Pos < 0 || o.Pos > f.size {
		return false
	}
	if o.Pos > 0 && o.Mark != 0 {
		if m, ok := f.markAt(o.Pos); !ok || m != o.Mark {
			return false
		}
	}
	f.pos, f.done = o.Pos, o.Pos
	f.split.skipping = o.Pos > 0 && !f.endsLine(o.Pos)
	return true
}

func (f *file) rewind() {
	f.pos, f.done, f.markPos, f.mark = 0, 0, 0, 0
	f.split.reset()
	f.skipNUL = true
}

// endsLine reports whether the byte before pos is '\n'.
func (f *file) endsLine(pos int64) bool {
	var b [1]byte
	n, _ := f.f.ReadAt(b[:], pos-1)
	return n == 1 && b[0] == '\n'
}

// markAt hashes the up to markLen bytes before pos.
func (f *file) markAt(pos int64) (uint64, bool) {
	start := max(pos-markLen, 0)
	var b [markLen]byte
	n, _ := f.f.ReadAt(b[:pos-start], start)
	if int64(n) != pos-start {
		return 0, false
	}
	return fnv1a(b[:n]), true
}

// markHash is the mark for done, read again if done moved since.
func (f *file) markHash() uint64 {
	if f.done == 0 {
		return 0
	}
	if f.markPos != f.done || f.mark == 0 {
		m, ok := f.markAt(f.done)
		if !ok {
			return 0
		}
		f.mark, f.markPos = m, f.done
	}
	return f.mark
}

// markHolds reports whether the bytes before done are still those read:
// false means the file was rewritten in place.
func (f *file) markHolds() bool {
	if f.done == 0 || f.markPos != f.done || f.mark == 0 {
		return true // nothing to compare with
	}
	m, ok := f.markAt(f.done)
	return ok && m == f.mark
}

// drain reads f from pos to its current end, or to limit when it is not
// negative, sending every complete line. It returns an error only when ctx
// is done, with f positioned after the last line sent. Read errors are
// reported in Stats and retried by the next check.
func (t *Tailer) drain(ctx context.Context, f *file, out chan<- event.Observation, limit int64) error {
	done := ctx.Done()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		buf := t.buf
		if limit >= 0 {
			if f.pos >= limit {
				f.markHash()
				return nil
			}
			buf = buf[:min(int64(len(buf)), limit-f.pos)]
		}
		n, rerr := f.f.ReadAt(buf, f.pos)
		if n > 0 {
			chunk := buf[:n]
			base := f.pos
			if f.skipNUL {
				k := 0
				for k < len(chunk) && chunk[k] == 0 {
					k++
				}
				if k < len(chunk) {
					f.skipNUL = false
				}
				chunk, base = chunk[k:], base+int64(k)
				f.done = base
			}
			now := t.now()
			f.lastRead = time.Now()
			var lines, cut, dropped uint64
			err := f.split.feed(chunk, func(line []byte, c bool, end int) error {
				h := t.recent.hash(line)
				if f.suppress {
					if t.recent.has(h) {
						dropped++
						f.done = base + int64(end)
						return nil
					}
					f.suppress = false
				}
				t.recent.add(h)
				select {
				case out <- event.Observation{Source: t.source, Time: now, Line: string(line), Truncated: c}:
				case <-done:
					return ctx.Err()
				}
				f.done = base + int64(end)
				lines++
				if c {
					cut++
				}
				return nil
			})
			t.count(lines, cut, dropped, now)
			if err != nil {
				f.pos = f.done
				f.split.reset()
				return err
			}
			f.pos = base + int64(len(chunk))
			f.done = f.pos - int64(len(f.split.partial))
			if f == t.cur && f.done-t.saved.Pos >= saveEvery {
				t.save(true)
			}
		}
		if rerr != nil || n == 0 {
			if rerr != nil && !errors.Is(rerr, io.EOF) {
				t.setErr(fmt.Sprintf("read %s: %v", t.path, rerr))
			}
			f.markHash() // remember the bytes before done, to notice a rewrite
			return nil
		}
	}
}

// flush sends f's held last line, which will get no '\n' now: f was
// rotated away and is being closed.
func (t *Tailer) flush(ctx context.Context, f *file, out chan<- event.Observation) error {
	now := t.now()
	var lines uint64
	err := f.split.flush(func(line []byte, c bool, _ int) error {
		t.recent.add(t.recent.hash(line))
		select {
		case out <- event.Observation{Source: t.source, Time: now, Line: string(line), Truncated: c}:
			lines++
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	t.count(lines, 0, 0, now)
	return err
}

func (t *Tailer) count(lines, cut, dropped uint64, now time.Time) {
	if lines == 0 && dropped == 0 {
		return
	}
	t.update(func(s *Stats) {
		s.Lines += lines
		s.Truncated += cut
		s.Suppressed += dropped
		if lines > 0 {
			s.LastLine = now
		}
	})
}

// recent remembers hashes of the last lines read, so that a file
// rewritten in place with its old lines first (A15) does not count them
// twice. Bounded: recentN hashes.
type recent struct {
	seed maphash.Seed
	ring [recentN]uint64
	n, i int
}

const recentN = 1024

func newSeed() maphash.Seed { return maphash.MakeSeed() }

func (r *recent) hash(line []byte) uint64 { return maphash.Bytes(r.seed, line) }

func (r *recent) add(h uint64) {
	r.ring[r.i] = h
	r.i = (r.i + 1) % recentN
	r.n = min(r.n+1, recentN)
}

func (r *recent) has(h uint64) bool {
	for _, x := range r.ring[:r.n] {
		if x == h {
			return true
		}
	}
	return false
}

// fnv1a is 64-bit FNV-1a: stable across runs, unlike maphash.
func fnv1a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}
