package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"modernc.org/sqlite"
)

// Errors the daemon can test with errors.Is to decide how to report its
// health. Every error returned by this package that comes from one of
// these conditions wraps the matching value (and the driver's error).
var (
	// ErrLocked: another process holds the database's write lock and did
	// not release it within the busy timeout.
	ErrLocked = errors.New("database is locked by another process")
	// ErrCorrupt: SQLite found the file malformed. Open recovers from this
	// itself; other operations return it.
	ErrCorrupt = errors.New("database is corrupt")
	// ErrFull: the disk (or the database's page limit) is full.
	ErrFull = errors.New("database or disk is full")
	// ErrReadOnly: the database cannot be written.
	ErrReadOnly = errors.New("database is read-only")
	// ErrNewerSchema: the database was written by a newer moat.
	ErrNewerSchema = errors.New("database schema is newer than this binary")
)

// DefaultBusyTimeout is how long a write waits for a lock another process
// holds before failing with ErrLocked.
const DefaultBusyTimeout = 5 * time.Second

// Options configure Open.
type Options struct {
	// Path of the database file. Its directory is created (0700) if
	// missing, and the file itself with mode 0600.
	Path string
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logf reports recoveries and other unusual events (default: discard).
	Logf func(format string, args ...any)
	// BusyTimeout overrides DefaultBusyTimeout (tests use a short one).
	BusyTimeout time.Duration
}

// Store is the daemon's database. It is safe for concurrent use; all
// writes go through a single connection, reads through a small pool.
type Store struct {
	path string
	now  func() time.Time
	logf func(format string, args ...any)
	busy time.Duration

	w *sql.DB // the one writer: SetMaxOpenConns(1)
	r *sql.DB // readers (WAL lets them run beside the writer)

	recovered bool
	reason    string
}

// maxReaders bounds the read pool.
const maxReaders = 4

// Open opens or creates the database at opts.Path.
//
// A file that is not a usable database (garbage, a truncated or otherwise
// malformed database, one that fails PRAGMA quick_check, a directory or
// other non-regular file in its place) is moved aside once, to
// Path+".corrupt-<unix time>" (with its -wal, -shm and -journal files),
// keeping at most the three newest such copies, and a fresh database is
// created. The returned Store then reports Recovered() == true: its
// contents are gone, so the daemon must rebuild from the kernel and report
// itself unhealthy. A zero-length file is simply a new database.
//
// A database whose write lock another process holds for longer than the
// busy timeout is not touched: Open returns an error wrapping ErrLocked.
// Open never panics.
func Open(opts Options) (s *Store, err error) {
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, fmt.Errorf("store: open %s: internal error: %v", opts.Path, r)
		}
	}()
	if opts.Path == "" {
		return nil, errors.New("store: open: no path")
	}
	p, err := filepath.Abs(opts.Path)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Path, err)
	}
	s = &Store{path: p, now: opts.Now, logf: opts.Logf, busy: opts.BusyTimeout}
	if s.now == nil {
		s.now = time.Now
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	if s.busy <= 0 {
		s.busy = DefaultBusyTimeout
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("store: open %s: %w", p, err)
	}

	w, err := s.openWriter()
	if ce, ok := errors.AsType[*corruptError](err); ok {
		dest, qerr := s.quarantine()
		if qerr != nil {
			return nil, fmt.Errorf("store: open %s: %s, and moving it aside failed: %w", p, ce.reason, qerr)
		}
		s.recovered = true
		s.reason = fmt.Sprintf("database %s %s; moved it to %s and started an empty one", p, ce.reason, dest)
		s.logf("store: %s", s.reason)
		w, err = s.openWriter()
		if _, again := errors.AsType[*corruptError](err); again {
			// The file we just created is already bad: no loop.
			return nil, fmt.Errorf("store: open %s: fresh database unusable: %w", p, err)
		}
	}
	if err != nil {
		return nil, err
	}
	s.w = w

	r, err := sql.Open("sqlite", s.dsn(false))
	if err == nil {
		r.SetMaxOpenConns(maxReaders)
		r.SetMaxIdleConns(maxReaders)
		err = r.Ping()
	}
	if err != nil {
		if r != nil {
			r.Close()
		}
		w.Close()
		return nil, s.wrap("open readers", err)
	}
	s.r = r
	return s, nil
}

