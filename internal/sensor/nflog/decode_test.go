package nflog

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/moat-sec/moat/internal/event"
)

// Packets are built by hand, byte by byte, as the kernel hands them to
// NFLOG (from the IP header on). Checksums are left zero: nothing reads
// them.

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ipv4 returns an IPv4 header (20 bytes plus opts) followed by l4, with the
// total length set to fit.
func ipv4(src, dst string, ttl, proto uint8, frag uint16, opts []byte, l4 []byte) []byte {
	ihl := 20 + len(opts)
	b := make([]byte, ihl, ihl+len(l4))
	b[0] = 0x40 | uint8(ihl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(ihl+len(l4)))
	binary.BigEndian.PutUint16(b[4:], 0xd431)
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8], b[9] = ttl, proto
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], opts)
	return append(b, l4...)
}

// ipv6 returns an IPv6 header followed by rest (extension headers and the
// upper layer), next being the first next-header value.
func ipv6(src, dst string, hops, next uint8, rest []byte) []byte {
	b := make([]byte, 40, 40+len(rest))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(rest)))
	b[6], b[7] = next, hops
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	return append(b, rest...)
}

// tcp returns a TCP header with the options (padded to 4 bytes).
func tcp(sport, dport uint16, flags uint8, win uint16, opts []byte) []byte {
	for len(opts)%4 != 0 {
		opts = append(opts, 0)
	}
	b := make([]byte, 20, 20+len(opts))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint32(b[4:], 0x8d3c0f12)
	b[12] = uint8((20+len(opts))/4) << 4
	b[13] = flags
	binary.BigEndian.PutUint16(b[14:], win)
	return append(b, opts...)
}

func udp(sport, dport uint16, data []byte) []byte {
	b := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	binary.BigEndian.PutUint16(b[4:], uint16(8+len(data)))
	return append(b, data...)
}

func icmp(typ, code uint8) []byte {
	return []byte{typ, code, 0, 0, 0x12, 0x34, 0, 1}
}

// ext returns an IPv6 extension header of 8*(n+1) bytes.
func ext(next uint8, n int) []byte {
	b := make([]byte, 8*(n+1))
	b[0], b[1] = next, uint8(n)
	b[2], b[3] = 1, 4 // a PadN option
	return b
}

func fragHdr(next uint8, offset uint16, more bool) []byte {
	b := make([]byte, 8)
	b[0] = next
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], 0xdeadbeef)
	return b
}

// TCP options of real SYNs.
var (
	// Linux 6.x connect(): MSS, SACK permitted, timestamps, NOP, window scale 7.
	optLinux = []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0x9c, 0x3f, 0x11, 0x7a, 0, 0, 0, 0, 1, 3, 3, 7}
	// Linux over lo (MTU 65536).
	optLinuxLo = []byte{2, 4, 0xff, 0xd7, 4, 2, 8, 10, 0, 0, 0x3a, 0x98, 0, 0, 0, 0, 1, 3, 3, 7}
	// Windows 10/11: MSS, NOP, window scale 8, NOP, NOP, SACK permitted.
	optWindows = []byte{2, 4, 0x05, 0xa0, 1, 3, 3, 8, 1, 1, 4, 2}
	// macOS: MSS, NOP, window scale 6, NOP, NOP, timestamps, SACK permitted, EOL, padding.
	optMac = []byte{2, 4, 0x05, 0xb4, 1, 3, 3, 6, 1, 1, 8, 10, 0x4e, 0x1b, 0x9a, 0x02, 0, 0, 0, 0, 4, 2, 0, 0}
	// nmap -sS: MSS 1460 only.
	optNmap = []byte{2, 4, 0x05, 0xb4}
	// MPTCP (kind 30) after MSS.
	optMPTCP = []byte{2, 4, 0x05, 0xb4, 30, 12, 0, 0x81, 1, 2, 3, 4, 5, 6, 7, 8}
)

type decodeCase struct {
	name    string
	payload []byte
	want    event.Packet
	err     error
}

