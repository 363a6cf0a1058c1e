package udptrap

import (
	"bytes"
	"io"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/moat-sec/moat/internal/lru"
)

// CookieLen is the size of a cookie, and so of every reply.
const CookieLen = 16

// Config bounds a Verifier. Zero fields take the defaults.
type Config struct {
	CookieTTL   time.Duration // how long a cookie proves its source; default 30s
	Sources     int           // most sources with a cookie at once; default 4096
	SourceEvery time.Duration // at most one reply per source in this; default 5s
	GlobalRate  int           // most replies a second, all sources together; default 100
}

func (c Config) withDefaults() Config {
	if c.CookieTTL <= 0 {
		c.CookieTTL = 30 * time.Second
	}
	if c.Sources <= 0 {
		c.Sources = 4096
	}
	if c.SourceEvery <= 0 {
		c.SourceEvery = 5 * time.Second
	}
	if c.GlobalRate <= 0 {
		c.GlobalRate = 100
	}
	return c
}

// Outcome is what a Verifier did with a datagram.
type Outcome int

const (
	Challenged    Outcome = iota // replied with the source's cookie
	Proven                       // the datagram carried the source's live cookie
	Echo                         // the datagram was the cookie alone (an echo service): no proof, no reply
	Short                        // shorter than a cookie: no reply (it would amplify)
	ReflectorPort                // source port below 1024 or equal to the trap port: no reply
	SourceLimited                // replied to this source less than SourceEvery ago
	GlobalLimited                // over the global reply rate
	Invalid                      // no usable source address, or no randomness
)

var outcomeNames = [...]string{"challenged", "proven", "echo", "short", "reflector port", "source limited", "global limited", "invalid"}

func (o Outcome) String() string {
	if uint(o) < uint(len(outcomeNames)) {
		return outcomeNames[o]
	}
	return "outcome(" + strconv.Itoa(int(o)) + ")"
}

// Verifier issues cookies and checks them.
type Verifier struct {
	cfg  Config
	rand io.Reader

	mu      sync.Mutex
	sources *lru.Map[netip.Addr, source]
	tokens  float64 // global reply budget
	refill  time.Time
}

type source struct {
	cookie  [CookieLen]byte
	issued  time.Time // the cookie proves the source until issued+CookieTTL
	replied time.Time // the last reply to it
}

// New returns a Verifier that draws cookies from rand (crypto/rand.Reader
// outside tests).
func New(cfg Config, rand io.Reader) *Verifier {
	cfg = cfg.withDefaults()
	return &Verifier{cfg: cfg, rand: rand, sources: lru.New[netip.Addr, source](cfg.Sources), tokens: float64(cfg.GlobalRate)}
}

// Datagram handles payload, received at now from src on trap port
// trapPort. When the outcome is Challenged, the caller sends reply (which
// is CookieLen bytes, never more than len(payload)) back to src from the
// trap port; when it is Proven, src has shown that it receives what is
// sent to it. Every other outcome asks for nothing.
func (v *Verifier) Datagram(src netip.AddrPort, trapPort uint16, payload []byte, now time.Time) (reply [CookieLen]byte, out Outcome) {
	addr := src.Addr().Unmap().WithZone("")
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() {
		return reply, Invalid
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	s, known := v.sources.Get(addr)
	live := known && now.Before(s.issued.Add(v.cfg.CookieTTL))
	if live && bytes.Contains(payload, s.cookie[:]) {
		if len(payload) == CookieLen {
			return reply, Echo
		}
		s.issued = time.Time{} // spent; the entry stays for the per-source limit
		return reply, Proven
	}
	switch {
	case len(payload) < CookieLen:
		return reply, Short
	case src.Port() < 1024 || src.Port() == trapPort:
		return reply, ReflectorPort
	case known && now.Sub(s.replied) < v.cfg.SourceEvery:
		return reply, SourceLimited
	case !v.take(now):
		return reply, GlobalLimited
	}
	if !live {
		var c [CookieLen]byte
		if _, err := io.ReadFull(v.rand, c[:]); err != nil {
			return reply, Invalid
		}
		s, _, _ = v.sources.Put(addr)
		*s = source{cookie: c, issued: now}
	}
	s.replied = now
	return s.cookie, Challenged
}

// take spends one reply from the global budget: GlobalRate a second, with
// a burst of as many.
func (v *Verifier) take(now time.Time) bool {
	rate := float64(v.cfg.GlobalRate)
	if dt := now.Sub(v.refill); dt > 0 {
		v.tokens = min(rate, v.tokens+dt.Seconds()*rate)
	}
	if now.After(v.refill) {
		v.refill = now
	}
	if v.tokens < 1 {
		return false
	}
	v.tokens--
	return true
}

// Len is the number of sources with a cookie (live or expired, until
// evicted or replaced).
func (v *Verifier) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.sources.Len()
}
