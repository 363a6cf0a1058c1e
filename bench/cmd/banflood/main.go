// Command banflood floods the log a moat daemon follows with single sshd
// failures from distinct addresses (each below maxretry, so none may be
// banned), mixes in a real attacker's failures, and reports the daemon's
// memory, how far its reading falls behind, and how long after the
// attacker's maxretry-th failure line the attacker is in the kernel's ban
// set.
//
// Run it inside the daemon's network namespace, as root:
//
//	banflood -log LOG -pid DAEMON_PID -socket RUN/moat.sock [-rate 100000] [-duration 10s]
//	         [-attacker 203.0.113.77] [-every 1s] [-start 2s] [-maxretry 5]
//
// Flood line i comes from the i-th address of 100.64.0.0/10, so every line
// is a new source. Lines are written every -tick (10ms) in one write(2)
// each, as many as the rate has made due. The attacker writes one failure
// every -every from -start on, maxretry in all. Every second the daemon's
// VmRSS (/proc/PID/status) and the lines its jail has read (the API's
// status) are sampled. The ban is watched with a one-key netlink lookup in
// ban_v4 every millisecond. At the end the set must hold the attacker and
// no flood address.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/moat-sec/moat/internal/api"
	"github.com/moat-sec/moat/internal/nft"
)

type sample struct {
	At      float64 `json:"at_s"`
	RSSMiB  float64 `json:"rss_mib"`
	Written uint64  `json:"written"`
	Read    uint64  `json:"read"` // lines the jail has read
}

type result struct {
	Rate        int      `json:"rate"`
	Duration    float64  `json:"duration_s"`
	Written     uint64   `json:"written"`
	FloodAddrs  int      `json:"flood_addrs"`
	MaxRSSMiB   float64  `json:"max_rss_mib"`
	StartRSSMiB float64  `json:"start_rss_mib"`
	EndRSSMiB   float64  `json:"end_rss_mib"`
	MaxLag      uint64   `json:"max_lag_lines"`
	DrainS      float64  `json:"drain_s"` // after the flood, until the jail had read every line
	Attacker    string   `json:"attacker"`
	Every       float64  `json:"attacker_every_s"`
	BanDelayMS  float64  `json:"ban_delay_ms"` // from the maxretry-th line's write; -1: not banned
	EarlyBan    bool     `json:"early_ban"`    // banned before its maxretry-th line
	SetSize     int      `json:"set_size_end"`
	FloodBanned int      `json:"flood_banned"`
	Samples     []sample `json:"samples"`
}

func main() {
	logPath := flag.String("log", "", "the log file the daemon follows (required)")
	pid := flag.Int("pid", 0, "the daemon's pid, for its RSS (required)")
	socket := flag.String("socket", "", "the daemon's API socket, for the lines it has read")
	rate := flag.Int("rate", 100000, "flood lines per second")
	duration := flag.Duration("duration", 10*time.Second, "flood duration")
	tick := flag.Duration("tick", 10*time.Millisecond, "write interval")
	attacker := flag.String("attacker", "203.0.113.77", "the attacker's address")
	every := flag.Duration("every", time.Second, "time between the attacker's failures")
	start := flag.Duration("start", 2*time.Second, "the attacker's first failure, from the flood's start")
	maxRetry := flag.Int("maxretry", 5, "the jail's maxretry")
	table := flag.String("table", "moat", "moat's inet table")
	drainMax := flag.Duration("drain", 60*time.Second, "wait at most this long for the daemon to read everything")
	jsonOut := flag.String("json", "", "also write the result (with the samples) here")
	flag.Parse()
	if *logPath == "" || *pid == 0 {
		flag.Usage()
		os.Exit(2)
	}
	a, err := netip.ParseAddr(*attacker)
	if err != nil || !a.Is4() {
		fmt.Fprintln(os.Stderr, "banflood: -attacker must be an IPv4 address")
		os.Exit(2)
	}
	res, err := run(*logPath, *pid, *socket, *rate, *duration, *tick, a, *every, *start, *maxRetry, *table, *drainMax)
	if res != nil {
		report(res)
		if *jsonOut != "" {
			b, _ := json.MarshalIndent(res, "", "  ")
			os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "banflood:", err)
		os.Exit(1)
	}
}

// floodAddr is the i-th address of 100.64.0.0/10.
func floodAddr(i int) netip.Addr {
	k := uint32(100)<<24 | uint32(64)<<16 + uint32(i%(1<<22))
	return netip.AddrFrom4([4]byte{byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)})
}

func line(b []byte, stamp string, pid int, user string, a netip.Addr, port int) []byte {
	b = append(b, stamp...)
	b = append(b, " bench sshd["...)
	b = strconv.AppendInt(b, int64(pid), 10)
	b = append(b, "]: Failed password for invalid user "...)
	b = append(b, user...)
	b = append(b, " from "...)
	b = a.AppendTo(b)
	b = append(b, " port "...)
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, " ssh2\n"...)
	return b
}

