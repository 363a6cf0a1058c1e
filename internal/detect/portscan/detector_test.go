package portscan

import (
	"fmt"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/sensor/nflog"
)

var (
	t0       = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	attacker = netip.MustParseAddr("203.0.113.66")
	us       = netip.MustParseAddr("198.51.100.1")
	us2      = netip.MustParseAddr("198.51.100.2")
)

const drop = "moat:in:drop:default "

// Probe templates, as nmap and OS stacks send them.
func nmapSYN(dport uint16) event.Packet {
	return event.Packet{Proto: 6, SrcPort: 61000, DstPort: dport, TCPFlags: nflog.SYN, TTL: 52, Window: 1024, Length: 44, TCPOptions: "M1460"}
}

func linuxSYN(dport uint16) event.Packet {
	return event.Packet{Proto: 6, SrcPort: 40000 + dport, DstPort: dport, TCPFlags: nflog.SYN, TTL: 57, Window: 64240, Length: 60, TCPOptions: "M1460,S,T,N,W7"}
}

func tcpFlags(flags uint8) func(uint16) event.Packet {
	return func(dport uint16) event.Packet {
		return event.Packet{Proto: 6, SrcPort: 61000, DstPort: dport, TCPFlags: flags, TTL: 52, Window: 1024, Length: 40}
	}
}

func udpProbe(dport uint16) event.Packet {
	return event.Packet{Proto: 17, SrcPort: 61000, DstPort: dport, TTL: 52, Length: 28}
}

func icmpProbe(typ uint8) event.Packet {
	return event.Packet{Proto: 1, ICMPType: typ, TTL: 52, Length: 28}
}

// obs makes the observation NFLOG would give for p from src to dst at t.
func obs(src, dst netip.Addr, t time.Time, prefix string, p event.Packet) event.Observation {
	p.Src, p.Dst = src, dst
	return event.Observation{Source: "nflog:100", Time: t, Prefix: prefix, Packet: &p, Line: nflog.Text(p)}
}

// replay feeds probes of ports 1..n (or n probes of port 0 for ICMP),
// one every gap, and returns the findings.
func replay(d *Detector, src netip.Addr, start time.Time, gap time.Duration, n int, prefix string, mk func(uint16) event.Packet) []*event.Finding {
	var out []*event.Finding
	for i := range n {
		if f := d.Observe(obs(src, us, start.Add(time.Duration(i)*gap), prefix, mk(uint16(i+1)))); f != nil {
			out = append(out, f)
		}
	}
	return out
}

func only(t *testing.T, d *Detector, now time.Time) Scan {
	t.Helper()
	scans := d.Scans(now)
	if len(scans) != 1 {
		t.Fatalf("%d scans: %+v", len(scans), scans)
	}
	return scans[0]
}

// TestScanTypes replays each nmap scan type: 20 ports in 2 seconds.
func TestScanTypes(t *testing.T) {
	for _, c := range []struct {
		name, typ, proto, os string
		mk                   func(uint16) event.Packet
		prefix               string
	}{
		{"-sS", "SYN (nmap -sS)", "tcp", "nmap raw", nmapSYN, drop},
		{"-sS from masscan (no options)", "SYN (nmap -sS)", "tcp", "", func(p uint16) event.Packet {
			pk := nmapSYN(p)
			pk.TCPOptions, pk.TTL = "", 247
			return pk
		}, drop},
		{"-sT", "connect (nmap -sT)", "tcp", "Linux", linuxSYN, "moat:in:reject:default "},
		{"-sT from Windows with ECN", "connect (nmap -sT)", "tcp", "Windows", func(p uint16) event.Packet {
			return event.Packet{Proto: 6, SrcPort: 50000, DstPort: p, TCPFlags: nflog.SYN | nflog.ECE | nflog.CWR, TTL: 113, Window: 64240, TCPOptions: "M1440,N,W8,N,N,S"}
		}, drop},
		{"-sT from macOS", "connect (nmap -sT)", "tcp", "macOS/BSD", func(p uint16) event.Packet {
			return event.Packet{Proto: 6, SrcPort: 50000, DstPort: p, TCPFlags: nflog.SYN, TTL: 50, Window: 65535, TCPOptions: "M1460,N,W6,N,N,T,S,E"}
		}, drop},
		{"-sF", "FIN (nmap -sF)", "tcp", "", tcpFlags(nflog.FIN), "moat:in:drop:tcp-fin-noack "},
		{"-sX", "XMAS (nmap -sX)", "tcp", "", tcpFlags(nflog.FIN | nflog.PSH | nflog.URG), "moat:in:drop:tcp-xmas "},
		{"-sN", "NULL (nmap -sN)", "tcp", "", tcpFlags(0), "moat:in:drop:tcp-null "},
		{"-sA", "ACK (nmap -sA)", "tcp", "", tcpFlags(nflog.ACK), "moat:in:drop:tcp-new-not-syn "},
		{"-sM", "Maimon (nmap -sM)", "tcp", "", tcpFlags(nflog.FIN | nflog.ACK), "moat:in:drop:tcp-new-not-syn "},
		{"-sU", "UDP (nmap -sU)", "udp", "", udpProbe, drop},
		{"-sU rate-limited by a rule", "UDP (nmap -sU)", "udp", "", udpProbe, "moat:in:limit:rule-3 "},
		{"odd flags", "TCP odd flags", "tcp", "", tcpFlags(nflog.SYN | nflog.FIN), "moat:in:drop:tcp-syn-fin "},
		{"ufw log", "SYN (nmap -sS)", "tcp", "nmap raw", nmapSYN, "[UFW BLOCK] "},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := New(Config{})
			replay(d, attacker, t0, 100*time.Millisecond, 20, c.prefix, c.mk)
			got := only(t, d, t0.Add(time.Minute))
			want := Scan{
				Src: attacker, First: t0, Last: t0.Add(1900 * time.Millisecond), Packets: 20,
				Ports: []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, PortCount: 20,
				Protocols: []string{c.proto}, Types: []string{c.typ}, Danger: 2, OSGuess: c.os,
			}
			if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
		})
	}
}