func decodeCases(t testing.TB) []decodeCase {
	a4 := netip.MustParseAddr("203.0.113.66")
	b4 := netip.MustParseAddr("198.51.100.1")
	a6 := netip.MustParseAddr("2001:db8::66")
	b6 := netip.MustParseAddr("2001:db8:1::1")
	tcpPkt := func(flags uint8, win uint16, opts string, ttl uint8, length uint16) event.Packet {
		return event.Packet{Src: a4, Dst: b4, Proto: 6, SrcPort: 40000, DstPort: 23, TCPFlags: flags, TTL: ttl, Window: win, Length: length, TCPOptions: opts}
	}
	return []decodeCase{
		{"linux SYN", ipv4("203.0.113.66", "198.51.100.1", 57, 6, 0x4000, nil, tcp(40000, 23, SYN, 64240, optLinux)),
			tcpPkt(SYN, 64240, "M1460,S,T,N,W7", 57, 60), nil},
		{"nmap -sS", ipv4("203.0.113.66", "198.51.100.1", 44, 6, 0, nil, tcp(40000, 23, SYN, 1024, optNmap)),
			tcpPkt(SYN, 1024, "M1460", 44, 44), nil},
		{"masscan SYN without options", ipv4("203.0.113.66", "198.51.100.1", 250, 6, 0, nil, tcp(40000, 23, SYN, 1024, nil)),
			tcpPkt(SYN, 1024, "", 250, 40), nil},
		{"nmap -sX", ipv4("203.0.113.66", "198.51.100.1", 44, 6, 0, nil, tcp(40000, 23, FIN|PSH|URG, 1024, nil)),
			tcpPkt(FIN|PSH|URG, 1024, "", 44, 40), nil},
		{"nmap -sN", ipv4("203.0.113.66", "198.51.100.1", 44, 6, 0, nil, tcp(40000, 23, 0, 1024, nil)),
			tcpPkt(0, 1024, "", 44, 40), nil},
		{"windows SYN", ipv4("203.0.113.66", "198.51.100.1", 115, 6, 0x4000, nil, tcp(40000, 23, SYN|ECE|CWR, 64240, optWindows)),
			tcpPkt(SYN|ECE|CWR, 64240, "M1440,N,W8,N,N,S", 115, 52), nil},
		{"macos SYN", ipv4("203.0.113.66", "198.51.100.1", 52, 6, 0x4000, nil, tcp(40000, 23, SYN, 65535, optMac)),
			tcpPkt(SYN, 65535, "M1460,N,W6,N,N,T,S,E", 52, 64), nil},
		{"unknown option kind", ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0, nil, tcp(40000, 23, SYN, 64240, optMPTCP)),
			tcpPkt(SYN, 64240, "M1460,?30", 64, 56), nil},
		{"option with length 0 ends the list", ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0, nil, tcp(40000, 23, SYN, 512, []byte{2, 4, 1, 0, 1, 8, 0, 1})),
			tcpPkt(SYN, 512, "M256,N", 64, 48), nil},
		{"option running past the header", ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0, nil, tcp(40000, 23, SYN, 512, []byte{1, 1, 2, 40})),
			tcpPkt(SYN, 512, "N,N", 64, 44), nil},
		{"IP options", ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0, []byte{0x94, 4, 0, 0}, tcp(40000, 23, ACK, 1024, nil)),
			tcpPkt(ACK, 1024, "", 64, 44), nil},
		{"first fragment", ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0x2000, nil, tcp(40000, 23, FIN, 1024, nil)),
			tcpPkt(FIN, 1024, "", 64, 40), nil},
		{"udp", ipv4("203.0.113.66", "198.51.100.1", 57, 17, 0, nil, udp(53211, 161, []byte("public"))),
			event.Packet{Src: a4, Dst: b4, Proto: 17, SrcPort: 53211, DstPort: 161, TTL: 57, Length: 34}, nil},
		{"icmp echo", ipv4("203.0.113.66", "198.51.100.1", 57, 1, 0, nil, icmp(8, 0)),
			event.Packet{Src: a4, Dst: b4, Proto: 1, ICMPType: 8, TTL: 57, Length: 28}, nil},
		{"icmp timestamp", ipv4("203.0.113.66", "198.51.100.1", 57, 1, 0, nil, append(icmp(13, 0), make([]byte, 12)...)),
			event.Packet{Src: a4, Dst: b4, Proto: 1, ICMPType: 13, TTL: 57, Length: 40}, nil},
		{"gre has no ports", ipv4("203.0.113.66", "198.51.100.1", 57, 47, 0, nil, []byte{0, 0, 8, 0}),
			event.Packet{Src: a4, Dst: b4, Proto: 47, TTL: 57, Length: 24}, nil},
		{"v6 linux SYN", ipv6("2001:db8::66", "2001:db8:1::1", 61, 6, tcp(40000, 22, SYN, 64800, optLinux)),
			event.Packet{Src: a6, Dst: b6, Proto: 6, SrcPort: 40000, DstPort: 22, TCPFlags: SYN, TTL: 61, Window: 64800, Length: 80, TCPOptions: "M1460,S,T,N,W7"}, nil},
		{"v6 udp after hop-by-hop, destination options and a first fragment",
			ipv6("2001:db8::66", "2001:db8:1::1", 64, 0, append(append(append(ext(60, 0), ext(44, 1)...), fragHdr(17, 0, true)...), udp(1234, 5060, nil)...)),
			event.Packet{Src: a6, Dst: b6, Proto: 17, SrcPort: 1234, DstPort: 5060, TTL: 64, Length: 80}, nil},
		{"v6 tcp after routing and AH", ipv6("2001:db8::66", "2001:db8:1::1", 64, 43, append(append(ext(51, 0), 6, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), tcp(1, 2, FIN, 3, nil)...)),
			event.Packet{Src: a6, Dst: b6, Proto: 6, SrcPort: 1, DstPort: 2, TCPFlags: FIN, Window: 3, TTL: 64, Length: 92}, nil},
		{"v6 icmpv6 echo", ipv6("2001:db8::66", "2001:db8:1::1", 255, 58, icmp(128, 0)),
			event.Packet{Src: a6, Dst: b6, Proto: 58, ICMPType: 128, TTL: 255, Length: 48}, nil},
		{"v6 esp", ipv6("2001:db8::66", "2001:db8:1::1", 64, 50, make([]byte, 16)),
			event.Packet{Src: a6, Dst: b6, Proto: 50, TTL: 64, Length: 56}, nil},
		{"v4-mapped source stays as sent", ipv6("::ffff:203.0.113.66", "2001:db8:1::1", 64, 59, nil),
			event.Packet{Src: netip.MustParseAddr("::ffff:203.0.113.66"), Dst: b6, Proto: 59, TTL: 64, Length: 40}, nil},

		// Fragments other than the first: IP fields only.
		{"v4 later fragment", ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0x0005, nil, make([]byte, 24)),
			event.Packet{Src: a4, Dst: b4, Proto: 6, TTL: 64, Length: 44}, ErrFragment},
		{"v6 later fragment", ipv6("2001:db8::66", "2001:db8:1::1", 64, 44, append(fragHdr(6, 185, false), make([]byte, 20)...)),
			event.Packet{Src: a6, Dst: b6, Proto: 6, TTL: 64, Length: 68}, ErrFragment},

		// Errors.
		{"empty", nil, event.Packet{}, ErrTruncated},
		{"ipv5", []byte{0x50, 0, 0, 20}, event.Packet{}, ErrVersion},
		{"short v4", make([]byte, 19), event.Packet{}, ErrVersion},
		{"short v4 header", unhex(t, "45000028 00000000 4006 0000 cb007142 c6336401")[:19], event.Packet{}, ErrTruncated},
		{"ihl 4", unhex(t, "44000028 00000000 4006 0000 cb007142 c6336401"), event.Packet{}, ErrHeader},
		{"total length under ihl", unhex(t, "45000010 00000000 4006 0000 cb007142 c6336401"), event.Packet{}, ErrHeader},
		{"ihl past the end", unhex(t, "4f000040 00000000 4006 0000 cb007142 c6336401"), event.Packet{}, ErrTruncated},
		{"tiny first fragment", ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0x2000, nil, tcp(40000, 23, SYN, 1024, nil)[:8]),
			event.Packet{}, ErrTruncated},
		{"tcp data offset 4", ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0, nil, func() []byte { b := tcp(1, 2, SYN, 3, nil); b[12] = 0x40; return b }()),
			event.Packet{}, ErrHeader},
		{"short udp", ipv4("203.0.113.66", "198.51.100.1", 64, 17, 0, nil, []byte{1, 2, 3, 4}), event.Packet{}, ErrTruncated},
		{"short icmp", ipv4("203.0.113.66", "198.51.100.1", 64, 1, 0, nil, []byte{8}), event.Packet{}, ErrTruncated},
		{"short v6", ipv6("2001:db8::66", "2001:db8:1::1", 64, 59, nil)[:39], event.Packet{}, ErrTruncated},
		{"v6 extension header past the end", ipv6("2001:db8::66", "2001:db8:1::1", 64, 0, ext(6, 3)[:16]), event.Packet{}, ErrTruncated},
		{"v6 nine extension headers", ipv6("2001:db8::66", "2001:db8:1::1", 64, 60, func() []byte {
			var b []byte
			for range 9 {
				b = append(b, ext(60, 0)...)
			}
			return append(b, udp(1, 2, nil)...)
		}()), event.Packet{}, ErrExtHeaders},
	}
}

