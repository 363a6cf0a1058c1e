package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/moat-sec/moat/internal/event"
)

// Ban is a ban in force, or a record of one in the history.
type Ban struct {
	Prefix   netip.Prefix
	Jail     string
	Detector string
	Reason   string
	Evidence []string
	Created  time.Time
	Expires  time.Time // zero: permanent
	Offence  int
	// Unbanned is set in History records of bans removed by hand
	// (RemoveBan, RemoveAll, an Unban decision) before they expired.
	Unbanned time.Time
}

// Permanent reports whether the ban never expires.
func (b Ban) Permanent() bool { return b.Expires.IsZero() }

// Limits on what a ban carries. Evidence is attacker-controlled; it is
// cut to fit, never rejected.
const (
	MaxEvidenceLines = 20
	MaxEvidenceLine  = 512 // bytes, after replacing invalid UTF-8
	maxReason        = 512
	maxName          = 128 // jail, detector
	maxComment       = 512
)

// banRow is a Decision ready for SQL.
type banRow struct {
	op       event.Op
	prefix   string
	jail     string
	detector string
	reason   string
	evidence sql.NullString
	created  int64
	expires  sql.NullInt64
	offence  int
}

func (s *Store) row(d event.Decision) (banRow, error) {
	if !d.Prefix.IsValid() {
		return banRow{}, fmt.Errorf("invalid prefix %v", d.Prefix)
	}
	created := d.Time
	if created.IsZero() {
		created = s.now()
	}
	r := banRow{
		op:       d.Op,
		prefix:   prefixKey(d.Prefix),
		jail:     cutUTF8(d.Jail, maxName),
		detector: cutUTF8(d.Detector, maxName),
		reason:   cutUTF8(d.Reason, maxReason),
		created:  created.UnixMilli(),
		offence:  d.Offence,
	}
	if d.Op != event.Ban {
		return r, nil
	}
	switch {
	case d.Duration < 0:
		return banRow{}, fmt.Errorf("%s: negative duration %v", r.prefix, d.Duration)
	case d.Duration > 0:
		exp := d.Expires
		if exp.IsZero() {
			exp = created.Add(d.Duration)
		}
		r.expires = sql.NullInt64{Int64: exp.UnixMilli(), Valid: true}
	}
	if ev := capEvidence(d.Evidence); len(ev) > 0 {
		b, err := json.Marshal(ev)
		if err != nil {
			return banRow{}, err
		}
		r.evidence = sql.NullString{String: string(b), Valid: true}
	}
	return r, nil
}

// prefixKey is the canonical TEXT form of a prefix.
func prefixKey(p netip.Prefix) string { return p.Masked().String() }

// capEvidence keeps the first MaxEvidenceLines lines, each cut to
// MaxEvidenceLine bytes of valid UTF-8.
func capEvidence(ev []string) []string {
	if len(ev) > MaxEvidenceLines {
		ev = ev[:MaxEvidenceLines]
	}
	out := make([]string, len(ev))
	for i, l := range ev {
		out[i] = cutUTF8(l, MaxEvidenceLine)
	}
	return out
}

// cutUTF8 returns s as valid UTF-8 of at most n bytes, cut on a rune
// boundary. Invalid bytes become U+FFFD, so the result is what JSON will
// store.
func cutUTF8(s string, n int) string {
	s = cutAt(s, n) // bound the work on huge input first
	if !utf8.ValidString(s) {
		s = cutAt(strings.ToValidUTF8(s, "\uFFFD"), n)
	}
	return s
}

