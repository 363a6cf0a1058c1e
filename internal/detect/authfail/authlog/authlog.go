// Package authlog generates deterministic, realistic sshd auth.log traffic with its ground truth, for benchmarks and end-to-end tests of the auth-failure jails.
//
// A log mixes brute-force attackers (IPv4 and IPv6, some walking one /64),
// slow guessers that stay below the threshold, legitimate logins (with the
// odd typo), port scanners, noise from other daemons (CRON, systemd-logind,
// sudo) and log-injection attempts: user names and ident strings that
// carry a victim's address. The ground truth says which sources a jail
// reading the sshd filter in normal mode must ban and which it must never
// ban. Addresses come from documentation and benchmarking ranges
// (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 198.18.0.0/15,
// 2001:db8::/32).
package authlog

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Config sets up a log.
type Config struct {
	Seed       uint64
	Lines      int       // lines to write
	Start      time.Time // time of the first line (default 2026-03-10 06:00 UTC)
	Host       string    // syslog host name (default "bastion")
	MaxRetry   int       // the jail the truth is for (default 5)
	FindTime   time.Duration
	IPv6Prefix int // default 64
}

// Truth is the expected outcome for a jail with the sshd filter in
// normal mode over the log.
type Truth struct {
	Seed       uint64    `json:"seed"`
	Lines      int       `json:"lines"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	Filter     string    `json:"filter"`
	Mode       string    `json:"mode"`
	MaxRetry   int       `json:"maxretry"`
	FindTime   string    `json:"findtime"`
	IPv6Prefix int       `json:"ipv6_prefix"`
	// Ban lists the sources (an IPv4 /32 or an IPv6 prefix) a jail must
	// report at least once; a jail must report no other.
	Ban []string `json:"ban"`
	// Never lists sources that must never be reported: injection victims,
	// legitimate users, slow guessers and the IPv6 neighbours of a /64
	// walker. It is a subset of what Ban leaves out, kept for the checks
	// that matter most.
	Never []string `json:"never"`
	// Failures counts the failure lines written per source.
	Failures map[string]int `json:"failures"`
}

// event is one group of lines written at one moment by one actor.
type event struct {
	at      time.Time
	seq     int
	conn    int          // the connection (its pid is given in time order), 0 for none
	lines   []string     // "#PID#" stands for the connection's pid
	fails   []netip.Addr // the source of each failure line, for the truth
	failIdx []int        // where each failure line is in lines
}

type gen struct {
	cfg    Config
	rng    *rand.Rand
	events []event
	seq    int
	conns  int
	never  map[netip.Prefix]bool
	v4pool uint32 // next address in 198.18.0.0/15
}

// Generate writes cfg.Lines lines to w and returns the truth.
func Generate(w io.Writer, cfg Config) (Truth, error) {
	if cfg.Lines <= 0 {
		return Truth{}, fmt.Errorf("authlog: lines must be positive, not %d", cfg.Lines)
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 3, 10, 6, 0, 0, 0, time.UTC)
	}
	if cfg.Host == "" {
		cfg.Host = "bastion"
	}
	if cfg.MaxRetry == 0 {
		cfg.MaxRetry = 5
	}
	if cfg.FindTime == 0 {
		cfg.FindTime = 10 * time.Minute
	}
	if cfg.IPv6Prefix == 0 {
		cfg.IPv6Prefix = 64
	}
	// About 4 lines a second; grow the horizon until there are enough.
	horizon := time.Duration(float64(cfg.Lines)/4*1.1) * time.Second
	var g *gen
	for {
		g = &gen{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6d6f6174)), never: map[netip.Prefix]bool{}}
		g.build(horizon)
		n := 0
		for _, e := range g.events {
			n += len(e.lines)
		}
		if n >= cfg.Lines {
			break
		}
		horizon *= 2
	}
	sort.SliceStable(g.events, func(i, j int) bool {
		if !g.events[i].at.Equal(g.events[j].at) {
			return g.events[i].at.Before(g.events[j].at)
		}
		return g.events[i].seq < g.events[j].seq
	})
	bw := bufio.NewWriterSize(w, 1<<16)
	written := 0
	// pids grow with time, as the kernel hands them out
	pidRNG := rand.New(rand.NewPCG(cfg.Seed, 0x706964))
	pids := map[int]string{}
	pid := 1000
	var fails []struct {
		at   time.Time
		addr netip.Addr
	}
	var end time.Time
	for _, e := range g.events {
		if written >= cfg.Lines {
			break
		}
		n := min(len(e.lines), cfg.Lines-written)
		p := ""
		if e.conn != 0 {
			if p = pids[e.conn]; p == "" {
				pid += 1 + pidRNG.IntN(30)
				if pid > 4194000 {
					pid = 1000
				}
				p = strconv.Itoa(pid)
				pids[e.conn] = p
			}
		}
		for _, l := range e.lines[:n] {
			bw.WriteString(stamp(e.at))
			bw.WriteByte(' ')
			bw.WriteString(cfg.Host)
			bw.WriteByte(' ')
			bw.WriteString(strings.Replace(l, "#PID#", p, 1))
			bw.WriteByte('\n')
		}
		written += n
		end = e.at
		// failure lines are tagged in order; a cut event keeps the ones
		// it wrote
		for i, a := range e.fails {
			if e.failIdx[i] < n {
				fails = append(fails, struct {
					at   time.Time
					addr netip.Addr
				}{e.at, a})
			}
		}
	}
	if err := bw.Flush(); err != nil {
		return Truth{}, fmt.Errorf("authlog: write: %w", err)
	}
	tr := Truth{
		Seed: cfg.Seed, Lines: written, Start: cfg.Start, End: end,
		Filter: "sshd", Mode: "normal", MaxRetry: cfg.MaxRetry,
		FindTime: cfg.FindTime.String(), IPv6Prefix: cfg.IPv6Prefix,
		Failures: map[string]int{},
	}
	// A source is banned when MaxRetry failures fall within FindTime.
	times := map[netip.Prefix][]time.Time{}
	banned := map[netip.Prefix]bool{}
	for _, f := range fails {
		k := key(f.addr, cfg.IPv6Prefix)
		tr.Failures[k.String()]++
		ts := append(times[k], f.at)
		for len(ts) > 0 && !ts[0].After(f.at.Add(-cfg.FindTime)) {
			ts = ts[1:]
		}
		if len(ts) >= cfg.MaxRetry {
			banned[k] = true
			ts = ts[:0]
		}
		times[k] = ts
	}
	for k := range banned {
		if g.never[k] {
			return Truth{}, fmt.Errorf("authlog: generator bug: %s is both banned and never-banned", k)
		}
		tr.Ban = append(tr.Ban, k.String())
	}
	for k := range g.never {
		tr.Never = append(tr.Never, k.String())
	}
	slices.Sort(tr.Ban)
	slices.Sort(tr.Never)
	return tr, nil
}

func key(a netip.Addr, v6 int) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(v6)
	return p
}

func stamp(t time.Time) string { return t.Format(time.Stamp) }

func (g *gen) add(at time.Time, conn int, lines []string, fails []netip.Addr, failAt []int) {
	g.seq++
	// the log has one-second stamps: so must the truth
	g.events = append(g.events, event{at: at.Truncate(time.Second), seq: g.seq, conn: conn, lines: lines, fails: fails, failIdx: failAt})
}

// nextPID starts a connection (or a process) whose pid is allocated when
// its first line is written.
func (g *gen) nextPID() int {
	g.conns++
	return g.conns
}

func (g *gen) port() int { return 1024 + g.rng.IntN(64000) }

func (g *gen) jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.5 + g.rng.Float64()))
}

func (g *gen) v4() netip.Addr {
	g.v4pool++
	n := g.v4pool
	return netip.AddrFrom4([4]byte{198, 18 + byte(n>>16&1), byte(n >> 8), byte(n)})
}

func (g *gen) iid() [8]byte {
	var b [8]byte
	for i := range b {
		b[i] = byte(g.rng.IntN(256))
	}
	return b
}

func v6(prefix [8]byte, iid [8]byte) netip.Addr {
	var b [16]byte
	copy(b[:8], prefix[:])
	copy(b[8:], iid[:])
	return netip.AddrFrom16(b)
}

func p64(a, b, c, d uint16) [8]byte {
	return [8]byte{byte(a >> 8), byte(a), byte(b >> 8), byte(b), byte(c >> 8), byte(c), byte(d >> 8), byte(d)}
}

var (
	badUsers  = []string{"admin", "test", "user", "oracle", "postgres", "ubuntu", "git", "guest", "ftpuser", "pi", "support", "deploy1", "hadoop", "minecraft", "nagios", "jenkins", "teamspeak", "steam", "www", "mysql"}
	realUsers = []string{"alice", "bob", "carol", "deploy", "backup"}
)

// build schedules every actor's events up to the horizon.
func (g *gen) build(h time.Duration) {
	start := g.cfg.Start
	end := start.Add(h)
	hours := h.Hours()

	// noise from other daemons
	for t := start; t.Before(end); t = t.Add(time.Minute) {
		g.add(t.Add(time.Second), g.nextPID(), []string{
			"CRON[#PID#]: pam_unix(cron:session): session opened for user root(uid=0) by root(uid=0)",
			"CRON[#PID#]: pam_unix(cron:session): session closed for user root",
		}, nil, nil)
	}
	for t := start; t.Before(end); t = t.Add(g.jitter(17 * time.Minute)) {
		g.add(t, g.nextPID(), []string{
			fmt.Sprintf("sudo:    alice : TTY=pts/%d ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl status nginx", g.rng.IntN(4)),
			"sudo[#PID#]: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)",
			"sudo[#PID#]: pam_unix(sudo:session): session closed for user root",
		}, nil, nil)
	}

	// legitimate users: keys, sometimes a password with a typo first
	for i, u := range realUsers {
		var addr netip.Addr
		if i == 4 {
			// an IPv6 admin in the same /48 as a /64 walker
			addr = v6(p64(0x2001, 0xdb8, 0xbad, 0xffff), [8]byte{0, 0, 0, 0, 0, 0, 0, 0x10})
		} else {
			addr = netip.AddrFrom4([4]byte{203, 0, 113, byte(10 + i)})
		}
		g.never[key(addr, g.cfg.IPv6Prefix)] = true
		for t := start.Add(g.jitter(20 * time.Minute)); t.Before(end); t = t.Add(15*time.Minute + g.jitter(40*time.Minute)) {
			g.login(t, u, addr, i)
		}
	}

	// attackers: IPv4 and single IPv6 addresses, fast bursts
	campaigns := int(hours*2.2) + 3
	for i := 0; i < campaigns; i++ {
		var a netip.Addr
		if i%5 == 4 {
			a = v6(p64(0x2001, 0xdb8, 0xa77, uint16(i)), [8]byte{0, 0, 0, 0, 0, 0, 0, 1})
		} else {
			a = g.v4()
		}
		t := start.Add(time.Duration(g.rng.Int64N(int64(h))))
		n := 10 + g.rng.IntN(300)
		every := time.Duration(2+g.rng.IntN(18)) * time.Second
		for j := 0; j < n && t.Before(end); j++ {
			g.attempt(t, a, badUsers[g.rng.IntN(len(badUsers))], g.rng.IntN(3) == 0, 3)
			t = t.Add(g.jitter(every))
		}
	}

	// IPv6 walkers: each attempt from a new address in one /64
	walkers := int(hours/3) + 1
	for i := 0; i < walkers; i++ {
		prefix := p64(0x2001, 0xdb8, 0xbad, uint16(i))
		t := start.Add(time.Duration(g.rng.Int64N(int64(h))))
		n := 8 + g.rng.IntN(60)
		for j := 0; j < n && t.Before(end); j++ {
			g.attempt(t, v6(prefix, g.iid()), "root", true, 3)
			t = t.Add(g.jitter(15 * time.Second))
		}
	}

	// slow guessers: one password a few minutes apart, never 3 in 10m
	slow := int(hours/2) + 2
	for i := 0; i < slow; i++ {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(100 + i%100)})
		if i >= 100 {
			a = g.v4()
		}
		g.never[key(a, g.cfg.IPv6Prefix)] = true
		for t := start.Add(time.Duration(g.rng.Int64N(int64(h / 2)))); t.Before(end); t = t.Add(6*time.Minute + time.Duration(g.rng.IntN(180))*time.Second) {
			g.attempt(t, a, "root", true, 1)
		}
	}

	// scanners: banners and closed connections, no authentication
	scans := int(hours*40) + 5
	for i := 0; i < scans; i++ {
		a := g.v4()
		t := start.Add(time.Duration(g.rng.Int64N(int64(h))))
		g.scan(t, a)
	}

	// log injection: user names and ident strings with a victim's address
	victims := []netip.Addr{
		netip.MustParseAddr("192.0.2.66"), netip.MustParseAddr("192.0.2.67"),
		netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("2001:db8:66::66"),
	}
	for _, v := range victims {
		g.never[key(v, g.cfg.IPv6Prefix)] = true
	}
	injectors := int(hours/2) + 2
	for i := 0; i < injectors; i++ {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i%99)})
		if i >= 99 {
			a = g.v4()
		}
		v := victims[i%len(victims)]
		t := start.Add(time.Duration(g.rng.Int64N(int64(h))))
		n := 6 + g.rng.IntN(30)
		for j := 0; j < n && t.Before(end); j++ {
			g.inject(t, a, v)
			t = t.Add(g.jitter(8 * time.Second))
		}
	}
}

func sshd(_ int, format string, a ...any) string {
	return "sshd[#PID#]: " + fmt.Sprintf(format, a...)
}

// attempt is one brute-force connection: one to maxTries passwords.
func (g *gen) attempt(t time.Time, a netip.Addr, user string, valid bool, maxTries int) {
	pid, port := g.nextPID(), g.port()
	var lines []string
	var fails []netip.Addr
	var at []int
	fail := func(l string) {
		at = append(at, len(lines))
		fails = append(fails, a)
		lines = append(lines, l)
	}
	tries := 1 + g.rng.IntN(maxTries)
	if !valid {
		fail(sshd(pid, "Invalid user %s from %s port %d", user, a, port))
		for k := 0; k < tries; k++ {
			lines = append(lines, sshd(pid, "pam_unix(sshd:auth): check pass; user unknown"))
			lines = append(lines, sshd(pid, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s", a))
			fail(sshd(pid, "Failed password for invalid user %s from %s port %d ssh2", user, a, port))
		}
		lines = append(lines, sshd(pid, "Received disconnect from %s port %d:11: Bye Bye [preauth]", a, port))
		lines = append(lines, sshd(pid, "Disconnected from invalid user %s %s port %d [preauth]", user, a, port))
	} else {
		for k := 0; k < tries; k++ {
			if k == 0 {
				lines = append(lines, sshd(pid, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s", a, user))
			}
			fail(sshd(pid, "Failed password for %s from %s port %d ssh2", user, a, port))
		}
		if tries == 3 && g.rng.IntN(2) == 0 {
			lines = append(lines, sshd(pid, "error: maximum authentication attempts exceeded for %s from %s port %d ssh2 [preauth]", user, a, port))
			at = append(at, len(lines)-1)
			fails = append(fails, a)
			lines = append(lines, sshd(pid, "Disconnecting authenticating user %s %s port %d: Too many authentication failures [preauth]", user, a, port))
		} else {
			lines = append(lines, sshd(pid, "Connection closed by authenticating user %s %s port %d [preauth]", user, a, port))
		}
		if tries > 1 {
			lines = append(lines, sshd(pid, "PAM %d more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s", tries-1, a, user))
		}
	}
	g.add(t, pid, lines, fails, at)
}

// login is a legitimate session: a key, or a password after a typo.
func (g *gen) login(t time.Time, user string, a netip.Addr, uid int) {
	pid, port := g.nextPID(), g.port()
	var lines []string
	var fails []netip.Addr
	var at []int
	if g.rng.IntN(5) == 0 {
		lines = append(lines, sshd(pid, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s  user=%s", a, user))
		at = append(at, len(lines))
		fails = append(fails, a)
		lines = append(lines, sshd(pid, "Failed password for %s from %s port %d ssh2", user, a, port))
		lines = append(lines, sshd(pid, "Accepted password for %s from %s port %d ssh2", user, a, port))
	} else {
		lines = append(lines, sshd(pid, "Accepted publickey for %s from %s port %d ssh2: ED25519 SHA256:%s", user, a, port, fingerprint(user)))
	}
	session := 100 + g.rng.IntN(9000)
	lines = append(lines,
		sshd(pid, "pam_unix(sshd:session): session opened for user %s(uid=%d) by %s(uid=0)", user, 1000+uid, user),
		fmt.Sprintf("systemd-logind[812]: New session %d of user %s.", session, user),
	)
	g.add(t, pid, lines, fails, at)
	d := g.jitter(9 * time.Minute)
	g.add(t.Add(d), pid, []string{
		sshd(pid, "Received disconnect from %s port %d:11: disconnected by user", a, port),
		sshd(pid, "Disconnected from user %s %s port %d", user, a, port),
		sshd(pid, "pam_unix(sshd:session): session closed for user %s", user),
		fmt.Sprintf("systemd-logind[812]: Session %d logged out. Waiting for processes to exit.", session),
		fmt.Sprintf("systemd-logind[812]: Removed session %d.", session),
	}, nil, nil)
}

func fingerprint(user string) string {
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	out := make([]byte, 43)
	h := uint32(2166136261)
	for i := range out {
		h = (h ^ uint32(user[i%len(user)])) * 16777619
		out[i] = b64[h%64]
	}
	return string(out)
}

// scan is a connection that never authenticates.
func (g *gen) scan(t time.Time, a netip.Addr) {
	pid, port := g.nextPID(), g.port()
	var l string
	switch g.rng.IntN(4) {
	case 0:
		l = sshd(pid, "Connection closed by %s port %d [preauth]", a, port)
	case 1:
		l = sshd(pid, "error: kex_exchange_identification: Connection closed by remote host")
		g.add(t, pid, []string{l, sshd(pid, "Connection closed by %s port %d", a, port)}, nil, nil)
		return
	case 2:
		l = sshd(pid, "Unable to negotiate with %s port %d: no matching host key type found. Their offer: ssh-rsa,ssh-dss [preauth]", a, port)
	default:
		l = sshd(pid, "banner exchange: Connection from %s port %d: invalid format", a, port)
	}
	g.add(t, pid, []string{l}, nil, nil)
}

// inject is an attacker at a trying user names and ident strings that
// name the victim v.
func (g *gen) inject(t time.Time, a, v netip.Addr) {
	pid, port := g.nextPID(), g.port()
	var lines []string
	var fails []netip.Addr
	var at []int
	fail := func(l string) {
		at = append(at, len(lines))
		fails = append(fails, a)
		lines = append(lines, l)
	}
	users := []string{
		fmt.Sprintf("Failed password for root from %s port 22 ssh2", v),
		fmt.Sprintf("from %s", v),
		fmt.Sprintf("Invalid user root from %s", v),
		fmt.Sprintf("x from %s port 22", v),
		fmt.Sprintf("root %s port 22", v),
	}
	switch k := g.rng.IntN(len(users) + 1); {
	case k < len(users):
		u := users[k]
		fail(sshd(pid, "Invalid user %s from %s port %d", u, a, port))
		lines = append(lines, sshd(pid, "pam_unix(sshd:auth): check pass; user unknown"))
		lines = append(lines, sshd(pid, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=%s", a))
		fail(sshd(pid, "Failed password for invalid user %s from %s port %d ssh2", u, a, port))
		lines = append(lines, sshd(pid, "Connection closed by invalid user %s %s port %d [preauth]", u, a, port))
	default:
		// an ident string; counted in ddos mode only, so not a failure
		// here, then a plain attempt on another connection
		g.add(t, pid, []string{sshd(pid, "Bad protocol version identification 'SSH-2.0-x from %s port 22' from %s port %d", v, a, port)}, nil, nil)
		pid, port = g.nextPID(), g.port()
		fail(sshd(pid, "Invalid user %s from %s port %d", "admin", a, port))
		lines = append(lines, sshd(pid, "Connection closed by invalid user admin %s port %d [preauth]", a, port))
	}
	g.add(t, pid, lines, fails, at)
}