func TestDecode(t *testing.T) {
	for _, c := range decodeCases(t) {
		t.Run(c.name, func(t *testing.T) {
			got, err := Decode(c.payload)
			if err != c.err {
				t.Fatalf("error %v, want %v", err, c.err)
			}
			if err != nil && err != ErrFragment {
				return
			}
			if diff := cmp.Diff(c.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
		})
	}
}

// TestDecodeCopyRange: options cut by the group's copy range are read as
// far as they go.
func TestDecodeCopyRange(t *testing.T) {
	pkt := ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0, nil, tcp(40000, 23, SYN, 64240, optLinux))
	got, err := Decode(pkt[:20+20+9])
	if err != nil {
		t.Fatal(err)
	}
	if got.TCPOptions != "M1460,S" || got.Length != 60 {
		t.Errorf("got options %q, length %d", got.TCPOptions, got.Length)
	}
	// Bytes after the IP total length (Ethernet padding) are not options.
	short := ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0, nil, tcp(40000, 23, SYN, 64240, optNmap))
	binary.BigEndian.PutUint16(short[2:], 40)
	got, err = Decode(short)
	if err != nil || got.TCPOptions != "" {
		t.Errorf("options past total length: %q, %v", got.TCPOptions, err)
	}
}

func TestTCPOptions(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		want string
	}{
		{nil, ""},
		{[]byte{0}, "E"},
		{[]byte{1, 1, 1}, "N,N,N"},
		{[]byte{1, 0, 2, 4, 5, 180}, "N,E"},
		{[]byte{3, 3, 14}, "W14"},
		{[]byte{3, 4, 14, 0}, "?3"}, // window scale of a wrong length
		{[]byte{8, 10, 0, 0, 0, 1, 0, 0, 0, 0}, "T"},
		{[]byte{2}, ""},
		{[]byte{2, 1, 5}, ""},
		{[]byte{4, 2, 2, 4, 5}, "S"},
		{append(bytes.Repeat([]byte{1}, 39), 3, 3, 7), strings.Repeat("N,", 38) + "N"}, // cut at 40 bytes
	} {
		if got := TCPOptions(c.in); got != c.want {
			t.Errorf("TCPOptions(% x) = %q, want %q", c.in, got, c.want)
		}
	}
	// The worst case fits the stack buffer.
	worst := make([]byte, 40)
	for i := 0; i < 40; i += 2 {
		worst[i], worst[i+1] = 255, 2
	}
	if got := TCPOptions(worst); got != strings.Repeat("?255,", 19)+"?255" {
		t.Errorf("worst case: %q", got)
	}
}

