// Command traplat measures how long after a completed TCP handshake on a
// honeypot port the source is in the kernel's ban set.
//
// It runs in the attacker's network namespace and reads the server's
// nftables over netlink, through a socket opened in the server's namespace
// (-netns /run/netns/NAME):
//
//	ip netns exec ATTACKER traplat -netns /run/netns/SERVER -server 192.0.2.1 -port 2323 -n 400
//	traplat addrs -n 400    # the source addresses it uses, one a line
//
// For each of n distinct source addresses (203.0.113.1-254, then
// 198.18.0.1 up; they must be on the attacker's interface), one after the
// other, -gap apart: check that the address is not in ban_v4; bind a TCP
// socket to it; t0; a blocking connect(2) to the trap; t1 when it returns;
// then single-key netlink GETs of the address in set ban_v4 (what
// `nft get element` does), back to back, until one finds it: t2 when that
// reply arrived. The socket is then closed with SO_LINGER 0.
//
// connect(2) returns when the SYN-ACK has arrived: the client's kernel
// sends the ACK that completes the handshake before it wakes the caller,
// and the kernel rule that bans fires on that ACK in the server's input
// path. So t2-t1 bounds from above the time from the attacker's completed
// handshake to the ban (it includes the ACK's trip over the veth and one
// lookup's round trip); "first lookup hit" says how often the element was
// there already at the first lookup after connect returned. t2-t0 is the
// whole handshake plus the ban, SYN to ban.
//
// It also listens to the server's nftables notifications (what `nft
// monitor` shows): the kernel rule's own adds (nft_dynset) send none, but
// the daemon's netlink commit of the same ban does, so that gives the
// daemon's record of the ban, t3-t1.
//
// With -listen, traplat itself accepts (and closes) on the trap port in the
// server's namespace: for a run without the daemon, the kernel rule alone.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

func addrAt(i int) netip.Addr {
	if i < 254 {
		return netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)})
	}
	j := i - 254 + 1
	return netip.AddrFrom4([4]byte{198, 18 + byte(j>>16&1), byte(j >> 8), byte(j)})
}

type stats struct {
	N                             int
	P50, P90, P99, Max, Min, Mean float64 // µs
}

func summarize(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	v = slices.Clone(v)
	slices.Sort(v)
	q := func(p float64) float64 { // nearest rank
		i := int(p*float64(len(v))+0.999999) - 1
		return v[max(0, min(i, len(v)-1))]
	}
	st := stats{N: len(v), P50: q(0.5), P90: q(0.9), P99: q(0.99), Max: v[len(v)-1], Min: v[0]}
	for _, x := range v {
		st.Mean += x / float64(len(v))
	}
	return st
}

type sample struct {
	Src        string
	ConnectUS  float64 // t1-t0: SYN to connect() returning
	BanUS      float64 // t2-t1: connect() returned to the lookup that found the element
	SynToBanUS float64 // t2-t0
	Lookups    int     // lookups after connect until found (1: the first)
	LastMissUS float64 // send time of the last lookup that missed, after t1 (-1: none)
	DaemonUS   float64 // t3-t1: the daemon's NEWSETELEM notification (-1: none seen)
	T0, T1     int64   // t0 and t1, Unix ns (wall clock), to set beside a pcap's timestamps
}

type result struct {
	N, Timeouts, ConnectErrors int
	FirstLookupHit             int
	LookupRTT                  stats // µs, a miss, measured before the run
	LookupHitRTT               stats // µs, a hit, measured after the run
	Connect, Ban, SynToBan     stats // µs
	LastMiss                   stats // µs, over samples with a miss
	Daemon                     stats // µs
	DaemonSeen                 int
	Samples                    []sample
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "addrs" {
		fs := flag.NewFlagSet("addrs", flag.ExitOnError)
		n := fs.Int("n", 400, "addresses")
		fs.Parse(os.Args[2:])
		for i := range *n {
			fmt.Println(addrAt(i))
		}
		return
	}
	netns := flag.String("netns", "", "the server's network namespace (/run/netns/NAME; required)")
	server := flag.String("server", "", "the server's address (required)")
	port := flag.Int("port", 2323, "trap port")
	n := flag.Int("n", 400, "trap connections, each from its own address")
	table := flag.String("table", "moat", "moat's inet table")
	setName := flag.String("set", "ban_v4", "the ban set")
	gap := flag.Duration("gap", 10*time.Millisecond, "pause between connections")
	timeout := flag.Duration("timeout", time.Second, "give up on an address after this long")
	listen := flag.Bool("listen", false, "accept on the trap port in the server's namespace (no daemon)")
	jsonOut := flag.String("json", "", "write the result, with every sample, to this file")
	flag.Parse()
	dst, err := netip.ParseAddr(*server)
	if *netns == "" || err != nil || !dst.Is4() || *n < 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*netns, dst, *port, *n, *table, *setName, *gap, *timeout, *listen, *jsonOut); err != nil {
		fmt.Fprintln(os.Stderr, "traplat:", err)
		os.Exit(1)
	}
}

