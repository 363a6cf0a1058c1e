// Command banlatency measures the ban latency of a running moat daemon: from
// a failure burst appended to the log the daemon follows, to the address
// being an element of the kernel's ban set.
//
// Run it inside the daemon's network namespace (ip netns exec NS banlatency ...),
// as root: it reads the set over netlink.
//
//	banlatency -log /path/auth.log [-n 200] [-maxretry 5] [-table moat]
//
// For each of n distinct IPv4 addresses (198.18.0.0/15, counting up from
// -first), it appends maxretry sshd "Failed password" lines for the address
// in one write(2) to the log (O_APPEND), and then looks the address up in
// the set ban_v4 with a single-key netlink GET (nft.Conn.HasElement) every
// -poll until it is there. The latency is from just before the write to the
// first lookup that finds it. Addresses are done one after the other, -gap
// apart, so each measures an idle daemon, not a queue. It prints the
// distribution (p50, p90, p99, max) and the cost of one lookup and of one
// full listing of the set (nft.Conn.Elements) at the end, for scale.
//
// It also listens to the kernel's nftables notifications (what `nft
// monitor` shows) and reports, per address, when the NEWSETELEM of the
// commit that added it arrived: a second measure of the same moment that
// does not depend on the polling.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/nftables"

	"github.com/moat-sec/moat/internal/nft"
)

type result struct {
	// Commit: from the write to the NEWSETELEM notification.
	Commit   stats   `json:"commit"`
	N        int     `json:"n"`
	MaxRetry int     `json:"maxretry"`
	Timeouts int     `json:"timeouts"`
	P50      float64 `json:"p50_ms"`
	P90      float64 `json:"p90_ms"`
	P99      float64 `json:"p99_ms"`
	Max      float64 `json:"max_ms"`
	Min      float64 `json:"min_ms"`
	Mean     float64 `json:"mean_ms"`
	// LookupUS is the median cost of one HasElement (a miss), µs.
	LookupUS float64 `json:"lookup_us"`
	// ListMS is the cost of one Elements listing of the set at the end, and
	// SetSize its length.
	ListMS  float64   `json:"list_ms"`
	SetSize int       `json:"set_size"`
	All     []float64 `json:"latencies_ms,omitempty"`
}

type stats struct {
	N                        int
	P50, P90, P99, Max, Mean float64
}

func summarize(lat []float64) stats {
	if len(lat) == 0 {
		return stats{}
	}
	lat = slices.Clone(lat)
	slices.Sort(lat)
	q := func(p float64) float64 { // nearest rank
		i := int(p*float64(len(lat))+0.999999) - 1
		return lat[max(0, min(i, len(lat)-1))]
	}
	st := stats{N: len(lat), P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: lat[len(lat)-1]}
	for _, l := range lat {
		st.Mean += l / float64(len(lat))
	}
	return st
}

// watchCommits records when each IPv4 element added to any set arrives in
// a NEWSETELEM notification; the returned function stops and returns them.
func watchCommits() (func() map[netip.Addr]time.Time, error) {
	nc, err := nftables.New()
	if err != nil {
		return nil, err
	}
	mon := nftables.NewMonitor(nftables.WithMonitorObject(nftables.MonitorObjectElements), nftables.WithMonitorAction(nftables.MonitorActionNew))
	ch, err := nc.AddMonitor(mon)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	seen := map[netip.Addr]time.Time{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			at := time.Now()
			if ev.Type != nftables.MonitorEventTypeNewSetElem || ev.Error != nil {
				continue
			}
			els, _ := ev.Data.([]nftables.SetElement)
			mu.Lock()
			for _, el := range els {
				if a, ok := netip.AddrFromSlice(el.Key); ok && a.Is4() {
					if _, dup := seen[a]; !dup {
						seen[a] = at
					}
				}
			}
			mu.Unlock()
		}
	}()
	stop := func() map[netip.Addr]time.Time {
		mon.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		return seen
	}
	return stop, nil
}

func main() {
	logPath := flag.String("log", "", "the log file the daemon follows (required)")
	n := flag.Int("n", 200, "bans to measure (distinct addresses)")
	maxRetry := flag.Int("maxretry", 5, "failure lines per address (the jail's maxretry)")
	table := flag.String("table", "moat", "moat's inet table")
	first := flag.Int("first", 1, "index of the first address in 198.18.0.0/15")
	gap := flag.Duration("gap", 20*time.Millisecond, "pause after each ban is seen")
	poll := flag.Duration("poll", 100*time.Microsecond, "pause between lookups")
	timeout := flag.Duration("timeout", 5*time.Second, "give up on an address after this long")
	host := flag.String("host", "bench", "syslog host name in the lines")
	jsonOut := flag.String("json", "", "also write the result (with every latency) to this file")
	flag.Parse()
	if *logPath == "" || *n < 1 || *maxRetry < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*logPath, *n, *maxRetry, *table, *first, *gap, *poll, *timeout, *host, *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "banlatency:", err)
		os.Exit(1)
	}
}