// TestPingSweep: nmap -sn sends an echo request, a SYN to 443, an ACK to
// 80 and a timestamp request to each host; pings to one address are pings.
func TestPingSweep(t *testing.T) {
	d := New(Config{Thresholds: [5]int{1, 2, 3, 4, 5}})
	a := netip.MustParseAddr("192.0.2.7")
	for i, p := range []event.Packet{icmpProbe(8), nmapSYN(443), tcpFlags(nflog.ACK)(80), icmpProbe(13)} {
		d.Observe(obs(a, us, t0.Add(time.Duration(i)*time.Millisecond), drop, p))
	}
	got := only(t, d, t0)
	if diff := cmp.Diff([]string{"SYN (nmap -sS)", "ACK (nmap -sA)", "ICMP sweep (nmap -sn)"}, got.Types); diff != "" {
		t.Errorf("types -want +got:\n%s", diff)
	}
	if diff := cmp.Diff([]string{"tcp", "icmp"}, got.Protocols); diff != "" {
		t.Errorf("protocols -want +got:\n%s", diff)
	}

	// Echo requests to two of our addresses: a sweep.
	d = New(Config{PacketThresholds: [5]int{2, 100, 200, 300, 400}})
	b := netip.MustParseAddr("2001:db8::7")
	for i := range 4 {
		dst := netip.MustParseAddr("2001:db8:1::1")
		if i == 3 {
			dst = netip.MustParseAddr("2001:db8:1::2")
		}
		p := event.Packet{Proto: 58, ICMPType: 128, TTL: 60}
		d.Observe(obs(b, dst, t0.Add(time.Duration(i)*time.Second), drop, p))
		want := "ping"
		if i == 3 {
			want = "ICMP sweep (nmap -sn)"
		}
		if i == 0 {
			if len(d.Scans(t0)) != 0 {
				t.Fatal("one ping is not danger 1")
			}
			continue
		}
		got := only(t, d, t0.Add(time.Minute))
		if diff := cmp.Diff([]string{want}, got.Types); diff != "" || got.Protocols[0] != "icmpv6" || got.PortCount != 0 || got.Danger != 1 {
			t.Errorf("after %d echoes: %+v", i+1, got)
		}
	}
}

