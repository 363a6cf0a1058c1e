package authfail

import (
	"hash/maphash"
	"net/netip"
	"time"
	"unsafe"

	"github.com/moat-sec/moat/internal/lru"
)

// DefaultSessionConns bounds the connections a Session follows.
const DefaultSessionConns = 10000

// connTTL is how long a connection's state is kept without a line: longer
// than sshd's LoginGraceTime, so that a reused pid does not inherit a
// stale pending failure.
const connTTL = 10 * time.Minute

const maxUsers = 4

// Session applies a filter to a stream of lines from one source,
// following connections (by syslog host, daemon tag and pid) for filters
// whose failures span lines. It is not safe for concurrent use.
type Session struct {
	f     *Filter
	conns *lru.Map[uint64, conn]
	seed  maphash.Seed
}

type conn struct {
	addr    netip.Addr
	users   [maxUsers]uint64
	nusers  uint8
	pending bool // a failure without an address waits for one
	hard    bool // a failure was counted for this connection
	seen    time.Time
}

func (c *conn) addUser(h uint64) {
	for i := 0; i < int(c.nusers); i++ {
		if c.users[i] == h {
			return
		}
	}
	if c.nusers < maxUsers {
		c.users[c.nusers] = h
		c.nusers++
	}
}

// NewSession starts a session that follows at most maxConns connections
// (DefaultSessionConns if maxConns <= 0), evicting the least recent.
func (f *Filter) NewSession(maxConns int) *Session {
	if maxConns <= 0 {
		maxConns = DefaultSessionConns
	}
	return &Session{f: f, conns: lru.New[uint64, conn](maxConns), seed: maphash.MakeSeed()}
}

// Filter returns the session's filter.
func (s *Session) Filter() *Filter { return s.f }

// Conns reports how many connections the session follows.
func (s *Session) Conns() int { return s.conns.Len() }

// Match feeds one line to the session and reports the offender's address
// when the line completes a failure.
func (s *Session) Match(line string) (netip.Addr, bool) {
	r := s.process(unsafe.Slice(unsafe.StringData(line), len(line)), time.Time{})
	return r.addr, r.ok
}

// MatchBytes is Match on a byte slice; it does not retain or modify line.
func (s *Session) MatchBytes(line []byte) (netip.Addr, bool) {
	r := s.process(line, time.Time{})
	return r.addr, r.ok
}

// result is what one line did.
type result struct {
	addr    netip.Addr
	ok      bool // a failure by addr
	matched bool // a rule matched
	bad     bool // the rule's address did not parse (leading zeros, …)
	rule    *rule
}

// process handles one line; now (may be zero) expires stale connections.
func (s *Session) process(line []byte, now time.Time) result {
	m, ks, ke, ok := s.f.find(line)
	if !ok {
		return result{}
	}
	r := m.rule
	res := result{matched: true, rule: r}
	if m.badAddr {
		res.bad = true
		return res
	}
	hasAddr := m.hostStart >= 0
	if !s.f.multiline || ks == ke {
		if r.kind == kindFail && hasAddr {
			res.addr, res.ok = m.addr, true
		}
		return res
	}
	key := maphash.Bytes(s.seed, line[ks:ke])
	c, exists := s.conns.Get(key)
	if exists && !now.IsZero() && !c.seen.IsZero() && now.Sub(c.seen) > connTTL {
		*c = conn{} // a new connection that reuses the pid
	}
	var uh uint64
	hasUser := m.userStart >= 0
	if hasUser {
		msg := line[m.msgStart:]
		uh = maphash.Bytes(s.seed, msg[m.userStart:m.userEnd])
	}
	if !exists {
		if r.forget {
			// nothing to remember or to forget
			if r.kind == kindFail && hasAddr {
				res.addr, res.ok = m.addr, true
			}
			return res
		}
		c, _, _ = s.conns.Put(key)
	}
	if hasAddr {
		c.addr = m.addr
	}
	if hasUser {
		c.addUser(uh)
	}
	emit := false
	if r.kind == kindFail {
		c.hard = true
		if c.addr.IsValid() {
			emit, c.pending = true, false
		} else {
			c.pending = true
		}
	} else {
		switch {
		case c.pending && c.addr.IsValid():
			emit, c.pending = true, false
		case (r.soft || r.gained) && c.nusers > 1 && !c.hard && c.addr.IsValid():
			// several user names tried on one connection, and no failure
			// counted for it yet: a success for another user does not
			// wipe out the attempts (gh-2070 in fail2ban's corpus)
			emit = true
		}
	}
	if emit {
		res.addr, res.ok = c.addr, true
	}
	c.seen = now
	if r.forget {
		s.conns.Remove(key)
	}
	return res
}
