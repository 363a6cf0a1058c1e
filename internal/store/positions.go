package store

import (
	"database/sql"
	"errors"
)

// Offset is where the daemon stopped reading a log file: the file's
// identity (device and inode, to notice rotation), the byte position
// after the last line handled, and the size seen then (to notice
// truncation).
type Offset struct {
	Dev, Ino uint64
	Pos      int64
	Size     int64
}

// LoadOffset returns the saved offset for the file at path.
func (s *Store) LoadOffset(path string) (Offset, bool, error) {
	var o Offset
	var dev, ino int64
	err := s.r.QueryRow(`SELECT dev, ino, pos, size FROM offsets WHERE path = ?`, path).Scan(&dev, &ino, &o.Pos, &o.Size)
	if errors.Is(err, sql.ErrNoRows) {
		return Offset{}, false, nil
	}
	if err != nil {
		return Offset{}, false, s.wrap("load offset", err)
	}
	o.Dev, o.Ino = uint64(dev), uint64(ino)
	return o, true, nil
}

// SaveOffset records the offset for the file at path.
func (s *Store) SaveOffset(path string, o Offset) error {
	// SQLite integers are signed: store the uint64s' bit patterns.
	_, err := s.w.Exec(`INSERT INTO offsets (path, dev, ino, pos, size, updated) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (path) DO UPDATE SET dev = excluded.dev, ino = excluded.ino, pos = excluded.pos,
			size = excluded.size, updated = excluded.updated`,
		path, int64(o.Dev), int64(o.Ino), o.Pos, o.Size, s.now().UnixMilli())
	return s.wrap("save offset", err)
}

// LoadCursor returns the saved cursor for a cursor-based source (a
// journald cursor, keyed by the source's name).
func (s *Store) LoadCursor(key string) (string, bool, error) {
	var c string
	err := s.r.QueryRow(`SELECT cursor FROM cursors WHERE key = ?`, key).Scan(&c)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, s.wrap("load cursor", err)
	}
	return c, true, nil
}

// SaveCursor records the cursor for key.
func (s *Store) SaveCursor(key, cursor string) error {
	_, err := s.w.Exec(`INSERT INTO cursors (key, cursor, updated) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET cursor = excluded.cursor, updated = excluded.updated`,
		key, cursor, s.now().UnixMilli())
	return s.wrap("save cursor", err)
}
