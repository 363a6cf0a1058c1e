package kmsg

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/moat-sec/moat/internal/event"
)

const mac = "MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 "

var (
	a4 = netip.MustParseAddr("203.0.113.66")
	b4 = netip.MustParseAddr("198.51.100.1")
	a6 = netip.MustParseAddr("2001:db8::66")
	b6 = netip.MustParseAddr("2001:db8:1::1")
)

type parseCase struct {
	name   string
	line   string
	want   event.Packet
	prefix string
	ok     bool
}

var parseCases = []parseCase{
	{"kern.log, nmap -sS",
		"Jan  2 03:04:05 gw kernel: [12345.678901] moat:in:drop:default IN=eth0 OUT= " + mac + "SRC=203.0.113.66 DST=198.51.100.1 LEN=44 TOS=0x00 PREC=0x00 TTL=57 ID=54321 PROTO=TCP SPT=53321 DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0 OPT (020405B4)",
		event.Packet{Src: a4, Dst: b4, Proto: 6, SrcPort: 53321, DstPort: 23, TCPFlags: 0x02, TTL: 57, Window: 1024, Length: 44, TCPOptions: "M1460"},
		"moat:in:drop:default ", true},
	{"ufw.log, IPv6 in the kernel's full form",
		"2026-01-02T03:04:05.123456+00:00 host kernel: [UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:86:dd SRC=2001:0db8:0000:0000:0000:0000:0000:0066 DST=2001:0db8:0001:0000:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=52 FLOWLBL=327680 PROTO=TCP SPT=40000 DPT=22 WINDOW=64800 RES=0x00 SYN URGP=0",
		event.Packet{Src: a6, Dst: b6, Proto: 6, SrcPort: 40000, DstPort: 22, TCPFlags: 0x02, TTL: 52, Window: 64800, Length: 80},
		"[UFW BLOCK] ", true},
	{"journalctl -k -o cat, XMAS",
		"moat:in:drop:tcp-xmas IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=40 TOS=0x00 PREC=0x00 TTL=44 ID=1 PROTO=TCP SPT=61234 DPT=80 WINDOW=1024 RES=0x00 URG PSH FIN URGP=0",
		event.Packet{Src: a4, Dst: b4, Proto: 6, SrcPort: 61234, DstPort: 80, TCPFlags: 0x29, TTL: 44, Window: 1024, Length: 40},
		"moat:in:drop:tcp-xmas ", true},
	{"NULL scan: no flag words",
		"moat:in:drop:tcp-null IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=40 TOS=0x00 PREC=0x00 TTL=44 ID=1 PROTO=TCP SPT=61234 DPT=80 WINDOW=1024 RES=0x00 URGP=0",
		event.Packet{Src: a4, Dst: b4, Proto: 6, SrcPort: 61234, DstPort: 80, TTL: 44, Window: 1024, Length: 40},
		"moat:in:drop:tcp-null ", true},
	{"sequence numbers logged: ACK=n is not the flag",
		"moat:in:drop:tcp-new-not-syn IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=40 TOS=0x00 PREC=0x00 TTL=44 ID=1 PROTO=TCP SPT=61234 DPT=80 SEQ=1234 ACK=0 WINDOW=1024 RES=0x00 ACK URGP=0 UID=0 GID=0 MARK=0x1",
		event.Packet{Src: a4, Dst: b4, Proto: 6, SrcPort: 61234, DstPort: 80, TCPFlags: 0x10, TTL: 44, Window: 1024, Length: 40},
		"moat:in:drop:tcp-new-not-syn ", true},
	{"linux options, IP options before",
		"[ 12.5] moat:in:drop:default IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=64 TOS=0x00 PREC=0x00 TTL=57 ID=0 DF OPT (94040000) PROTO=TCP SPT=40000 DPT=23 WINDOW=64240 RES=0x00 CWR ECE SYN URGP=0 OPT (020405B40402080A9C3F117A0000000001030307) ",
		event.Packet{Src: a4, Dst: b4, Proto: 6, SrcPort: 40000, DstPort: 23, TCPFlags: 0xc2, TTL: 57, Window: 64240, Length: 64, TCPOptions: "M1460,S,T,N,W7"},
		"moat:in:drop:default ", true},
	{"udp",
		"moat:in:reject:rule-3 IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=34 TOS=0x00 PREC=0x00 TTL=57 ID=99 PROTO=UDP SPT=53211 DPT=161 LEN=14",
		event.Packet{Src: a4, Dst: b4, Proto: 17, SrcPort: 53211, DstPort: 161, TTL: 57, Length: 34},
		"moat:in:reject:rule-3 ", true},
	{"icmp echo",
		"moat:in:limit:rule-1 IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=84 TOS=0x00 PREC=0x00 TTL=57 ID=99 DF PROTO=ICMP TYPE=8 CODE=0 ID=4660 SEQ=1",
		event.Packet{Src: a4, Dst: b4, Proto: 1, ICMPType: 8, TTL: 57, Length: 84},
		"moat:in:limit:rule-1 ", true},
	{"icmp error quotes another packet",
		"moat:in:drop:default IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=56 TOS=0x00 PREC=0xC0 TTL=57 ID=99 PROTO=ICMP TYPE=3 CODE=3 [SRC=198.51.100.1 DST=203.0.113.66 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDP SPT=53 DPT=4444 LEN=8 ] ",
		event.Packet{Src: a4, Dst: b4, Proto: 1, ICMPType: 3, TTL: 57, Length: 56},
		"moat:in:drop:default ", true},
	{"icmpv6",
		"moat:in:drop:default IN=eth0 OUT= SRC=2001:db8::66 DST=2001:db8:1::1 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=1 PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=1",
		event.Packet{Src: a6, Dst: b6, Proto: 58, ICMPType: 128, TTL: 64, Length: 104},
		"moat:in:drop:default ", true},
	{"dmesg -T stamp",
		"[Mon Jan  2 03:04:05 2026] moat:in:drop:default IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=40 TOS=0x00 PREC=0x00 TTL=44 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=1024 RES=0x00 FIN URGP=0",
		event.Packet{Src: a4, Dst: b4, Proto: 6, SrcPort: 1, DstPort: 2, TCPFlags: 0x01, TTL: 44, Window: 1024, Length: 40},
		"moat:in:drop:default ", true},
	{"iptables prefix without a space",
		"kernel: DROPPEDIN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=40 TOS=0x00 PREC=0x00 TTL=44 ID=1 PROTO=TCP SPT=1 DPT=2 WINDOW=1024 RES=0x00 SYN URGP=0",
		event.Packet{Src: a4, Dst: b4, Proto: 6, SrcPort: 1, DstPort: 2, TCPFlags: 0x02, TTL: 44, Window: 1024, Length: 40},
		"DROPPED", true},
	{"no prefix", "IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=20 TOS=0x00 PREC=0x00 TTL=44 ID=1 PROTO=47 ",
		event.Packet{Src: a4, Dst: b4, Proto: 47, TTL: 44, Length: 20}, "", true},

	// Not packets.
	{"later fragment: no transport header",
		"moat:in:drop:default IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=44 TOS=0x00 PREC=0x00 TTL=64 ID=1 MF FRAG:185 PROTO=TCP ", event.Packet{}, "", false},
	{"incomplete header",
		"moat:in:drop:default IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=28 TOS=0x00 PREC=0x00 TTL=64 ID=1 MF PROTO=TCP INCOMPLETE [8 bytes] ", event.Packet{}, "", false},
	{"tcp without URGP",
		"moat:in:drop:default IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=28 TTL=64 PROTO=TCP SPT=1 DPT=2 WINDOW=1024 SYN", event.Packet{}, "", false},
	{"octal-looking address (R5)",
		"moat:in:drop:default IN=eth0 OUT= SRC=192.030.0.6 DST=198.51.100.1 LEN=28 TTL=64 PROTO=UDP SPT=1 DPT=2 LEN=8", event.Packet{}, "", false},
	{"mixed families",
		"moat:in:drop:default IN=eth0 OUT= SRC=203.0.113.66 DST=2001:db8::1 LEN=28 TTL=64 PROTO=UDP SPT=1 DPT=2 LEN=8", event.Packet{}, "", false},
	{"host names are not addresses",
		"moat:in:drop:default IN=eth0 OUT= SRC=evil.example DST=198.51.100.1 LEN=28 TTL=64 PROTO=UDP SPT=1 DPT=2 LEN=8", event.Packet{}, "", false},
	{"not netfilter", "Jan  2 03:04:05 gw kernel: [1.2] e1000e: eth0 NIC Link is Up 1000 Mbps", event.Packet{}, "", false},
	{"sshd", "Jan  2 03:04:05 gw sshd[123]: Failed password for root from 203.0.113.66 port 4242 ssh2", event.Packet{}, "", false},
	{"IN= without OUT=", "moat IN=eth0 SRC=203.0.113.66 DST=198.51.100.1 PROTO=UDP SPT=1 DPT=2", event.Packet{}, "", false},
	{"too long", "moat IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 LEN=28 TTL=64 PROTO=UDP SPT=1 DPT=2 " + strings.Repeat("X", MaxLine), event.Packet{}, "", false},
}