// TestNotProbes: replies and backscatter, and packets the firewall did not
// drop on their way in, leave no trace.
func TestNotProbes(t *testing.T) {
	d := New(Config{Thresholds: [5]int{1, 2, 3, 4, 5}, PacketThresholds: [5]int{1, 2, 3, 4, 5}})
	resolver := netip.MustParseAddr("192.0.2.53")
	for _, c := range []struct {
		prefix string
		p      event.Packet
	}{
		{"moat:out:drop:default ", nmapSYN(22)},
		{"moat:fwd:drop:default ", nmapSYN(22)},
		{"moat:in:accept:rule-1 ", nmapSYN(22)},
		{"moat:in:log:rule-1 ", nmapSYN(22)},
		{"", nmapSYN(22)},
		{"[UFW ALLOW] ", nmapSYN(22)},
		{"in:drop", nmapSYN(22)},
		{drop, tcpFlags(nflog.RST)(40000)},
		{drop, tcpFlags(nflog.RST | nflog.ACK)(40001)},
		{drop, tcpFlags(nflog.SYN | nflog.ACK)(40002)},
		{drop, icmpProbe(0)},
		{drop, icmpProbe(3)},
		{drop, icmpProbe(11)},
		{drop, event.Packet{Proto: 58, ICMPType: 1}},
		{drop, event.Packet{Proto: 58, ICMPType: 129}},
		{drop, event.Packet{Proto: 58, ICMPType: 135}},
		{drop, event.Packet{Proto: 17, SrcPort: 53, DstPort: 41234}},  // a late DNS answer
		{drop, event.Packet{Proto: 17, SrcPort: 123, DstPort: 123}},   // NTP
		{drop, event.Packet{Proto: 17, SrcPort: 443, DstPort: 50123}}, // QUIC
	} {
		d.Observe(obs(resolver, us, t0, c.prefix, c.p))
	}
	d.Observe(event.Observation{Time: t0, Prefix: drop, Line: "no packet"})
	d.Observe(obs(netip.Addr{}, us, t0, drop, nmapSYN(22)))
	d.Observe(obs(resolver, us, time.Time{}, drop, nmapSYN(22)))
	if st := d.Stats(); st.Probes != 0 || st.Tracked != 0 || st.Observations != 22 {
		t.Errorf("stats %+v", st)
	}
	// A DNS-sourced probe of a low port is still a probe (nmap -sU -g 53).
	d.Observe(obs(resolver, us, t0, drop, event.Packet{Proto: 17, SrcPort: 53, DstPort: 161}))
	if st := d.Stats(); st.Probes != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestInbound(t *testing.T) {
	for prefix, want := range map[string]bool{
		"moat:in:drop:default ":        true,
		"moat:in:reject:rule-3 ":       true,
		"moat:in:limit:rule-3 ":        true,
		"moat:in:drop:":                true,
		"host:a:moat:in:drop:tcp-xmas": true,
		"in:drop:default":              true,
		"[UFW BLOCK] ":                 true,
		"[UFW LIMIT BLOCK]":            true,
		"moat:in:trap:tcp ":            false,
		"moat:in:accept:default ":      false,
		"moat:out:drop:default ":       false,
		"moat:fwd:drop:default ":       false,
		"moat:win:drop:default ":       false,
		"moat:drop:default ":           false,
		"[UFW AUDIT] ":                 false,
		"":                             false,
	} {
		if got := inbound(prefix); got != want {
			t.Errorf("inbound(%q) = %v", prefix, got)
		}
	}
}

// TestDangerLevels: each level is reached at its threshold of distinct
// ports, past the 1024 ports a source remembers too.
func TestDangerLevels(t *testing.T) {
	d := New(Config{PacketThresholds: [5]int{-1, -1, -1, -1, -1}})
	levels := map[int]int{} // port count at which a level was first seen
	for i := range 1600 {
		d.Observe(obs(attacker, us, t0.Add(time.Duration(i)*10*time.Millisecond), drop, nmapSYN(uint16(i+1))))
		if s := d.Scans(t0); len(s) == 1 {
			if _, ok := levels[s[0].Danger]; !ok {
				levels[s[0].Danger] = i + 1
			}
		}
	}
	if diff := cmp.Diff(map[int]int{1: 5, 2: 15, 3: 50, 4: 150, 5: 1500}, levels); diff != "" {
		t.Errorf("levels -want +got:\n%s", diff)
	}
	s := only(t, d, t0)
	if s.PortCount != 1600 || s.Packets != 1600 || len(s.Ports) != MaxListedPorts || s.Ports[63] != 64 {
		t.Errorf("scan: %d ports, %d packets, listed %v", s.PortCount, s.Packets, s.Ports)
	}
	if st := d.Stats(); st.KeptPorts != MaxKeptPorts {
		t.Errorf("kept %d ports", st.KeptPorts)
	}

	// Packets: one port hammered.
	d = New(Config{})
	replay(d, attacker, t0, 10*time.Millisecond, 500, drop, func(uint16) event.Packet { return nmapSYN(23) })
	if s := only(t, d, t0); s.Danger != 3 || s.PortCount != 1 {
		t.Errorf("500 probes of one port: %+v", s)
	}
}

// TestFindingOnce: one finding when AutoBlock is reached, none after in the
// same scan, another for a new scan after a pause.
func TestFindingOnce(t *testing.T) {
	d := New(Config{AutoBlock: 3})
	fs := replay(d, attacker, t0, 50*time.Millisecond, 200, drop, nmapSYN)
	if len(fs) != 1 {
		t.Fatalf("%d findings", len(fs))
	}
	f := fs[0]
	want := &event.Finding{
		Time:     t0.Add(49 * 50 * time.Millisecond),
		Addr:     attacker,
		Detector: "portscan",
		Jail:     "portscan",
		Reason:   "SYN scan (nmap -sS) of 50 ports in 2.5s, danger 3, OS guess nmap raw",
		Evidence: []string{
			"moat:in:drop:default SRC=203.0.113.66 DST=198.51.100.1 PROTO=TCP SPT=61000 DPT=5 FLAGS=SYN WIN=1024 OPT=M1460 TTL=52 LEN=44",
			"moat:in:drop:default SRC=203.0.113.66 DST=198.51.100.1 PROTO=TCP SPT=61000 DPT=15 FLAGS=SYN WIN=1024 OPT=M1460 TTL=52 LEN=44",
			"moat:in:drop:default SRC=203.0.113.66 DST=198.51.100.1 PROTO=TCP SPT=61000 DPT=50 FLAGS=SYN WIN=1024 OPT=M1460 TTL=52 LEN=44",
		},
	}
	if diff := cmp.Diff(want, f, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("-want +got:\n%s", diff)
	}
	if s := only(t, d, t0); !s.Finding || s.Danger != 4 {
		t.Errorf("scan %+v", s)
	}
	// Slower than the window: the same scan goes on, with no new finding.
	if fs := replay(d, attacker, t0.Add(20*time.Second), 30*time.Second, 5, drop, nmapSYN); len(fs) != 0 {
		t.Errorf("findings in the same scan: %v", fs)
	}
	// After a pause longer than the window: a new scan, a new finding.
	fs = replay(d, attacker, t0.Add(5*time.Minute), 50*time.Millisecond, 200, drop, udpProbe)
	if len(fs) != 1 || !strings.HasPrefix(fs[0].Reason, "UDP scan (nmap -sU) of 50 ports") {
		t.Fatalf("findings %v", fs)
	}
	if s := only(t, d, t0.Add(5*time.Minute)); s.Types[0] != "UDP (nmap -sU)" || len(s.Types) != 1 || !s.First.Equal(t0.Add(5*time.Minute)) {
		t.Errorf("new scan %+v", s)
	}
	// Mixed types name them all.
	d = New(Config{AutoBlock: 1})
	d.Observe(obs(attacker, us, t0, drop, udpProbe(53)))
	fs = replay(d, attacker, t0, time.Millisecond, 4, drop, tcpFlags(nflog.FIN|nflog.PSH|nflog.URG))
	if len(fs) != 1 || fs[0].Reason != "XMAS scan (nmap -sX) + UDP scan (nmap -sU) of 5 ports in 3ms, danger 1" {
		t.Errorf("findings %+v", fs)
	}
	// Portless probes: counted in packets.
	d = New(Config{AutoBlock: 1})
	fs = replay(d, attacker, t0, time.Second, 20, drop, func(uint16) event.Packet { return icmpProbe(8) })
	if len(fs) != 1 || fs[0].Reason != "pings, 20 probes in 19s, danger 1" {
		t.Errorf("findings %+v", fs)
	}
}

// TestWindow: probes are forgotten a Window after they were seen; a slow
// scan stays at a low level though it probes many ports.
func TestWindow(t *testing.T) {
	d := New(Config{PacketThresholds: [5]int{-1, -1, -1, -1, -1}})
	// One port every 10 s for 10 minutes: at most 7 in any minute.
	replay(d, attacker, t0, 10*time.Second, 60, drop, nmapSYN)
	s := only(t, d, t0.Add(10*time.Minute))
	if s.Danger != 1 || s.PortCount != 60 || !s.First.Equal(t0) || !s.Last.Equal(t0.Add(590*time.Second)) {
		t.Errorf("slow scan %+v", s)
	}
	// The same 60 ports in one minute.
	d = New(Config{PacketThresholds: [5]int{-1, -1, -1, -1, -1}})
	replay(d, attacker, t0, time.Second, 60, drop, nmapSYN)
	if s := only(t, d, t0); s.Danger != 3 {
		t.Errorf("fast scan %+v", s)
	}

	// A source that stays silent longer than the window starts over.
	d = New(Config{Window: 10 * time.Second})
	replay(d, attacker, t0, 100*time.Millisecond, 14, drop, nmapSYN)
	if s := only(t, d, t0); s.Danger != 1 || s.PortCount != 14 {
		t.Errorf("first scan %+v", s)
	}
	// Until the new scan reaches danger 1, Scans shows the last one that did.
	d.Observe(obs(attacker, us, t0.Add(12*time.Second), drop, nmapSYN(1000)))
	if s := only(t, d, t0.Add(12*time.Second)); s.PortCount != 14 || !s.Last.Equal(t0.Add(1300*time.Millisecond)) {
		t.Errorf("after a pause, one probe: %+v", s)
	}
	replay(d, attacker, t0.Add(13*time.Second), time.Millisecond, 4, drop, udpProbe)
	if s := only(t, d, t0.Add(13*time.Second)); s.PortCount != 5 || s.Types[0] != "SYN (nmap -sS)" || s.Types[1] != "UDP (nmap -sU)" || !s.First.Equal(t0.Add(12*time.Second)) {
		t.Errorf("after a pause, 5 ports: %+v", s)
	}

	// Sliding: 4 ports at 0 s, port 1 again at 5 s; at 10.5 s ports 2-4
	// have left the 10 s window, so 3 new ports make 5 only at 13 s.
	d = New(Config{Window: 10 * time.Second, PacketThresholds: [5]int{-1, -1, -1, -1, -1}})
	replay(d, attacker, t0, time.Millisecond, 4, drop, nmapSYN)
	d.Observe(obs(attacker, us, t0.Add(5*time.Second), drop, nmapSYN(1)))
	if len(d.Scans(t0)) != 0 {
		t.Fatal("4 ports are danger 1")
	}
	for i, at := range []time.Duration{10500 * time.Millisecond, 11 * time.Second, 12 * time.Second} {
		d.Observe(obs(attacker, us, t0.Add(at), drop, nmapSYN(uint16(100+i))))
		if s := d.Scans(t0.Add(at)); len(s) != 0 {
			t.Fatalf("at %v, ports that left the window still count: %+v", at, s)
		}
	}
	d.Observe(obs(attacker, us, t0.Add(13*time.Second), drop, nmapSYN(103)))
	if s := d.Scans(t0.Add(13 * time.Second)); len(s) != 1 || s[0].PortCount != 8 || s[0].Danger != 1 {
		t.Errorf("5 ports in the window: %+v", s)
	}

	// Scans lists a scan for Recent after its last probe.
	d = New(Config{Recent: 10 * time.Minute})
	replay(d, attacker, t0, time.Millisecond, 10, drop, nmapSYN)
	if len(d.Scans(t0.Add(10*time.Minute))) != 1 || len(d.Scans(t0.Add(10*time.Minute+time.Second))) != 0 {
		t.Error("Recent not honoured")
	}
}

// TestSpoofed: decoys and spoofed sources (nmap -D, -S; 127.0.0.1, our
// own address, multicast) are classified like any source. Telling them
// apart is not the detector's job (SECURITY.md B3, B4, R7).
func TestSpoofed(t *testing.T) {
	d := New(Config{AutoBlock: 2})
	srcs := []netip.Addr{attacker, netip.MustParseAddr("192.0.2.66"), netip.MustParseAddr("127.0.0.1"), us,
		netip.MustParseAddr("224.0.0.1"), netip.MustParseAddr("::1"), netip.MustParseAddr("fe80::1")}
	var findings []netip.Addr
	for port := range uint16(20) {
		for i, src := range srcs { // interleaved, as nmap -D sends them
			dst := us
			if src.Is6() {
				dst = netip.MustParseAddr("2001:db8:1::1")
			}
			if f := d.Observe(obs(src, dst, t0.Add(time.Duration(int(port)*len(srcs)+i)*time.Millisecond), drop, nmapSYN(port+1))); f != nil {
				findings = append(findings, f.Addr)
				if f.Verified {
					t.Errorf("%v: verified", f.Addr)
				}
			}
		}
	}
	if len(findings) != len(srcs) {
		t.Errorf("findings for %v", findings)
	}
	scans := d.Scans(t0)
	if len(scans) != len(srcs) {
		t.Fatalf("%d scans", len(scans))
	}
	for _, s := range scans {
		if s.Danger != 2 || s.PortCount != 20 || s.Types[0] != "SYN (nmap -sS)" || s.OSGuess != "nmap raw" {
			t.Errorf("%v: %+v", s.Src, s)
		}
	}
}

// TestLRUBound: 200,000 scanning sources with room for 100,000: the
// oldest are forgotten and memory stays that of 100,000 (SECURITY.md B5).
func TestLRUBound(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	d := New(Config{})
	feed := func(from, to int) {
		for i := from; i < to; i++ {
			src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			at := t0.Add(time.Duration(i) * time.Microsecond)
			for port := range uint16(3) {
				d.Observe(obs(src, us, at, drop, nmapSYN(port+1)))
			}
		}
	}
	feed(0, 100000)
	heap1 := heapInUse()
	feed(100000, 200000)
	heap2 := heapInUse()
	st := d.Stats()
	if st.Tracked != DefaultMaxTracked || st.Evicted != 100000 || st.Probes != 600000 {
		t.Errorf("stats %+v", st)
	}
	t.Logf("heap with 100,000 sources %d MiB, after 200,000 %d MiB", heap1>>20, heap2>>20)
	if heap2 > heap1+heap1/4 {
		t.Errorf("heap grew from %d to %d bytes", heap1, heap2)
	}
	// The first 100,000 are gone, the last are there.
	scans := d.Scans(t0.Add(time.Second))
	if len(scans) != 0 {
		t.Errorf("3-port scans listed: %d", len(scans))
	}
	_, ports := d.Top(t0.Add(time.Second), 3)
	if diff := cmp.Diff([]PortCount{{"tcp", 1, 100000}, {"tcp", 2, 100000}, {"tcp", 3, 100000}}, ports); diff != "" {
		t.Errorf("top ports -want +got:\n%s", diff)
	}
	runtime.KeepAlive(d)
}

// TestMemory measures the bytes per tracked source: 100,000 sources
// scanning 10 ports each.
func TestMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	sizes := []int{1, 10, 100}
	if raceEnabled { // ten times slower, and the numbers are not those of a real build
		sizes = sizes[:1]
	}
	for _, ports := range sizes {
		before := heapInUse()
		d := New(Config{})
		for i := range 100000 {
			src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			for port := range ports {
				d.Observe(obs(src, us, t0.Add(time.Duration(i)*time.Microsecond), drop, nmapSYN(uint16(port+1))))
			}
		}
		after := heapInUse()
		per := (int64(after) - int64(before)) / 100000
		t.Logf("100,000 sources × %d ports: %d bytes per source (evidence lines of danger levels included)", ports, per)
		if per > 4096 {
			t.Errorf("%d bytes per source", per)
		}
		runtime.KeepAlive(d)
	}
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestBudget: the port slots over all sources stay within 32 × MaxTracked
// (here the floor, 65,536), and a source past it still counts its ports.
func TestBudget(t *testing.T) {
	d := New(Config{MaxTracked: 100, PacketThresholds: [5]int{-1, -1, -1, -1, -1}})
	for i := range 100 {
		src := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		replay(d, src, t0, time.Microsecond, 1500, drop, nmapSYN)
	}
	st := d.Stats()
	if st.KeptPorts > 1<<16 || st.Tracked != 100 {
		t.Errorf("stats %+v", st)
	}
	for _, s := range d.Scans(t0) {
		if s.PortCount != 1500 || s.Danger != 5 {
			t.Errorf("%v: %d ports, danger %d", s.Src, s.PortCount, s.Danger)
		}
	}
	// Forgetting sources gives their slots back.
	for i := range 100 {
		d.Observe(obs(netip.AddrFrom4([4]byte{10, 1, 0, byte(i)}), us, t0.Add(2*time.Hour), drop, nmapSYN(1)))
	}
	if st := d.Stats(); st.KeptPorts != 400 || st.Tracked != 100 {
		t.Errorf("after eviction %+v", st)
	}
}

func TestTop(t *testing.T) {
	d := New(Config{})
	replay(d, attacker, t0, time.Millisecond, 100, drop, nmapSYN)
	replay(d, netip.MustParseAddr("192.0.2.1"), t0, time.Millisecond, 20, drop, udpProbe)
	replay(d, netip.MustParseAddr("192.0.2.2"), t0, time.Millisecond, 30, drop, tcpFlags(0))
	for i := range 5 { // background noise: one probe of telnet each
		d.Observe(obs(netip.AddrFrom4([4]byte{192, 0, 2, byte(100 + i)}), us, t0, drop, nmapSYN(23)))
	}
	attackers, ports := d.Top(t0.Add(time.Minute), 2)
	if len(attackers) != 2 || attackers[0].Src != attacker || attackers[0].Danger != 3 || attackers[1].PortCount != 30 {
		t.Errorf("attackers %+v", attackers)
	}
	if diff := cmp.Diff([]PortCount{{"tcp", 23, 7}, {"tcp", 1, 2}}, ports); diff != "" {
		t.Errorf("ports -want +got:\n%s", diff)
	}
	if a, p := d.Top(t0.Add(2*time.Hour), 10); len(a) != 0 || len(p) != 0 {
		t.Errorf("old scans listed: %v %v", a, p)
	}
}

func TestOSGuess(t *testing.T) {
	for _, c := range []struct {
		opts string
		ttl  uint8
		win  uint16
		want string
	}{
		{"M1460,S,T,N,W7", 57, 64240, "Linux"},
		{"M1460,S,T,N,W7", 64, 64240, "Linux"},
		{"M1460,S,T,N,W7", 120, 64240, ""}, // Linux options, Windows TTL
		{"M1460,N,N,S,N,W7", 50, 29200, "Linux"},
		{"M1460,N,W8,N,N,S", 116, 64240, "Windows"},
		{"M1460,N,W8,N,N,S", 52, 64240, ""},
		{"M1460,N,W6,N,N,T,S,E", 49, 65535, "macOS/BSD"},
		{"M1460,N,W6,S,T", 60, 65535, "macOS/BSD"},
		{"M1460,N,N,S,N,W6,N,N,T", 60, 16384, "macOS/BSD"},
		{"M1460", 44, 1024, "nmap raw"},
		{"M1460", 44, 4096, "nmap raw"},
		{"M1460", 44, 5840, ""},
		{"", 44, 1024, ""},
		{"M1460,?30", 64, 1024, ""},
	} {
		p := event.Packet{Proto: 6, TCPFlags: nflog.SYN, TTL: c.ttl, Window: c.win, TCPOptions: c.opts}
		if got := osNames[osGuess(&p)]; got != c.want {
			t.Errorf("%s ttl %d win %d: %q, want %q", c.opts, c.ttl, c.win, got, c.want)
		}
	}
}

// TestOutOfOrder: times that run backwards, from several sensors or a
// replayed log, do not break the counts.
func TestOutOfOrder(t *testing.T) {
	d := New(Config{AutoBlock: 1})
	var n int
	for i := range 10 {
		at := t0.Add(time.Duration(10-i) * time.Second)
		if d.Observe(obs(attacker, us, at, drop, nmapSYN(uint16(i)))) != nil {
			n++
		}
	}
	s := only(t, d, t0)
	if n != 1 || s.PortCount != 10 || !s.First.Equal(t0.Add(10*time.Second)) || !s.Last.Equal(s.First) {
		t.Errorf("%d findings, %+v", n, s)
	}
}

// TestObserveNoAllocs: probes of a known source allocate nothing.
func TestObserveNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	d := New(Config{})
	replay(d, attacker, t0, time.Millisecond, 10, drop, nmapSYN)
	replay(d, attacker, t0, time.Millisecond, 10, drop, udpProbe)
	i := 0
	for _, o := range []event.Observation{
		obs(attacker, us, t0, drop, nmapSYN(5)),
		obs(attacker, us, t0, drop, linuxSYN(6)),
		obs(attacker, us, t0, drop, udpProbe(7)),
		obs(attacker, us, t0, drop, icmpProbe(8)),
		obs(attacker, us2, t0, drop, icmpProbe(8)),
	} {
		if n := testing.AllocsPerRun(100, func() {
			i++
			o.Time = t0.Add(time.Duration(i) * time.Millisecond)
			d.Observe(o)
		}); n != 0 {
			t.Errorf("%s: %v allocations", o.Line, n)
		}
	}
}