func TestText(t *testing.T) {
	p, err := Decode(ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0, nil, tcp(40000, 23, SYN, 1024, optNmap)))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Text(p), "SRC=203.0.113.66 DST=198.51.100.1 PROTO=TCP SPT=40000 DPT=23 FLAGS=SYN WIN=1024 OPT=M1460 TTL=64 LEN=44"; got != want {
		t.Errorf("Text = %q\nwant   %q", got, want)
	}
	p, _ = Decode(ipv6("2001:db8::66", "2001:db8:1::1", 255, 58, icmp(128, 0)))
	if got, want := Text(p), "SRC=2001:db8::66 DST=2001:db8:1::1 PROTO=ICMPv6 TYPE=128 TTL=255 LEN=48"; got != want {
		t.Errorf("Text = %q\nwant   %q", got, want)
	}
	p, _ = Decode(ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0, nil, tcp(1, 2, FIN|PSH|URG|ECE, 0, nil)))
	if got := Text(p); !strings.Contains(got, " FLAGS=FIN,PSH,URG,ECE ") {
		t.Errorf("Text = %q", got)
	}
	p, _ = Decode(ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0, nil, tcp(1, 2, 0, 0, nil)))
	if got := Text(p); !strings.Contains(got, " FLAGS=NONE ") {
		t.Errorf("Text = %q", got)
	}
}