func run(logPath string, pid int, socket string, rate int, duration, tick time.Duration, attacker netip.Addr, every, start time.Duration,
	maxRetry int, table string, drainMax time.Duration) (*result, error) {
	c, err := nft.Open()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	set := nft.SetRef{Table: table, Name: "ban_v4"}
	ap := netip.PrefixFrom(attacker, 32)
	if ok, err := c.HasElement(set, ap); err != nil {
		return nil, err
	} else if ok {
		return nil, fmt.Errorf("%s is banned already", attacker)
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var client *api.Client
	if socket != "" {
		client = api.NewClient(socket)
	}
	jailLines := func() uint64 {
		if client == nil {
			return 0
		}
		st, err := client.Status()
		if err != nil {
			return 0
		}
		var n uint64
		for _, j := range st.Jails {
			n += j.Lines
		}
		return n
	}
	base := jailLines()

	res := &result{Rate: rate, Duration: duration.Seconds(), Attacker: attacker.String(), Every: every.Seconds(), BanDelayMS: -1}
	var written atomic.Uint64
	var lastAttack atomic.Int64 // unix ns of the maxretry-th attacker line's write
	bannedAt := make(chan time.Time, 1)
	stopWatch := make(chan struct{})
	go func() { // the ban watcher
		for {
			select {
			case <-stopWatch:
				return
			default:
			}
			if ok, _ := c.HasElement(set, ap); ok {
				bannedAt <- time.Now()
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	stopSample := make(chan struct{})
	sampled := make(chan []sample, 1)
	t0 := time.Now()
	res.StartRSSMiB = rss(pid)
	go func() { // the sampler
		var ss []sample
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-stopSample:
				sampled <- ss
				return
			case <-tk.C:
				r := jailLines()
				if r >= base {
					r -= base
				}
				ss = append(ss, sample{At: time.Since(t0).Seconds(), RSSMiB: rss(pid), Written: written.Load(), Read: r})
			}
		}
	}()

	buf := make([]byte, 0, 1<<20)
	sent, attacks := 0, 0
	total := int(float64(rate) * duration.Seconds())
	tk := time.NewTicker(tick)
	for sent < total || attacks < maxRetry {
		now := <-tk.C
		el := now.Sub(t0)
		due := min(total, int(float64(rate)*el.Seconds()))
		stamp := now.Format(time.Stamp)
		buf = buf[:0]
		for ; sent < due; sent++ {
			buf = line(buf, stamp, 30000+sent%100000, "admin", floodAddr(sent), 1024+sent%60000)
		}
		last := false
		if attacks < maxRetry && el >= start+time.Duration(attacks)*every {
			buf = line(buf, stamp, 7777, "root", attacker, 50000+attacks)
			attacks++
			last = attacks == maxRetry
		}
		if len(buf) == 0 {
			continue
		}
		w0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			tk.Stop()
			return nil, err
		}
		written.Store(uint64(sent + attacks))
		if last {
			lastAttack.Store(w0.UnixNano())
		}
	}
	tk.Stop()
	floodEnd := time.Now()
	res.Written = written.Load()
	res.FloodAddrs = sent

	// wait for the daemon to read everything, and for the ban
	if client != nil {
		for time.Since(floodEnd) < drainMax {
			if r := jailLines(); r >= base && r-base >= res.Written {
				res.DrainS = time.Since(floodEnd).Seconds()
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	var banErr error
	select {
	case at := <-bannedAt:
		la := time.Unix(0, lastAttack.Load())
		res.BanDelayMS = float64(at.Sub(la)) / 1e6
		res.EarlyBan = at.Before(la)
	case <-time.After(5 * time.Second):
		close(stopWatch)
		banErr = fmt.Errorf("the attacker %s was not banned", attacker)
	}
	close(stopSample)
	res.Samples = <-sampled
	res.EndRSSMiB = rss(pid)
	for _, s := range res.Samples {
		res.MaxRSSMiB = max(res.MaxRSSMiB, s.RSSMiB)
		if s.Written > s.Read {
			res.MaxLag = max(res.MaxLag, s.Written-s.Read)
		}
	}
	res.MaxRSSMiB = max(res.MaxRSSMiB, res.EndRSSMiB)
	els, err := c.Elements(set)
	if err != nil {
		return res, err
	}
	res.SetSize = len(els)
	for _, el := range els {
		if el.Prefix != ap {
			res.FloodBanned++
		}
	}
	var errs []error
	if banErr != nil {
		errs = append(errs, banErr)
	}
	if res.FloodBanned > 0 {
		errs = append(errs, fmt.Errorf("%d flood addresses were banned", res.FloodBanned))
	}
	if res.EarlyBan {
		errs = append(errs, errors.New("the attacker was banned before its maxretry-th failure"))
	}
	if client != nil && res.DrainS == 0 {
		errs = append(errs, fmt.Errorf("the daemon had not read every line %v after the flood", drainMax))
	}
	return res, errors.Join(errs...)
}

// rss is VmRSS of pid in MiB.
func rss(pid int) float64 {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fs := strings.Fields(v)
			if len(fs) > 0 {
				kb, _ := strconv.ParseFloat(fs[0], 64)
				return kb / 1024
			}
		}
	}
	return 0
}

func report(r *result) {
	fmt.Printf("flood: %d lines in %.0f s (%d/s, every line a new address), attacker %s failing every %v\n",
		r.Written, r.Duration, r.Rate, r.Attacker, time.Duration(r.Every*float64(time.Second)))
	fmt.Printf("daemon RSS: %.1f MiB before, max %.1f MiB (1 s samples), %.1f MiB at the end\n", r.StartRSSMiB, r.MaxRSSMiB, r.EndRSSMiB)
	fmt.Printf("reading: max lag %d lines at a sample; every line read %.2f s after the flood ended\n", r.MaxLag, r.DrainS)
	if r.BanDelayMS >= 0 {
		fmt.Printf("attacker banned %.1f ms after its maxretry-th failure line was written\n", r.BanDelayMS)
	} else {
		fmt.Println("attacker NOT banned")
	}
	fmt.Printf("ban_v4 at the end: %d elements, %d of them flood addresses\n", r.SetSize, r.FloodBanned)
	var rows []string
	for _, s := range r.Samples {
		rows = append(rows, fmt.Sprintf("%.0fs:%.0fMiB/lag%d", s.At, s.RSSMiB, s.Written-min(s.Written, s.Read)))
	}
	fmt.Println("samples:", strings.Join(rows, " "))
}
