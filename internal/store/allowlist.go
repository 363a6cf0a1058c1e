package store

import (
	"fmt"
	"net/netip"
	"time"
)

// AllowEntry is an allowlist entry added at run time.
type AllowEntry struct {
	Prefix  netip.Prefix
	Comment string
	Created time.Time
}

// AllowlistAdd adds p (canonicalised) to the run-time allowlist, or
// replaces the comment of an existing entry. The comment is cut to 512
// bytes.
func (s *Store) AllowlistAdd(p netip.Prefix, comment string) error {
	if !p.IsValid() {
		return fmt.Errorf("store: allowlist add: invalid prefix %v", p)
	}
	_, err := s.w.Exec(`INSERT INTO allowlist (prefix, comment, created) VALUES (?, ?, ?)
		ON CONFLICT (prefix) DO UPDATE SET comment = excluded.comment`,
		prefixKey(p), cutUTF8(comment, maxComment), s.now().UnixMilli())
	return s.wrap("allowlist add", err)
}

// AllowlistRemove removes exactly p and reports whether it was there.
func (s *Store) AllowlistRemove(p netip.Prefix) (bool, error) {
	if !p.IsValid() {
		return false, fmt.Errorf("store: allowlist remove: invalid prefix %v", p)
	}
	res, err := s.w.Exec(`DELETE FROM allowlist WHERE prefix = ?`, prefixKey(p))
	if err != nil {
		return false, s.wrap("allowlist remove", err)
	}
	n, err := res.RowsAffected()
	return n > 0, s.wrap("allowlist remove", err)
}

// Allowlist returns the run-time entries, oldest first.
func (s *Store) Allowlist() ([]AllowEntry, error) {
	rows, err := s.r.Query(`SELECT prefix, comment, created FROM allowlist ORDER BY created, prefix`)
	if err != nil {
		return nil, s.wrap("allowlist", err)
	}
	defer rows.Close()
	var out []AllowEntry
	for rows.Next() {
		var (
			e       AllowEntry
			prefix  string
			created int64
		)
		if err := rows.Scan(&prefix, &e.Comment, &created); err != nil {
			return nil, s.wrap("allowlist", err)
		}
		if e.Prefix, err = netip.ParsePrefix(prefix); err != nil {
			s.logf("store: skipping allowlist entry with unreadable prefix %q: %v", clip(prefix, 64), err)
			continue
		}
		e.Created = time.UnixMilli(created)
		out = append(out, e)
	}
	return out, s.wrap("allowlist", rows.Err())
}
