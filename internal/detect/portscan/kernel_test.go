package portscan

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/nettest"
	"github.com/moat-sec/moat/internal/sensor/nflog"
)

// serverRules drops and logs to NFLOG group 100 what comes in, with the
// prefixes of moat's guards and default policy. No rate limit: the test
// counts every probe.
const serverRules = `table inet scantest {
	chain in {
		type filter hook input priority 0; policy drop;
		ct state established,related accept
		tcp flags & (fin|syn|rst|psh|ack|urg) == 0x0 log group 100 prefix "moat:in:drop:tcp-null " drop
		tcp flags & (fin|psh|urg) == fin|psh|urg log group 100 prefix "moat:in:drop:tcp-xmas " drop
		tcp flags & (fin|ack) == fin log group 100 prefix "moat:in:drop:tcp-fin-noack " drop
		tcp flags & (fin|syn|rst|ack) != syn ct state new log group 100 prefix "moat:in:drop:tcp-new-not-syn " drop
		log group 100 prefix "moat:in:drop:default " drop
	}
}
`

// TestKernelNmap runs real nmap scans of each type from one namespace at
// another whose firewall drops and logs them to NFLOG, reads them with
// package nflog and checks the detector's classification.
func TestKernelNmap(t *testing.T) {
	nettest.RequireRoot(t)
	nettest.RequireTools(t, "nmap")
	server := nettest.New(t, "ps-srv")
	scanner := nettest.New(t, "ps-scan")
	nettest.Link(t, server, "eth0", []string{"10.9.0.2/24"}, scanner, "eth0", []string{"10.9.0.66/24"})
	cmd := server.Cmd("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(serverRules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}

	f, err := os.Open("/run/netns/" + server.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src, err := nflog.New(nflog.Config{Group: 100, NetNSFd: int(f.Fd())})
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan event.Observation, 4096)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, out) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for deadline := time.Now().Add(5 * time.Second); !src.Stats().Following; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("nflog not bound: %+v", src.Stats())
		}
	}

	base := []string{"nmap", "-n", "-Pn", "-T5", "--max-retries", "0", "-p", "1-40"}
	for _, c := range []struct {
		flag  string
		types []string
		os    string
		extra []string
	}{
		{"-sS", []string{"SYN (nmap -sS)"}, "nmap raw", nil},
		{"-sT", []string{"connect (nmap -sT)"}, "Linux", nil},
		{"-sF", []string{"FIN (nmap -sF)"}, "", nil},
		{"-sX", []string{"XMAS (nmap -sX)"}, "", nil},
		{"-sN", []string{"NULL (nmap -sN)"}, "", nil},
		{"-sA", []string{"ACK (nmap -sA)"}, "", nil},
		{"-sM", []string{"Maimon (nmap -sM)"}, "", nil},
		{"-sU", []string{"UDP (nmap -sU)"}, "", nil},
		// Host discovery without ARP: echo, SYN to 443, ACK to 80, timestamp.
		{"-sn", []string{"SYN (nmap -sS)", "ACK (nmap -sA)", "ICMP sweep (nmap -sn)"}, "nmap raw", []string{"--disable-arp-ping"}},
	} {
		t.Run(c.flag, func(t *testing.T) {
			args := append(append([]string{}, base...), c.flag)
			if c.flag == "-sn" {
				args = []string{"nmap", "-n", "-sn"}
			}
			args = append(append(args, c.extra...), "10.9.0.2")
			if out, err := scanner.Run(args...); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, out)
			}
			d := New(Config{AutoBlock: 2})
			var findings []*event.Finding
			n := 0
			for idle := time.NewTimer(2 * time.Second); ; {
				select {
				case o := <-out:
					n++
					if f := d.Observe(o); f != nil {
						findings = append(findings, f)
					}
					idle.Reset(300 * time.Millisecond)
					continue
				case <-idle.C:
				}
				break
			}
			want := Scan{Types: c.types, OSGuess: c.os, Danger: 2}
			if c.flag == "-sn" {
				want.Danger = 0
			}
			var got Scan
			scans := d.Scans(time.Now())
			if len(scans) == 1 {
				got = scans[0]
			} else if c.flag == "-sn" && len(scans) == 0 {
				// Four probes: below danger 1, so not listed; check the
				// types from the detector's state directly.
				d.mu.Lock()
				d.srcs.Each(func(a netip.Addr, s *source) { got = scanOf(a, s) })
				d.mu.Unlock()
			} else {
				t.Fatalf("%d observations, %d scans: %+v", n, len(scans), scans)
			}
			t.Logf("%s: %d observations; %+v", c.flag, n, got)
			if diff := cmp.Diff(want, Scan{Types: got.Types, OSGuess: got.OSGuess, Danger: got.Danger}, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
			if got.Src.String() != "10.9.0.66" {
				t.Errorf("source %v", got.Src)
			}
			if c.flag != "-sn" && (got.PortCount != 40 || len(findings) != 1) {
				t.Errorf("%d ports, findings %+v", got.PortCount, findings)
			}
			for _, f := range findings {
				t.Logf("finding: %s; evidence %q", f.Reason, f.Evidence)
			}
		})
	}
	if st := src.Stats(); st.Dropped != 0 || st.DecodeErrors != 0 {
		t.Errorf("nflog stats %+v", st)
	}
}
