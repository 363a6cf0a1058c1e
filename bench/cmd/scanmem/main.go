// Command scanmem measures the port-scan detector (internal/detect/portscan)
// with many distinct scanning sources: the memory it keeps per tracked
// source, and how many events a second one core feeds it.
//
//	scanmem [-sources 100000] [-ports 1,5,15,64,1024] [-events 10000000]
//
// Memory: for each value P of -ports, a fresh Detector with the daemon's
// configuration (portscan.Config{Window: 60s, AutoBlock: 0}: defaults,
// MaxTracked 100,000) is fed every source's SYN probes of P distinct ports
// (nmap -sS headers, 1 µs of event time apart, ports in rounds over all
// sources, the sources in a shuffled order, so all of it falls within one
// Window), each observation built as the daemon's NFLOG source builds it
// (Packet, and Line = nflog.Text). Then two GCs, and the live heap minus
// the live heap before New: bytes per tracked source. With P past what the
// budget allows (32 ports per tracked source on average), ports are
// counted but not kept: memory stops growing.
//
// Throughput, on the Detector filled with 64 ports per source: -events more
// observations round-robin over the sources in a scattered order (stride
// 7919, like BenchmarkObserve's 10k-sources case, here with 100,000
// sources), (a) Observe alone, on prebuilt observations, and (b) the
// daemon's user-space path per logged packet: nflog.Decode of the raw IPv4
// packet, nflog.Text, Observe. Run it pinned to one CPU (taskset -c 0) for
// events/s per core.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/moat-sec/moat/internal/detect/portscan"
	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/sensor/nflog"
)

var (
	t0  = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)
	dst = netip.MustParseAddr("198.51.100.1")
)

const prefix = "moat:in:drop:default "

func srcAt(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// nmapSYN is what nmap -sS sends, as Decode reads it.
func nmapSYN(src netip.Addr, dport uint16) event.Packet {
	return event.Packet{Src: src, Dst: dst, Proto: 6, SrcPort: 61000, DstPort: dport, TCPFlags: nflog.SYN, TTL: 52, Window: 1024, Length: 44, TCPOptions: "M1460"}
}

// rawSYN is the same probe as bytes, IPv4 header first (what NFLOG hands over).
func rawSYN(src netip.Addr, dport uint16) []byte {
	b := make([]byte, 44)
	b[0], b[8], b[9] = 0x45, 52, 6
	binary.BigEndian.PutUint16(b[2:], 44)
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	t := b[20:]
	binary.BigEndian.PutUint16(t[0:], 61000)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], 0x12345678)
	t[12], t[13] = 6<<4, nflog.SYN
	binary.BigEndian.PutUint16(t[14:], 1024)
	t[20], t[21] = 2, 4 // MSS 1460
	binary.BigEndian.PutUint16(t[22:], 1460)
	return b
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func newDetector() *portscan.Detector {
	return portscan.New(portscan.Config{Window: 60 * time.Second, AutoBlock: 0})
}

// fill feeds ports probes (ports 1..ports) from each source, in rounds.
func fill(d *portscan.Detector, order []int, ports int) time.Time {
	at := t0
	for k := range ports {
		for _, i := range order {
			p := nmapSYN(srcAt(i), uint16(1+k))
			at = at.Add(time.Microsecond)
			d.Observe(event.Observation{Source: "nflog:100", Time: at, Prefix: prefix, Packet: &p, Line: nflog.Text(p)})
		}
	}
	return at
}

func main() {
	sources := flag.Int("sources", 100000, "distinct scanning sources")
	portsFlag := flag.String("ports", "1,5,15,64,1024", "ports probed per source, one memory measurement each")
	events := flag.Int("events", 10000000, "observations per throughput measurement")
	flag.Parse()
	var portsList []int
	for _, f := range strings.Split(*portsFlag, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			fmt.Fprintln(os.Stderr, "scanmem: -ports: positive integers, comma-separated")
			os.Exit(2)
		}
		portsList = append(portsList, n)
	}
	n := *sources
	order := rand.New(rand.NewPCG(1, 2)).Perm(n)
	fmt.Printf("go %s, GOMAXPROCS %d, %d sources, Detector defaults (MaxTracked %d, Window 60s)\n",
		runtime.Version(), runtime.GOMAXPROCS(0), n, portscan.DefaultMaxTracked)

	fmt.Println("memory (live heap after two GCs, minus before New):")
	for _, ports := range portsList {
		base := heap()
		d := newDetector()
		t := time.Now()
		fill(d, order, ports)
		el := time.Since(t)
		used := heap() - base
		st := d.Stats()
		fmt.Printf("  %4d ports/source: %8.1f MB, %6.0f bytes per tracked source; tracked %d, kept port slots %d, evicted %d, findings %d, scans listed %d (fill: %.0f events/s)\n",
			ports, float64(used)/1e6, float64(used)/float64(max(st.Tracked, 1)), st.Tracked, st.KeptPorts, st.Evicted, st.Findings,
			len(d.Scans(t0.Add(time.Duration(ports*n)*time.Microsecond))), float64(ports*n)/el.Seconds())
		runtime.KeepAlive(d)
	}

	// Throughput on a filled detector.
	d := newDetector()
	at := fill(d, order, 64)
	obsv := make([]event.Observation, n)
	raw := make([][]byte, n)
	for i := range n {
		p := nmapSYN(srcAt(i), 1)
		obsv[i] = event.Observation{Source: "nflog:100", Time: t0, Prefix: prefix, Packet: &p, Line: nflog.Text(p)}
		raw[i] = rawSYN(srcAt(i), 1)
	}
	debug.FreeOSMemory()
	fmt.Printf("throughput, %d events each, on the detector filled with 64 ports per source (%d tracked):\n", *events, d.Stats().Tracked)
	start := time.Now()
	for i := range *events {
		o := &obsv[(i*7919)%n]
		o.Time = at.Add(time.Duration(i) * time.Microsecond)
		o.Packet.DstPort = uint16(100 + i/n%64)
		d.Observe(*o)
	}
	el := time.Since(start)
	fmt.Printf("  Observe alone:                 %10.0f events/s (%.0f ns/event)\n", float64(*events)/el.Seconds(), float64(el.Nanoseconds())/float64(*events))
	at = at.Add(time.Duration(*events) * time.Microsecond)
	start = time.Now()
	for i := range *events {
		j := (i * 7919) % n
		b := raw[j]
		binary.BigEndian.PutUint16(b[22:], uint16(200+i/n%64))
		p, err := nflog.Decode(b)
		if err != nil {
			panic(err)
		}
		d.Observe(event.Observation{Source: "nflog:100", Time: at.Add(time.Duration(i) * time.Microsecond), Prefix: prefix, Packet: &p, Line: nflog.Text(p)})
	}
	el = time.Since(start)
	fmt.Printf("  Decode + Text + Observe:       %10.0f events/s (%.0f ns/event)\n", float64(*events)/el.Seconds(), float64(el.Nanoseconds())/float64(*events))
	st := d.Stats()
	fmt.Printf("  after: tracked %d, kept port slots %d, evicted %d, observations %d\n", st.Tracked, st.KeptPorts, st.Evicted, st.Observations)
}