// Close closes the database. Its last connection checkpoints the WAL into
// the main file.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

// Recovered reports whether Open found the database corrupt and replaced
// it with an empty one, and why.
func (s *Store) Recovered() (bool, string) { return s.recovered, s.reason }

// Path is the database file.
func (s *Store) Path() string { return s.path }

// dsn is the connection string: the writer's has WAL, synchronous=NORMAL,
// a 16 MiB page cache (a batch of 10,000 bans dirties about 8 MiB; a
// smaller cache spills mid-transaction) and BEGIN IMMEDIATE for every
// transaction; readers are query_only.
func (s *Store) dsn(writer bool) string {
	q := "_pragma=busy_timeout(" + strconv.FormatInt(s.busy.Milliseconds(), 10) + ")"
	if writer {
		q += "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=cache_size(-16384)&_txlock=immediate"
	} else {
		q += "&_pragma=query_only(1)"
	}
	// SQLite decodes %XX in a file: URI, so escape the path (a '?' or '#'
	// in a directory name must not start the query).
	return "file:" + (&url.URL{Path: s.path}).EscapedPath() + "?" + q
}

// openWriter checks the file, opens the write connection, runs
// quick_check and migrates. A *corruptError means the file must be moved
// aside.
func (s *Store) openWriter() (*sql.DB, error) {
	if err := s.checkFile(); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", s.dsn(true))
	if err != nil {
		return nil, s.openErr(err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	ctx := context.Background()
	fail := func(err error) (*sql.DB, error) {
		db.Close()
		return nil, s.openErr(err)
	}
	if err := db.PingContext(ctx); err != nil {
		return fail(err)
	}
	if err := quickCheck(ctx, db); err != nil {
		return fail(err)
	}
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		return fail(err)
	}
	if err := migrate(ctx, db, ms, s.now().UnixMilli()); err != nil {
		return fail(err)
	}
	return db, nil
}

// openErr turns an error met while opening into a *corruptError when the
// file is malformed, and otherwise into a classified error.
func (s *Store) openErr(err error) error {
	if _, ok := errors.AsType[*corruptError](err); ok {
		return err
	}
	if classify(err) == ErrCorrupt {
		return &corruptError{reason: "is corrupt (" + clip(err.Error(), 200) + ")"}
	}
	return s.wrap("open "+s.path, err)
}

// SQLite primary result codes (the low byte of extended codes).
const (
	sqliteBusy     = 5
	sqliteLocked   = 6
	sqliteReadOnly = 8
	sqliteIOErr    = 10
	sqliteCorrupt  = 11
	sqliteFull     = 13
	sqliteNotADB   = 26

	sqliteIOErrShortRead = sqliteIOErr | 2<<8
)

// classify maps a driver error to one of the package's sentinel errors,
// or nil.
func classify(err error) error {
	se, ok := errors.AsType[*sqlite.Error](err)
	if !ok {
		return nil
	}
	switch code := se.Code(); {
	case code == sqliteIOErrShortRead: // pages missing: a truncated file
		return ErrCorrupt
	default:
		switch code & 0xff {
		case sqliteBusy, sqliteLocked:
			return ErrLocked
		case sqliteCorrupt, sqliteNotADB:
			return ErrCorrupt
		case sqliteFull:
			return ErrFull
		case sqliteReadOnly:
			return ErrReadOnly
		}
	}
	return nil
}

// opError is every error the Store returns: the operation, a sentinel
// when the cause is one the daemon acts on, and the underlying error.
type opError struct {
	op    string
	kind  error // one of the Err* values, or nil
	extra string
	err   error
}

func (e *opError) Error() string {
	msg := "store: " + e.op + ": "
	if e.kind != nil {
		msg += e.kind.Error() + e.extra + ": "
	}
	return msg + e.err.Error()
}

func (e *opError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

// wrap names the operation and classifies err.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if oe, ok := err.(*opError); ok {
		return oe
	}
	e := &opError{op: op, kind: classify(err), err: err}
	if e.kind == ErrLocked {
		e.extra = " (gave up after " + s.busy.String() + ")"
	}
	return e
}

// clip cuts s to at most n bytes for use in a message.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return cutUTF8(s, n) + "…"
}