func addrAt(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18 + byte(i>>16&1), byte(i >> 8), byte(i)})
}

// burst is maxretry sshd failure lines for a, as sshd writes them through
// syslog, with the current time.
func burst(host string, a netip.Addr, pid, maxRetry int) []byte {
	var b []byte
	stamp := time.Now().Format(time.Stamp)
	for k := range maxRetry {
		b = append(b, stamp...)
		b = append(b, ' ')
		b = append(b, host...)
		b = append(b, " sshd["...)
		b = strconv.AppendInt(b, int64(pid), 10)
		b = append(b, "]: Failed password for root from "...)
		b = a.AppendTo(b)
		b = append(b, " port "...)
		b = strconv.AppendInt(b, int64(40000+k), 10)
		b = append(b, " ssh2\n"...)
	}
	return b
}

func run(logPath string, n, maxRetry int, table string, first int, gap, poll, timeout time.Duration, host, jsonOut string) error {
	c, err := nft.Open()
	if err != nil {
		return err
	}
	defer c.Close()
	set := nft.SetRef{Table: table, Name: "ban_v4"}
	if ok, err := c.HasSet(set); err != nil || !ok {
		return fmt.Errorf("set inet %s ban_v4: present=%v err=%v (is the daemon running in this namespace?)", table, ok, err)
	}
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	stopWatch, err := watchCommits()
	if err != nil {
		return fmt.Errorf("nftables monitor: %w", err)
	}
	written := map[netip.Addr]time.Time{}

	var lat []float64
	var lookups []time.Duration
	res := result{N: n, MaxRetry: maxRetry}
	for i := range n {
		a := addrAt(first + i)
		p := netip.PrefixFrom(a, 32)
		if ok, err := c.HasElement(set, p); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%s is banned already: use a fresh daemon or another -first", a)
		}
		line := burst(host, a, 20000+i, maxRetry)
		t0 := time.Now()
		if _, err := f.Write(line); err != nil {
			return err
		}
		written[a] = t0
		for {
			l0 := time.Now()
			ok, err := c.HasElement(set, p)
			l1 := time.Now()
			if err != nil {
				return err
			}
			if ok {
				lat = append(lat, float64(l1.Sub(t0))/1e6)
				break
			}
			lookups = append(lookups, l1.Sub(l0))
			if l1.Sub(t0) > timeout {
				res.Timeouts++
				fmt.Fprintf(os.Stderr, "banlatency: %s not banned after %v\n", a, timeout)
				break
			}
			time.Sleep(poll)
		}
		time.Sleep(gap)
	}
	if len(lat) == 0 {
		return fmt.Errorf("no ban seen (%d timeouts)", res.Timeouts)
	}
	time.Sleep(100 * time.Millisecond)
	var commit []float64
	for a, at := range stopWatch() {
		if t0, ok := written[a]; ok {
			commit = append(commit, float64(at.Sub(t0))/1e6)
		}
	}
	res.Commit = summarize(commit)
	res.All = slices.Clone(lat)
	slices.Sort(lat)
	q := func(p float64) float64 { // nearest rank
		i := int(p*float64(len(lat))+0.999999) - 1
		return lat[max(0, min(i, len(lat)-1))]
	}
	res.P50, res.P90, res.P99, res.Max, res.Min = q(0.50), q(0.90), q(0.99), lat[len(lat)-1], lat[0]
	for _, l := range lat {
		res.Mean += l / float64(len(lat))
	}
	if len(lookups) > 0 {
		slices.Sort(lookups)
		res.LookupUS = float64(lookups[len(lookups)/2]) / 1e3
	}
	t := time.Now()
	els, err := c.Elements(set)
	if err != nil {
		return err
	}
	res.ListMS, res.SetSize = float64(time.Since(t))/1e6, len(els)

	fmt.Printf("%d bans (maxretry %d lines in one write each), %d timeouts; polled with one-key lookups: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms, min %.2f ms, mean %.2f ms\n",
		len(lat), maxRetry, res.Timeouts, res.P50, res.P90, res.P99, res.Max, res.Min, res.Mean)
	fmt.Printf("by commit notification (%d of %d): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms, mean %.2f ms\n",
		res.Commit.N, len(lat), res.Commit.P50, res.Commit.P90, res.Commit.P99, res.Commit.Max, res.Commit.Mean)
	fmt.Printf("one set lookup (miss): %.0f µs median; one full listing of ban_v4 (%d elements): %.2f ms\n", res.LookupUS, res.SetSize, res.ListMS)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if res.Timeouts > 0 {
		return fmt.Errorf("%d of %d addresses were not banned within %v", res.Timeouts, n, timeout)
	}
	return nil
}