// TestEvidenceCut: evidence lines are cut and copied.
func TestEvidenceCut(t *testing.T) {
	d := New(Config{AutoBlock: 1, PacketThresholds: [5]int{1, 2, 3, 4, 5}})
	o := obs(attacker, us, t0, drop, nmapSYN(1))
	o.Line = strings.Repeat("é", 400)
	f := d.Observe(o)
	if f == nil || len(f.Evidence) != 1 {
		t.Fatalf("finding %+v", f)
	}
	if e := f.Evidence[0]; len(e) > EvidenceLineLen || !strings.HasPrefix(e, "moat:in:drop:default é") || !strings.HasSuffix(e, "é") {
		t.Errorf("evidence %q", e)
	}
	// A kernel log line has its prefix already.
	o = obs(netip.MustParseAddr("192.0.2.1"), us, t0, drop, nmapSYN(1))
	o.Line = "moat:in:drop:default IN=eth0 OUT= SRC=192.0.2.1 ..."
	if f := d.Observe(o); f == nil || f.Evidence[0] != o.Line {
		t.Errorf("finding %+v", f)
	}
}

// TestConcurrent runs Observe, Scans, Top and Stats together (for -race).
func TestConcurrent(t *testing.T) {
	d := New(Config{MaxTracked: 1000, AutoBlock: 2})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				src := netip.AddrFrom4([4]byte{10, byte(g), 0, byte(i % 50)})
				d.Observe(obs(src, us, t0.Add(time.Duration(i)*time.Millisecond), drop, nmapSYN(uint16(i))))
			}
		})
	}
	wg.Go(func() {
		for range 200 {
			d.Scans(t0)
			d.Top(t0, 10)
			d.Stats()
		}
	})
	wg.Wait()
	if st := d.Stats(); st.Probes != 20000 || st.Tracked != 200 || st.Findings != 200 {
		t.Errorf("stats %+v", st)
	}
}