// cutAt cuts s to at most n bytes without splitting a rune.
func cutAt(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// The upsert: one row per prefix. An existing row that had already
// expired when the new ban starts is replaced outright. Otherwise the ban
// is never shortened: the later expiry wins and permanent beats any
// expiry; the descriptive fields follow whichever decision sets the
// expiry, and the offence count keeps the larger value. SQLite applies
// the conflict clause row by row, so repeats of a prefix within one
// multi-row statement behave as if inserted one after the other.
const (
	oldExpired = `(bans.expires IS NOT NULL AND bans.expires <= excluded.created)`
	newWins    = `(excluded.expires IS NULL OR (bans.expires IS NOT NULL AND (bans.expires <= excluded.created OR excluded.expires >= bans.expires)))`

	upsertHead = `INSERT INTO bans (prefix, jail, detector, reason, evidence, created, expires, offence) VALUES `
	upsertTail = `
ON CONFLICT (prefix) DO UPDATE SET
	jail     = CASE WHEN ` + newWins + ` THEN excluded.jail     ELSE bans.jail     END,
	detector = CASE WHEN ` + newWins + ` THEN excluded.detector ELSE bans.detector END,
	reason   = CASE WHEN ` + newWins + ` THEN excluded.reason   ELSE bans.reason   END,
	evidence = CASE WHEN ` + newWins + ` THEN excluded.evidence ELSE bans.evidence END,
	expires  = CASE WHEN ` + newWins + ` THEN excluded.expires  ELSE bans.expires  END,
	created  = CASE WHEN ` + oldExpired + ` THEN excluded.created ELSE bans.created END,
	offence  = CASE WHEN ` + oldExpired + ` THEN excluded.offence ELSE max(bans.offence, excluded.offence) END`
	historyHead = `INSERT INTO history (prefix, jail, detector, reason, evidence, created, expires, offence) VALUES `

	// active is in force at ?. The unary + keeps SQLite from answering it
	// with a MULTI-INDEX OR over bans_expires, which looks up every row
	// and made ActiveBans 1.5x slower than scanning the table; the cheap
	// listing for the kernel is ActiveBanExpiries.
	active = `(+expires IS NULL OR +expires > ?)`
)

// chunkRows is how many bans one INSERT carries: per-statement overhead
// dominates single-row inserts (8 parameters a row, far below SQLite's
// limit of 32766).
const chunkRows = 64

// insertSQL returns the upsert and history statements for n rows.
func insertSQL(n int) (upsert, history string) {
	vals := strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?), ", n)
	vals = vals[:len(vals)-2]
	return upsertHead + vals + upsertTail, historyHead + vals
}

// AddBan records one decision; see AddBans.
func (s *Store) AddBan(d event.Decision) error {
	return s.AddBans([]event.Decision{d})
}

// AddBans records decisions in one transaction, in order: all or none. A
// Ban decision upserts the active ban on its prefix (never shortening it)
// and appends to the history; an Unban decision removes the active ban as
// RemoveBan does, at the decision's time. A decision with an invalid
// prefix or a negative duration fails the whole batch before anything is
// written. A zero Decision.Time means now; a zero Expires with a positive
// Duration means Time+Duration; Duration 0 means permanent.
func (s *Store) AddBans(ds []event.Decision) error {
	if len(ds) == 0 {
		return nil
	}
	rows := make([]banRow, len(ds))
	for i, d := range ds {
		r, err := s.row(d)
		if err != nil {
			return fmt.Errorf("store: add bans: decision %d: %w", i, err)
		}
		rows[i] = r
	}
	err := s.writeTx(func(tx *sql.Tx) error {
		w := banWriter{tx: tx}
		defer w.close()
		for len(rows) > 0 {
			if rows[0].op != event.Ban {
				if _, err := removeBan(tx, rows[0].prefix, rows[0].created); err != nil {
					return err
				}
				rows = rows[1:]
				continue
			}
			n := 1
			for n < len(rows) && n < chunkRows && rows[n].op == event.Ban {
				n++
			}
			if err := w.write(rows[:n]); err != nil {
				return err
			}
			rows = rows[n:]
		}
		return nil
	})
	return s.wrap("add bans", err)
}

// banWriter keeps the statements of one transaction, by row count.
type banWriter struct {
	tx    *sql.Tx
	stmts map[int][2]*sql.Stmt
	args  []any
}

