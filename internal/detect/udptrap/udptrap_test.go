package udptrap

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

// seeded is a deterministic stand-in for crypto/rand.
func seeded() *rand.ChaCha8 { return rand.NewChaCha8([32]byte{1}) }

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// payload kinds for a step: n bytes of noise, or the cookie last sent to
// the step's source, wrapped in pre and post.
type payload struct {
	noise     int
	cookie    bool
	pre, post string
}

func (p payload) build(last map[netip.Addr][CookieLen]byte, src netip.AddrPort) []byte {
	if !p.cookie {
		return bytes.Repeat([]byte{'x'}, p.noise)
	}
	c := last[src.Addr().Unmap()]
	return append(append([]byte(p.pre), c[:]...), p.post...)
}

type step struct {
	at   time.Duration // after t0
	src  string
	port uint16 // trap port; 1900 unless set
	data payload
	want Outcome
}

func TestVerifier(t *testing.T) {
	const (
		real  = "203.0.113.66:40000"
		real6 = "[2001:db8:b::66]:40000"
		other = "192.0.2.7:40000"
	)
	proof := payload{cookie: true, post: "\n"}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"a real source proves itself", []step{
			{0, real, 0, payload{noise: 20}, Challenged},
			{time.Second, real, 0, proof, Proven},
		}},
		{"IPv6, and the cookie anywhere in the datagram", []step{
			{0, real6, 0, payload{noise: 16}, Challenged},
			{time.Second, real6, 0, payload{cookie: true, pre: "M-SEARCH ", post: " HTTP/1.1"}, Proven},
		}},
		{"a v4-mapped source is the IPv4 source", []step{
			{0, "[::ffff:203.0.113.66]:40000", 0, payload{noise: 20}, Challenged},
			{time.Second, real, 0, proof, Proven},
		}},
		{"a proof counts once", []step{
			{0, real, 0, payload{noise: 20}, Challenged},
			{time.Second, real, 0, proof, Proven},
			{2 * time.Second, real, 0, proof, SourceLimited}, // no cookie any more; too soon for a new reply
		}},
		{"no proof after the cookie expired", []step{
			{0, real, 0, payload{noise: 20}, Challenged},
			{30 * time.Second, real, 0, proof, Challenged}, // a new cookie, not a ban
		}},
		{"a forged proof from another source proves nothing", []step{
			{0, real, 0, payload{noise: 20}, Challenged},
			{time.Second, other, 0, payload{noise: 17}, Challenged},
			{2 * time.Second, real, 0, payload{noise: 17}, SourceLimited},
		}},
		{"the cookie alone is an echo: no proof, no reply", []step{
			{0, real, 0, payload{noise: 20}, Challenged},
			{time.Second, real, 0, payload{cookie: true}, Echo},
			{10 * time.Second, real, 0, payload{noise: 20}, Challenged}, // still the same cookie
			{11 * time.Second, real, 0, proof, Proven},
		}},
		{"shorter than a cookie: no reply", []step{
			{0, real, 0, payload{noise: CookieLen - 1}, Short},
			{0, real, 0, payload{noise: 0}, Short},
			{0, real, 0, payload{noise: CookieLen}, Challenged},
		}},
		{"reflector ports get no reply", []step{
			{0, "203.0.113.66:7", 0, payload{noise: 64}, ReflectorPort},
			{0, "203.0.113.66:53", 0, payload{noise: 64}, ReflectorPort},
			{0, "203.0.113.66:1023", 0, payload{noise: 64}, ReflectorPort},
			{0, "203.0.113.66:1900", 1900, payload{noise: 64}, ReflectorPort},
			{0, "203.0.113.66:1024", 1900, payload{noise: 64}, Challenged},
		}},
		{"one reply per source every 5s", []step{
			{0, real, 0, payload{noise: 20}, Challenged},
			{time.Second, real, 0, payload{noise: 20}, SourceLimited},
			{4999 * time.Millisecond, real, 0, payload{noise: 20}, SourceLimited},
			{5 * time.Second, real, 0, payload{noise: 20}, Challenged},
		}},
		{"unusable sources", []step{
			{0, "0.0.0.0:40000", 0, payload{noise: 20}, Invalid},
			{0, "[ff02::1]:40000", 0, payload{noise: 20}, Invalid},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := New(Config{}, seeded())
			last := map[netip.Addr][CookieLen]byte{}
			for i, s := range c.steps {
				src := ap(s.src)
				port := s.port
				if port == 0 {
					port = 1900
				}
				data := s.data.build(last, src)
				reply, got := v.Datagram(src, port, data, t0.Add(s.at))
				if got != s.want {
					t.Fatalf("step %d (%s, %d bytes at %v): %v, want %v", i+1, s.src, len(data), s.at, got, s.want)
				}
				if got == Challenged {
					if prev, ok := last[src.Addr().Unmap()]; ok && s.at < 30*time.Second && reply != prev {
						t.Errorf("step %d: a new cookie while the old one is live", i+1)
					}
					last[src.Addr().Unmap()] = reply
				}
			}
		})
	}
}