func FuzzObserve(f *testing.F) {
	f.Add(uint8(6), uint8(2), uint16(22), uint8(52), uint16(1024), "M1460", int64(0), uint8(1))
	f.Add(uint8(17), uint8(0), uint16(53), uint8(64), uint16(0), "", int64(-5e9), uint8(2))
	f.Add(uint8(1), uint8(0), uint16(8), uint8(64), uint16(0), "", int64(7e10), uint8(3))
	f.Fuzz(func(t *testing.T, proto, flags uint8, port uint16, ttl uint8, win uint16, opts string, dt int64, src uint8) {
		d := New(Config{MaxTracked: 4, Window: time.Second, AutoBlock: 1, Thresholds: [5]int{1, 2, 3, 4, 5}})
		for i := range 20 {
			p := event.Packet{Proto: proto, TCPFlags: flags, DstPort: port + uint16(i), TTL: ttl, Window: win, TCPOptions: opts, ICMPType: uint8(port)}
			at := t0.Add(time.Duration(dt % int64(48*time.Hour) * int64(i%3-1)))
			f := d.Observe(obs(netip.AddrFrom4([4]byte{10, 0, 0, src % 7}), us, at, drop, p))
			if f != nil && (f.Verified || f.Reason == "" || len(f.Evidence) == 0) {
				t.Fatalf("finding %+v", f)
			}
		}
		for _, s := range d.Scans(t0) {
			if s.Danger < 1 || s.Danger > 5 || len(s.Types) == 0 || s.PortCount > s.Packets {
				t.Fatalf("scan %+v", s)
			}
		}
		if st := d.Stats(); st.Tracked > 4 {
			t.Fatalf("stats %+v", st)
		}
	})
}