func (w *banWriter) write(rows []banRow) error {
	st, ok := w.stmts[len(rows)]
	if !ok {
		up, hist := insertSQL(len(rows))
		var err error
		if st[0], err = w.tx.Prepare(up); err != nil {
			return err
		}
		if st[1], err = w.tx.Prepare(hist); err != nil {
			st[0].Close()
			return err
		}
		if w.stmts == nil {
			w.stmts = make(map[int][2]*sql.Stmt)
		}
		w.stmts[len(rows)] = st
	}
	w.args = w.args[:0]
	for _, r := range rows {
		w.args = append(w.args, r.prefix, r.jail, r.detector, r.reason, r.evidence, r.created, r.expires, r.offence)
	}
	if _, err := st[0].Exec(w.args...); err != nil {
		return err
	}
	_, err := st[1].Exec(w.args...)
	return err
}

func (w *banWriter) close() {
	for _, st := range w.stmts {
		st[0].Close()
		st[1].Close()
	}
}

// removeBan deletes the ban on prefix and marks its history records that
// were still running at now as unbanned. It reports whether a ban was in
// force.
func removeBan(tx *sql.Tx, prefix string, now int64) (bool, error) {
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM bans WHERE prefix = ? AND `+active, prefix, now).Scan(&n); err != nil {
		return false, err
	}
	if _, err := tx.Exec(`DELETE FROM bans WHERE prefix = ?`, prefix); err != nil {
		return false, err
	}
	if _, err := tx.Exec(`UPDATE history SET unbanned_at = ? WHERE prefix = ? AND unbanned_at IS NULL AND created <= ? AND `+active,
		now, prefix, now, now); err != nil {
		return false, err
	}
	return n > 0, nil
}

// RemoveBan lifts the ban on p by hand. It reports whether one was in
// force. The history keeps the record, with an unbanned time.
func (s *Store) RemoveBan(p netip.Prefix) (bool, error) {
	if !p.IsValid() {
		return false, fmt.Errorf("store: remove ban: invalid prefix %v", p)
	}
	var ok bool
	err := s.writeTx(func(tx *sql.Tx) (err error) {
		ok, err = removeBan(tx, prefixKey(p), s.now().UnixMilli())
		return err
	})
	return ok, s.wrap("remove ban", err)
}

// RemoveAll lifts every ban and returns how many were in force.
func (s *Store) RemoveAll() (int, error) {
	now := s.now().UnixMilli()
	var n int
	err := s.writeTx(func(tx *sql.Tx) error {
		if err := tx.QueryRow(`SELECT count(*) FROM bans WHERE `+active, now).Scan(&n); err != nil {
			return err
		}
		if _, err := tx.Exec(`UPDATE history SET unbanned_at = ? WHERE unbanned_at IS NULL AND created <= ? AND `+active+
			` AND prefix IN (SELECT prefix FROM bans)`, now, now, now); err != nil {
			return err
		}
		_, err := tx.Exec(`DELETE FROM bans`)
		return err
	})
	if err != nil {
		return 0, s.wrap("remove all bans", err)
	}
	return n, nil
}

// PurgeExpired deletes the bans that expired at or before now and returns
// how many. The history keeps them.
func (s *Store) PurgeExpired(now time.Time) (int, error) {
	res, err := s.w.Exec(`DELETE FROM bans WHERE expires IS NOT NULL AND expires <= ?`, now.UnixMilli())
	if err != nil {
		return 0, s.wrap("purge expired bans", err)
	}
	n, err := res.RowsAffected()
	return int(n), s.wrap("purge expired bans", err)
}

// PruneHistory deletes the history records created before the given
// time and returns how many, so that the history cannot grow without
// bound (Offences only looks back over a window anyway). Active bans are
// not touched.
func (s *Store) PruneHistory(before time.Time) (int, error) {
	res, err := s.w.Exec(`DELETE FROM history WHERE created < ?`, before.UnixMilli())
	if err != nil {
		return 0, s.wrap("prune history", err)
	}
	n, err := res.RowsAffected()
	return int(n), s.wrap("prune history", err)
}

const banCols = `prefix, jail, detector, reason, evidence, created, expires, offence`

// ActiveBans returns the bans in force at now, oldest first.
func (s *Store) ActiveBans(now time.Time) ([]Ban, error) {
	// Sorting here rather than in SQL keeps SQLite's sorter (and its
	// temporary files) out of it: the rows carry their evidence.
	bans, err := s.queryBans(false, `SELECT `+banCols+` FROM bans WHERE `+active, now.UnixMilli())
	slices.SortFunc(bans, func(a, b Ban) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return a.Prefix.Compare(b.Prefix)
	})
	return bans, s.wrap("list bans", err)
}

// RecentBans returns at most n bans in force at now, the most recent
// first, and how many are in force in all (so that listing a million bans
// does not read them all).
func (s *Store) RecentBans(now time.Time, n int) ([]Ban, int, error) {
	var total int
	if err := s.r.QueryRow(`SELECT count(*) FROM bans WHERE `+active, now.UnixMilli()).Scan(&total); err != nil {
		return nil, 0, s.wrap("count bans", err)
	}
	bans, err := s.queryBans(false, `SELECT `+banCols+` FROM bans WHERE `+active+` ORDER BY created DESC LIMIT ?`, now.UnixMilli(), n)
	return bans, total, s.wrap("list bans", err)
}

// Ban returns the ban in force on exactly p (at Options.Now), if any.
func (s *Store) Ban(p netip.Prefix) (Ban, bool, error) {
	if !p.IsValid() {
		return Ban{}, false, fmt.Errorf("store: get ban: invalid prefix %v", p)
	}
	bans, err := s.queryBans(false, `SELECT `+banCols+` FROM bans WHERE prefix = ? AND `+active, prefixKey(p), s.now().UnixMilli())
	if err != nil || len(bans) == 0 {
		return Ban{}, false, s.wrap("get ban", err)
	}
	return bans[0], true, nil
}

// Offences counts the bans recorded on exactly p (any jail, any
// detector, including ones lifted by hand) created at or after since: the
// escalation count over a window.
func (s *Store) Offences(p netip.Prefix, since time.Time) (int, error) {
	if !p.IsValid() {
		return 0, fmt.Errorf("store: offences: invalid prefix %v", p)
	}
	var n int
	err := s.r.QueryRow(`SELECT count(*) FROM history WHERE prefix = ? AND created >= ?`, prefixKey(p), since.UnixMilli()).Scan(&n)
	return n, s.wrap("count offences", err)
}

// History returns the recorded bans on p, most recent first, at most n
// (n <= 0: all). The zero Prefix means every prefix, most recently
// recorded first.
func (s *Store) History(p netip.Prefix, n int) ([]Ban, error) {
	q := `SELECT ` + banCols + `, unbanned_at FROM history`
	var args []any
	if p.IsValid() {
		q += ` WHERE prefix = ? ORDER BY created DESC, id DESC`
		args = append(args, prefixKey(p))
	} else {
		q += ` ORDER BY id DESC`
	}
	if n > 0 {
		q += ` LIMIT ?`
		args = append(args, n)
	}
	bans, err := s.queryBans(true, q, args...)
	return bans, s.wrap("ban history", err)
}

func (s *Store) queryBans(withUnbanned bool, q string, args ...any) ([]Ban, error) {
	rows, err := s.r.Query(q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Ban
	for rows.Next() {
		var (
			b        Ban
			prefix   string
			evidence sql.NullString
			created  int64
			expires  sql.NullInt64
			unbanned sql.NullInt64
		)
		dest := []any{&prefix, &b.Jail, &b.Detector, &b.Reason, &evidence, &created, &expires, &b.Offence}
		if withUnbanned {
			dest = append(dest, &unbanned)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if b.Prefix, err = netip.ParsePrefix(prefix); err != nil {
			s.logf("store: skipping ban with unreadable prefix %q: %v", clip(prefix, 64), err)
			continue
		}
		if evidence.Valid {
			if err := json.Unmarshal([]byte(evidence.String), &b.Evidence); err != nil {
				b.Evidence = []string{"(unreadable evidence)"}
			}
		}
		b.Created = time.UnixMilli(created)
		if expires.Valid {
			b.Expires = time.UnixMilli(expires.Int64)
		}
		if unbanned.Valid {
			b.Unbanned = time.UnixMilli(unbanned.Int64)
		}
		out = append(out, b)
	}
	return out, rows.Err()
}

// writeTx runs f in one write transaction (BEGIN IMMEDIATE on the single
// writer connection) and commits, or rolls back on error.
func (s *Store) writeTx(f func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}