func TestParse(t *testing.T) {
	for _, c := range parseCases {
		t.Run(c.name, func(t *testing.T) {
			p, prefix, ok := Parse(c.line)
			if ok != c.ok {
				t.Fatalf("ok %v, want %v (%+v)", ok, c.ok, p)
			}
			if prefix != c.prefix {
				t.Errorf("prefix %q, want %q", prefix, c.prefix)
			}
			if diff := cmp.Diff(c.want, p, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
				t.Errorf("-want +got:\n%s", diff)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range parseCases {
		f.Add(c.line)
	}
	f.Fuzz(func(t *testing.T, line string) {
		p, prefix, ok := Parse(line)
		if !ok {
			if p != (event.Packet{}) || prefix != "" {
				t.Fatalf("not ok, yet %+v %q", p, prefix)
			}
			return
		}
		if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4() != p.Dst.Is4() || p.Src.Zone() != "" {
			t.Fatalf("addresses %v %v", p.Src, p.Dst)
		}
		if !strings.Contains(line, prefix) || strings.Contains(prefix, "IN=") && !strings.Contains(line[strings.Index(line, prefix)+len(prefix):], "IN=") {
			t.Fatalf("prefix %q not before the fields of %q", prefix, line)
		}
		if p.Proto != 6 && p.Proto != 17 && p.Proto != 136 && p.Proto != 132 && (p.SrcPort != 0 || p.DstPort != 0) {
			t.Fatalf("ports on protocol %d", p.Proto)
		}
		if p.TCPOptions != "" && p.Proto != 6 {
			t.Fatalf("options on protocol %d", p.Proto)
		}
		if p2, prefix2, ok2 := Parse(line); p2 != p || prefix2 != prefix || !ok2 {
			t.Fatal("not deterministic")
		}
	})
}

func BenchmarkParse(b *testing.B) {
	line := parseCases[0].line
	b.ReportAllocs()
	for b.Loop() {
		if _, _, ok := Parse(line); !ok {
			b.Fatal("not parsed")
		}
	}
}