// BenchmarkObserve: events per second per core. "one-source": one nmap
// -sS of all 65,535 ports, looping; "10k-sources": 10,000 scanners of 64
// ports each, interleaved at random (cache-unfriendly: the worst case).
func BenchmarkObserve(b *testing.B) {
	b.Run("one-source", func(b *testing.B) {
		d := New(Config{AutoBlock: 3})
		o := obs(attacker, us, t0, drop, nmapSYN(1))
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			o.Time = t0.Add(time.Duration(i) * time.Microsecond)
			o.Packet.DstPort = uint16(i)
			d.Observe(o)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("10k-sources", func(b *testing.B) {
		const sources, ports = 10000, 64
		mks := []func(uint16) event.Packet{nmapSYN, linuxSYN, udpProbe, tcpFlags(nflog.FIN)}
		obsv := make([]event.Observation, 0, sources)
		for i := range sources {
			src := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
			obsv = append(obsv, obs(src, us, t0, drop, mks[i%len(mks)](1)))
		}
		d := New(Config{AutoBlock: 3})
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			o := &obsv[(i*7919)%len(obsv)]
			o.Time = t0.Add(time.Duration(i) * time.Microsecond)
			o.Packet.DstPort = uint16(i / len(obsv) % ports)
			d.Observe(*o)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

func Example() {
	d := New(Config{AutoBlock: 2})
	src := netip.MustParseAddr("203.0.113.66")
	for port := range uint16(15) {
		p := event.Packet{Src: src, Dst: netip.MustParseAddr("198.51.100.1"), Proto: 6, SrcPort: 61000, DstPort: port + 20,
			TCPFlags: 0x02, TTL: 52, Window: 1024, TCPOptions: "M1460"}
		o := event.Observation{Source: "nflog:100", Time: t0.Add(time.Duration(port) * 100 * time.Millisecond),
			Prefix: "moat:in:drop:default ", Packet: &p, Line: nflog.Text(p)}
		if f := d.Observe(o); f != nil {
			fmt.Println(f.Reason)
		}
	}
	// Output: SYN scan (nmap -sS) of 15 ports in 1.4s, danger 2, OS guess nmap raw
}