// TestDecodeNoAllocs: the hot path allocates nothing for common packets,
// options included (interned).
func TestDecodeNoAllocs(t *testing.T) {
	rare := map[string]bool{ // options no stack sends: rendered afresh
		"unknown option kind": true, "option with length 0 ends the list": true, "option running past the header": true,
	}
	for _, c := range decodeCases(t) {
		if c.err != nil {
			continue
		}
		n := testing.AllocsPerRun(100, func() { Decode(c.payload) })
		if n != 0 && !rare[c.name] {
			t.Errorf("%s: %v allocations", c.name, n)
		}
	}
	raw := ipv4("203.0.113.66", "198.51.100.1", 64, 6, 0, nil, tcp(40000, 23, SYN, 65495, optLinuxLo))
	if n := testing.AllocsPerRun(100, func() { Decode(raw) }); n != 0 {
		t.Errorf("lo SYN: %v allocations", n)
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases(f) {
		f.Add(c.payload)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		orig := string(b)
		p, err := Decode(b)
		if string(b) != orig {
			t.Fatal("Decode changed its input")
		}
		if err != nil && err != ErrFragment {
			return
		}
		if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4() != p.Dst.Is4() {
			t.Fatalf("addresses %v %v", p.Src, p.Dst)
		}
		if p.TCPOptions != "" && p.Proto != ProtoTCP {
			t.Fatalf("options %q on protocol %d", p.TCPOptions, p.Proto)
		}
		if len(p.TCPOptions) > 4*maxOptions {
			t.Fatalf("options %q", p.TCPOptions)
		}
		if p.Proto != ProtoTCP && p.Proto != ProtoUDP && (p.SrcPort != 0 || p.DstPort != 0) {
			t.Fatalf("ports on protocol %d", p.Proto)
		}
		if err == ErrFragment && (p.SrcPort != 0 || p.DstPort != 0 || p.TCPFlags != 0) {
			t.Fatal("transport fields on a later fragment")
		}
		if p2, err2 := Decode(b); p2 != p || err2 != err {
			t.Fatal("not deterministic")
		}
		Text(p)
	})
}

func BenchmarkDecode(b *testing.B) {
	pkts := [][]byte{
		ipv4("203.0.113.66", "198.51.100.1", 44, 6, 0, nil, tcp(40000, 23, SYN, 1024, optNmap)),
		ipv4("203.0.113.66", "198.51.100.1", 57, 6, 0x4000, nil, tcp(40000, 23, SYN, 64240, optLinux)),
		ipv4("203.0.113.66", "198.51.100.1", 57, 17, 0, nil, udp(53211, 161, nil)),
		ipv6("2001:db8::66", "2001:db8:1::1", 61, 6, tcp(40000, 22, SYN, 64800, optWindows)),
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := Decode(pkts[i%len(pkts)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "packets/s")
}
