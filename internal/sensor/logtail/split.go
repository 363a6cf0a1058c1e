package logtail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/moat-sec/moat/internal/event"
)

// DefaultMaxLine is the line limit when a Config or a caller gives none.
const DefaultMaxLine = 16 << 10

// maxMaxLine bounds MaxLine so one source cannot be configured into
// holding an unbounded line in memory.
const maxMaxLine = 16 << 20

// readSize is the chunk read from a file or reader at a time.
const readSize = 64 << 10

// splitter cuts a byte stream into physical lines. A line ends at '\n' and
// nowhere else: a NUL, a '\r' (even one just before the '\n') or invalid
// UTF-8 stays in the line as it is. A line longer than max is emitted cut
// to max bytes as soon as max+1 bytes of it have been seen, and the rest of
// it, up to and including its '\n', is skipped; memory stays at max bytes
// whatever the input.
type splitter struct {
	max      int
	partial  []byte // the start of a line whose '\n' has not been seen; len <= max
	skipping bool   // inside the tail of a line already emitted cut
}

// lineFunc receives one line, valid only during the call, whether it was
// cut, and end: the offset in the chunk just after the bytes that this line
// accounts for (after its '\n', or the whole chunk for a cut line whose
// '\n' is still to come).
type lineFunc func(line []byte, cut bool, end int) error

// feed splits the next chunk of the stream. When fn fails, feed returns its
// error at once and the splitter's state is undefined (callers reset it).
func (s *splitter) feed(chunk []byte, fn lineFunc) error {
	i := 0
	for i < len(chunk) {
		j := bytes.IndexByte(chunk[i:], '\n')
		if s.skipping {
			if j < 0 {
				return nil
			}
			i += j + 1
			s.skipping = false
			continue
		}
		if j >= 0 {
			line := chunk[i : i+j]
			end := i + j + 1
			if len(s.partial) > 0 {
				s.partial = appendUpTo(s.partial, line, s.max+1)
				line = s.partial
			}
			cut := len(line) > s.max
			if cut {
				line = line[:s.max]
			}
			err := fn(line, cut, end)
			s.partial = s.partial[:0]
			if err != nil {
				return err
			}
			i = end
			continue
		}
		rest := chunk[i:]
		if len(s.partial)+len(rest) > s.max {
			s.partial = appendUpTo(s.partial, rest, s.max)
			s.skipping = true
			err := fn(s.partial, true, len(chunk))
			s.partial = s.partial[:0]
			return err
		}
		if s.partial == nil {
			s.partial = make([]byte, 0, min(s.max+1, 4096))
		}
		s.partial = append(s.partial, rest...)
		return nil
	}
	return nil
}

// flush emits a held partial line as a whole line: the stream has ended
// (a finished file, or a rotated file given up on) without its '\n'.
func (s *splitter) flush(fn lineFunc) error {
	if len(s.partial) == 0 {
		return nil
	}
	err := fn(s.partial, false, 0)
	s.partial = s.partial[:0]
	return err
}

func (s *splitter) reset() {
	s.partial = s.partial[:0]
	s.skipping = false
}

// appendUpTo appends to dst as much of src as fits within limit bytes.
func appendUpTo(dst, src []byte, limit int) []byte {
	if room := limit - len(dst); room < len(src) {
		src = src[:max(room, 0)]
	}
	return append(dst, src...)
}

func checkMaxLine(n int) (int, error) {
	switch {
	case n == 0:
		return DefaultMaxLine, nil
	case n < 0 || n > maxMaxLine:
		return 0, fmt.Errorf("max line %d: must be between 1 and %d", n, maxMaxLine)
	}
	return n, nil
}

// Scan calls fn for every physical line of r, in order, with the line
// without its '\n' and whether it was cut at maxLine bytes (0 means
// DefaultMaxLine). line is only valid during the call: Scan reuses its
// buffer and allocates nothing per line. A last line without '\n' is
// passed as a whole line. Scan stops at the first error from fn or r, and
// returns it (nil at EOF).
func Scan(r io.Reader, maxLine int, fn func(line []byte, truncated bool) error) error {
	maxLine, err := checkMaxLine(maxLine)
	if err != nil {
		return fmt.Errorf("scan: %w", err)
	}
	s := splitter{max: maxLine}
	lf := func(line []byte, cut bool, _ int) error { return fn(line, cut) }
	return readLines(r, &s, nil, lf)
}

// readLines feeds r to s chunk by chunk; before each chunk it calls
// onChunk, if any.
func readLines(r io.Reader, s *splitter, onChunk func(), fn lineFunc) error {
	buf := make([]byte, readSize)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if onChunk != nil {
				onChunk()
			}
			if ferr := s.feed(buf[:n], fn); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return s.flush(fn)
		}
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
	}
}

// ReadAll sends every line of r to out as an Observation (replay mode:
// `moat test-filter`, benchmarks), with Source source, Time the time the
// line's chunk was read, and Truncated set on lines cut at maxLine bytes
// (0 means DefaultMaxLine). It returns nil at EOF, ctx's error when ctx is
// done first, or r's error. It never closes out.
func ReadAll(ctx context.Context, r io.Reader, source string, maxLine int, out chan<- event.Observation) error {
	maxLine, err := checkMaxLine(maxLine)
	if err != nil {
		return fmt.Errorf("read all: %w", err)
	}
	s := splitter{max: maxLine}
	var now time.Time
	done := ctx.Done()
	err = readLines(r, &s, func() { now = time.Now() }, func(line []byte, cut bool, _ int) error {
		o := event.Observation{Source: source, Time: now, Line: string(line), Truncated: cut}
		select {
		case out <- o:
			return nil
		case <-done:
			return ctx.Err()
		}
	})
	if err != nil {
		return fmt.Errorf("read all %s: %w", source, err)
	}
	return nil
}