// TestReplySize: a reply is never larger than the datagram that provoked
// it, at every size.
func TestReplySize(t *testing.T) {
	v := New(Config{GlobalRate: 1000}, seeded())
	for n := range 100 {
		src := ap("203.0.113." + strconv.Itoa(n+1) + ":40000")
		reply, out := v.Datagram(src, 1900, make([]byte, n), t0)
		switch {
		case n < CookieLen && out != Short:
			t.Errorf("%d bytes: %v, want short (no reply)", n, out)
		case n >= CookieLen && out != Challenged:
			t.Errorf("%d bytes: %v, want challenged", n, out)
		case out == Challenged && len(reply) > n:
			t.Errorf("%d bytes provoked a %d-byte reply", n, len(reply))
		}
	}
}

// TestForgedFlood: forged datagrams from many sources get at most
// GlobalRate replies a second, the table stays bounded, and a real source
// still proves itself afterwards.
func TestForgedFlood(t *testing.T) {
	v := New(Config{Sources: 64, GlobalRate: 10}, seeded())
	replies := 0
	for i := range 10000 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 40000)
		at := t0.Add(time.Duration(i) * time.Millisecond) // 10 s of flood
		if _, out := v.Datagram(src, 1900, make([]byte, 32), at); out == Challenged {
			replies++
		}
	}
	if replies > 10*10+10 {
		t.Errorf("%d replies in 10 s, want at most 110 (10/s, burst 10)", replies)
	}
	if v.Len() > 64 {
		t.Errorf("table holds %d sources, bound 64", v.Len())
	}
	// Guessing cookies from the forged sources never proves anything.
	for i := range 1000 {
		src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 40000)
		guess := make([]byte, 17)
		seeded().Read(guess)
		if _, out := v.Datagram(src, 1900, guess, t0.Add(10*time.Second)); out == Proven {
			t.Fatal("a guessed cookie proved a forged source")
		}
	}
	real := ap("203.0.113.66:40000")
	at := t0.Add(20 * time.Second)
	c, out := v.Datagram(real, 1900, make([]byte, 20), at)
	if out != Challenged {
		t.Fatalf("after the flood: %v", out)
	}
	if _, out := v.Datagram(real, 1900, append(c[:], '\n'), at.Add(time.Second)); out != Proven {
		t.Fatalf("after the flood, the proof: %v", out)
	}
}

// TestEvicted: a source pushed out of the table cannot prove itself.
func TestEvicted(t *testing.T) {
	v := New(Config{Sources: 2, GlobalRate: 100}, seeded())
	real := ap("203.0.113.66:40000")
	c, _ := v.Datagram(real, 1900, make([]byte, 20), t0)
	v.Datagram(ap("192.0.2.1:40000"), 1900, make([]byte, 20), t0)
	v.Datagram(ap("192.0.2.2:40000"), 1900, make([]byte, 20), t0)
	if _, out := v.Datagram(real, 1900, append(c[:], '\n'), t0.Add(time.Second)); out == Proven {
		t.Fatal("an evicted cookie proved its source")
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("no entropy") }

func TestNoRandomness(t *testing.T) {
	v := New(Config{}, failing{})
	if _, out := v.Datagram(ap("203.0.113.66:40000"), 1900, make([]byte, 20), t0); out != Invalid {
		t.Fatalf("%v, want invalid (never a predictable cookie)", out)
	}
}

func TestOutcomeString(t *testing.T) {
	if Proven.String() != "proven" || Outcome(99).String() != "outcome(99)" {
		t.Error(Proven.String(), Outcome(99).String())
	}
}
