package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// keepCorrupt is how many moved-aside databases are kept; older ones are
// deleted so that repeated corruption cannot fill the disk.
const keepCorrupt = 3

// companions are the files SQLite keeps beside a database. They move with
// it: a stale WAL or hot journal next to a fresh database would be
// replayed into it.
var companions = []string{"-wal", "-shm", "-journal"}

// corruptError: the file at the path cannot be used as our database.
type corruptError struct{ reason string }

func (e *corruptError) Error() string { return e.reason }
func (e *corruptError) Unwrap() error { return ErrCorrupt }

var sqliteMagic = []byte("SQLite format 3\x00")

// checkFile looks at the path before SQLite does. A missing file is
// created with mode 0600 (SQLite would use 0644); a zero-length file is a
// new database.
func (s *Store) checkFile() error {
	fi, err := os.Stat(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("store: create %s: %w", s.path, err)
		}
		if f != nil {
			f.Close()
		}
		return nil
	case err != nil:
		return fmt.Errorf("store: open %s: %w", s.path, err)
	case fi.IsDir():
		return &corruptError{reason: "is a directory"}
	case !fi.Mode().IsRegular():
		return &corruptError{reason: "is not a regular file (" + fi.Mode().Type().String() + ")"}
	case fi.Size() == 0:
		return nil
	}
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("store: open %s: %w", s.path, err)
	}
	defer f.Close()
	hdr := make([]byte, 100)
	if _, err := io.ReadFull(f, hdr); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return &corruptError{reason: fmt.Sprintf("is not an SQLite database (%d bytes, shorter than a header)", fi.Size())}
		}
		return fmt.Errorf("store: read %s: %w", s.path, err)
	}
	if !bytes.HasPrefix(hdr, sqliteMagic) {
		return &corruptError{reason: "is not an SQLite database (bad header)"}
	}
	return nil
}

// quickCheck runs PRAGMA quick_check and returns a *corruptError naming
// the first problems it reports.
func quickCheck(ctx context.Context, db *sql.DB) error {
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check(5)")
	if err != nil {
		return err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(msgs) == 1 && msgs[0] == "ok" {
		return nil
	}
	for i, m := range msgs {
		msgs[i] = strings.Join(strings.Fields(m), " ") // one line
	}
	return &corruptError{reason: "fails quick_check (" + clip(strings.Join(msgs, "; "), 300) + ")"}
}

// quarantine moves the database and its companion files to
// Path.corrupt-<unix time> and prunes old copies. It returns the new name.
func (s *Store) quarantine() (string, error) {
	base := fmt.Sprintf("%s.corrupt-%d", s.path, s.now().Unix())
	dest := base
	for i := 1; exists(dest) || exists(dest+"-wal"); i++ {
		dest = base + "." + strconv.Itoa(i)
	}
	if err := os.Rename(s.path, dest); err != nil {
		return "", err
	}
	for _, c := range companions {
		if !exists(s.path + c) {
			continue
		}
		if err := os.Rename(s.path+c, dest+c); err != nil {
			// It must not stay beside the new database.
			if rerr := os.RemoveAll(s.path + c); rerr != nil {
				return dest, fmt.Errorf("move %s aside: %w", s.path+c, err)
			}
		}
	}
	s.pruneCorrupt()
	return dest, nil
}

// pruneCorrupt deletes all but the keepCorrupt newest moved-aside copies.
// Names it did not write are left alone.
func (s *Store) pruneCorrupt() {
	dir, prefix := filepath.Dir(s.path), filepath.Base(s.path)+".corrupt-"
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.logf("store: list %s for old corrupt copies: %v", dir, err)
		return
	}
	type copyName struct {
		name    string
		ts, seq int64
	}
	var copies []copyName
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || isCompanion(rest) {
			continue
		}
		tsStr, seqStr, hasSeq := strings.Cut(rest, ".")
		ts, err := strconv.ParseInt(tsStr, 10, 64)
		if err != nil {
			continue
		}
		var seq int64
		if hasSeq {
			if seq, err = strconv.ParseInt(seqStr, 10, 64); err != nil {
				continue
			}
		}
		copies = append(copies, copyName{e.Name(), ts, seq})
	}
	sort.Slice(copies, func(i, j int) bool {
		if copies[i].ts != copies[j].ts {
			return copies[i].ts > copies[j].ts
		}
		return copies[i].seq > copies[j].seq
	})
	for _, c := range copies[min(len(copies), keepCorrupt):] {
		p := filepath.Join(dir, c.name)
		if err := os.RemoveAll(p); err != nil {
			s.logf("store: delete old corrupt copy %s: %v", p, err)
			continue
		}
		for _, comp := range companions {
			os.Remove(p + comp)
		}
		s.logf("store: deleted old corrupt copy %s (keeping %d)", p, keepCorrupt)
	}
}

func isCompanion(name string) bool {
	for _, c := range companions {
		if strings.HasSuffix(name, c) {
			return true
		}
	}
	return false
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}
