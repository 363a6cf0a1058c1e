package nflog

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/nettest"
)

// Kernel tests run against the real kernel, each in a network namespace of
// its own: the test binary re-runs itself for that one test in a child
// process cloned into a new namespace (CLONE_NEWNET), so the rules they
// load never reach the host's ruleset. They need root; under CI=true a
// missing root or nft fails them instead of skipping.

// inNetNS runs the test in a fresh network namespace (see nettest.InChild).
func inNetNS(t *testing.T) bool { return nettest.InChild(t) }

// run runs a command in the test's namespace and returns its stdout.
func run(t *testing.T, stdin string, name string, args ...string) string {
	return nettest.Output(t, stdin, name, args...)
}

// logRules is a table that drops and logs to group 100 what moat's
// firewall would: TCP to 23 and 2323, UDP to 9999 and 9998.
const logRules = `table inet nflogtest {
	chain in {
		type filter hook input priority 0; policy accept;
		tcp dport { 23, 2323 } log group 100 prefix "moat:in:drop:default " drop
		udp dport 9999 log group 100 prefix "moat:in:drop:default " drop
		udp dport 9998 log group 100 prefix "moat:in:reject:rule-3 " drop
	}
}
`

// start runs a Source for group 100 and waits until it is bound.
func start(t *testing.T, cfg Config, out chan event.Observation) *Source {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, out) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
		if st := s.Stats(); st.Following {
			t.Errorf("still following after Run returned: %+v", st)
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for !s.Stats().Following {
		if time.Now().After(deadline) {
			t.Fatalf("not bound: %+v", s.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

// next returns the next observation matching keep.
func next(t *testing.T, out chan event.Observation, keep func(event.Observation) bool) event.Observation {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case o := <-out:
			if keep(o) {
				return o
			}
		case <-timeout:
			t.Fatal("no observation")
		}
	}
}

// TestKernelSource: a SYN from connect() and a UDP datagram to closed,
// logged ports come out as observations, over IPv4 and IPv6.
func TestKernelSource(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	run(t, logRules, "nft", "-f", "-")
	out := make(chan event.Observation, 64)
	s := start(t, Config{Group: 100}, out)

	for _, c := range []struct{ host, options string }{
		{"127.0.0.1", "M65495,S,T,N,W"},
		{"::1", "M65476,S,T,N,W"},
	} {
		before := time.Now()
		// connect() sends SYNs that the rule drops: the dial times out.
		if conn, err := net.DialTimeout("tcp", net.JoinHostPort(c.host, "23"), 300*time.Millisecond); err == nil {
			conn.Close()
			t.Fatal("connected through a drop rule")
		}
		o := next(t, out, func(o event.Observation) bool {
			return o.Packet.Proto == ProtoTCP && o.Packet.Src == netip.MustParseAddr(c.host)
		})
		p := o.Packet
		if o.Source != "nflog:100" || o.Prefix != "moat:in:drop:default " {
			t.Errorf("source %q prefix %q", o.Source, o.Prefix)
		}
		if o.Time.Before(before.Add(-time.Second)) || o.Time.After(time.Now().Add(time.Second)) {
			t.Errorf("time %v, sent at %v", o.Time, before)
		}
		if p.Dst != p.Src || p.DstPort != 23 || p.SrcPort == 0 || p.TCPFlags&(SYN|ACK|FIN|RST) != SYN || p.TTL != 64 {
			t.Errorf("packet %+v", *p)
		}
		if !strings.HasPrefix(p.TCPOptions, c.options) {
			t.Errorf("options %q, want %s*", p.TCPOptions, c.options)
		}
		if want := "DST=" + c.host + " PROTO=TCP SPT="; !strings.Contains(o.Line, want) || !strings.Contains(o.Line, " DPT=23 FLAGS=SYN") {
			t.Errorf("line %q", o.Line)
		}
		t.Logf("%s %s", o.Prefix, o.Line)

		conn, err := net.Dial("udp", net.JoinHostPort(c.host, "9998"))
		if err != nil {
			t.Fatal(err)
		}
		conn.Write([]byte("hello"))
		conn.Close()
		o = next(t, out, func(o event.Observation) bool { return o.Packet.Proto == ProtoUDP })
		if o.Prefix != "moat:in:reject:rule-3 " || o.Packet.DstPort != 9998 || o.Packet.Src != netip.MustParseAddr(c.host) {
			t.Errorf("udp observation %q %+v", o.Prefix, *o.Packet)
		}
		t.Logf("%s %s", o.Prefix, o.Line)
	}
	if st := s.Stats(); st.Packets < 4 || st.DecodeErrors != 0 || st.Dropped != 0 || st.Err != "" || st.Last.IsZero() {
		t.Errorf("stats %+v", st)
	}
}

// TestKernelOverflow: when the reader falls behind, the kernel drops logged
// packets; the Source keeps reading and counts every lost one.
func TestKernelOverflow(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	run(t, logRules, "nft", "-f", "-")
	out := make(chan event.Observation) // unbuffered, and not read for now
	s := start(t, Config{Group: 100, Bufsize: 4096}, out)

	conn, err := net.Dial("udp", "127.0.0.1:9999")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 3000
	for range n {
		conn.Write([]byte("x"))
	}
	// Drain what got through.
	got := 0
	idle := time.NewTimer(2 * time.Second)
drain:
	for {
		select {
		case <-out:
			got++
			idle.Reset(500 * time.Millisecond)
		case <-idle.C:
			break drain
		}
	}
	// One more, to reveal a loss at the tail of the sequence.
	conn.Write([]byte("x"))
	next(t, out, func(event.Observation) bool { return true })
	got++
	st := s.Stats()
	t.Logf("sent %d, received %d, stats %+v", n+1, got, st)
	if st.Dropped == 0 {
		t.Error("nothing dropped with a 4 KiB buffer and a stalled reader")
	}
	if st.Packets != uint64(got) || st.Packets+st.Dropped != n+1 {
		t.Errorf("packets %d + dropped %d != sent %d (received %d)", st.Packets, st.Dropped, n+1, got)
	}
	if !st.Following || st.Err != "" || st.Restarts != 0 {
		t.Errorf("stopped or restarted: %+v", st)
	}
}

// TestKernelBusyGroup: a group another socket holds is an error in Stats,
// and Run keeps trying without failing.
func TestKernelBusyGroup(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	out := make(chan event.Observation, 1)
	start(t, Config{Group: 7}, out)
	s2, err := New(Config{Group: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s2.Run(ctx, out) }()
	deadline := time.Now().Add(5 * time.Second)
	for s2.Stats().Err == "" {
		if time.Now().After(deadline) {
			t.Fatal("no error for a busy group")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("second reader: %+v", s2.Stats())
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