func run(netns string, dst netip.Addr, port, n int, table, setName string, gap, timeout time.Duration, listen bool, jsonOut string) error {
	nsf, err := os.Open(netns)
	if err != nil {
		return err
	}
	defer nsf.Close()
	c, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(int(nsf.Fd())))
	if err != nil {
		return err
	}
	defer c.CloseLasting()
	set := &nftables.Set{
		Table:      &nftables.Table{Name: table, Family: nftables.TableFamilyINet},
		Name:       setName,
		KeyType:    nftables.TypeIPAddr,
		HasTimeout: true,
	}
	has := func(a netip.Addr) (bool, error) {
		k := a.As4()
		got, err := c.FindSetElements(set, []nftables.SetElement{{Key: k[:]}})
		switch {
		case err == nil:
			return len(got) > 0, nil
		case errors.Is(err, unix.ENOENT):
			return false, nil
		}
		return false, err
	}
	if _, err := c.GetSetByName(&nftables.Table{Name: table, Family: nftables.TableFamilyINet}, setName); err != nil {
		return fmt.Errorf("set inet %s %s: %w", table, setName, err)
	}
	if listen {
		if err := listenIn(nsf, port); err != nil {
			return err
		}
	}
	daemonSeen, stopWatch, err := watchCommits(nsf, setName)
	if err != nil {
		return fmt.Errorf("nftables monitor: %w", err)
	}
	_ = daemonSeen

	var res result
	// The cost of one lookup (a miss), for scale.
	var rtt []float64
	probe := netip.MustParseAddr("192.0.2.254")
	for range 1000 {
		t := time.Now()
		if _, err := has(probe); err != nil {
			return err
		}
		rtt = append(rtt, us(time.Since(t)))
	}
	res.LookupRTT = summarize(rtt)

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	t1s := map[netip.Addr]time.Time{}
	d4 := dst.As4()
	var conn, ban, s2b, miss []float64
	for i := range n {
		src := addrAt(i)
		if ok, err := has(src); err != nil {
			return err
		} else if ok {
			return fmt.Errorf("%s is banned already: use fresh namespaces", src)
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(timeout))
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv) // bounds connect(2)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind %s (is it on the attacker's interface?): %w", src, err)
		}
		t0 := time.Now()
		err = unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: d4})
		t1 := time.Now()
		if err != nil {
			unix.Close(fd)
			res.ConnectErrors++
			fmt.Fprintf(os.Stderr, "traplat: connect from %s: %v\n", src, err)
			continue
		}
		t1s[src] = t1
		s := sample{Src: src.String(), ConnectUS: us(t1.Sub(t0)), LastMissUS: -1, DaemonUS: -1, T0: t0.UnixNano(), T1: t1.UnixNano()}
		var t2 time.Time
		for {
			l0 := time.Now()
			ok, err := has(src)
			l1 := time.Now()
			if err != nil {
				unix.Close(fd)
				return err
			}
			s.Lookups++
			if ok {
				t2 = l1
				break
			}
			s.LastMissUS = us(l0.Sub(t1))
			if l1.Sub(t1) > timeout {
				break
			}
		}
		unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		unix.Close(fd)
		if t2.IsZero() {
			res.Timeouts++
			fmt.Fprintf(os.Stderr, "traplat: %s not in %s %v after its handshake\n", src, setName, timeout)
			continue
		}
		s.BanUS, s.SynToBanUS = us(t2.Sub(t1)), us(t2.Sub(t0))
		if s.Lookups == 1 {
			res.FirstLookupHit++
		} else {
			miss = append(miss, s.LastMissUS)
		}
		conn, ban, s2b = append(conn, s.ConnectUS), append(ban, s.BanUS), append(s2b, s.SynToBanUS)
		res.Samples = append(res.Samples, s)
		time.Sleep(gap)
	}
	if len(res.Samples) > 0 { // the cost of a lookup that finds its element
		a := netip.MustParseAddr(res.Samples[len(res.Samples)-1].Src)
		var hit []float64
		for range 1000 {
			t := time.Now()
			if ok, err := has(a); err != nil || !ok {
				return fmt.Errorf("%s: no longer in %s (%v)", a, setName, err)
			}
			hit = append(hit, us(time.Since(t)))
		}
		res.LookupHitRTT = summarize(hit)
	}
	time.Sleep(500 * time.Millisecond) // the daemon's last commits
	var dm []float64
	seen := stopWatch()
	for i := range res.Samples {
		a := netip.MustParseAddr(res.Samples[i].Src)
		if at, ok := seen[a]; ok {
			res.Samples[i].DaemonUS = us(at.Sub(t1s[a]))
			dm = append(dm, res.Samples[i].DaemonUS)
		}
	}
	res.N = len(res.Samples)
	res.Connect, res.Ban, res.SynToBan, res.LastMiss = summarize(conn), summarize(ban), summarize(s2b), summarize(miss)
	res.Daemon, res.DaemonSeen = summarize(dm), len(dm)

	line := func(name string, s stats) {
		fmt.Printf("  %-44s n=%-4d p50 %8.1f  p90 %8.1f  p99 %8.1f  max %8.1f  min %7.1f  mean %8.1f µs\n", name, s.N, s.P50, s.P90, s.P99, s.Max, s.Min, s.Mean)
	}
	fmt.Printf("trap connections: %d measured, %d connect errors, %d not banned within %v\n", res.N, res.ConnectErrors, res.Timeouts, timeout)
	line("one netlink lookup (a miss, before the run)", res.LookupRTT)
	line("one netlink lookup (a hit, after the run)", res.LookupHitRTT)
	line("connect(): SYN sent to connect() returning", res.Connect)
	line("connect() returned -> found in "+setName, res.Ban)
	line("SYN sent -> found in "+setName, res.SynToBan)
	fmt.Printf("  first lookup after connect() already found it: %d of %d\n", res.FirstLookupHit, res.N)
	if len(miss) > 0 {
		line("  otherwise, the last miss was sent at", res.LastMiss)
	}
	if res.DaemonSeen > 0 {
		line("connect() returned -> daemon's netlink commit", res.Daemon)
	} else {
		fmt.Println("  no NEWSETELEM notification for these addresses (no daemon commit seen)")
	}
	if jsonOut != "" {
		b, _ := json.MarshalIndent(res, "", " ")
		if err := os.WriteFile(jsonOut, b, 0o644); err != nil {
			return err
		}
	}
	if res.Timeouts > 0 || res.ConnectErrors > 0 {
		return fmt.Errorf("%d timeouts, %d connect errors", res.Timeouts, res.ConnectErrors)
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }

// listenIn opens a listener on port in the namespace nsf (from a thread
// moved there for the purpose, which then exits) and accepts and closes
// connections until the process ends.
func listenIn(nsf *os.File, port int) error {
	errc := make(chan error, 1)
	lnc := make(chan net.Listener, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Setns(int(nsf.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		ln, err := net.Listen("tcp4", fmt.Sprintf(":%d", port))
		if err != nil {
			errc <- err
			return
		}
		lnc <- ln
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("listen in the server's namespace: %w", err)
	case ln := <-lnc:
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}
		}()
	}
	return nil
}

// watchCommits records when each IPv4 element of set arrives in a
// NEWSETELEM notification in the namespace nsf.
func watchCommits(nsf *os.File, set string) (map[netip.Addr]time.Time, func() map[netip.Addr]time.Time, error) {
	nc, err := nftables.New(nftables.WithNetNSFd(int(nsf.Fd())))
	if err != nil {
		return nil, nil, err
	}
	mon := nftables.NewMonitor(nftables.WithMonitorObject(nftables.MonitorObjectElements), nftables.WithMonitorAction(nftables.MonitorActionNew))
	ch, err := nc.AddMonitor(mon)
	if err != nil {
		return nil, nil, err
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
	return seen, stop, nil
}
