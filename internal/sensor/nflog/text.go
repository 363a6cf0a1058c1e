package nflog

import (
	"strconv"

	"github.com/moat-sec/moat/internal/event"
)

// Text renders a packet as a compact line in the kernel log's style, used
// as evidence: "SRC=203.0.113.66 DST=198.51.100.1 PROTO=TCP SPT=40000
// DPT=23 FLAGS=SYN WIN=1024 OPT=M1460 TTL=57 LEN=44". Every value is a
// number, an address or a fixed word: nothing the sender chose as text.
func Text(p event.Packet) string {
	var buf [160]byte
	b := append(buf[:0], "SRC="...)
	b = p.Src.AppendTo(b)
	b = append(b, " DST="...)
	b = p.Dst.AppendTo(b)
	b = append(b, " PROTO="...)
	b = append(b, ProtoName(p.Proto)...)
	switch p.Proto {
	case ProtoTCP, ProtoUDP:
		b = append(b, " SPT="...)
		b = strconv.AppendUint(b, uint64(p.SrcPort), 10)
		b = append(b, " DPT="...)
		b = strconv.AppendUint(b, uint64(p.DstPort), 10)
		if p.Proto == ProtoTCP {
			b = append(b, " FLAGS="...)
			b = AppendFlags(b, p.TCPFlags)
			b = append(b, " WIN="...)
			b = strconv.AppendUint(b, uint64(p.Window), 10)
			if p.TCPOptions != "" {
				b = append(b, " OPT="...)
				b = append(b, p.TCPOptions...)
			}
		}
	case ProtoICMP, ProtoICMPv6:
		b = append(b, " TYPE="...)
		b = strconv.AppendUint(b, uint64(p.ICMPType), 10)
	}
	b = append(b, " TTL="...)
	b = strconv.AppendUint(b, uint64(p.TTL), 10)
	b = append(b, " LEN="...)
	b = strconv.AppendUint(b, uint64(p.Length), 10)
	return string(b)
}

// ProtoName is the kernel log's name for an IP protocol, or its number.
func ProtoName(proto uint8) string {
	switch proto {
	case ProtoTCP:
		return "TCP"
	case ProtoUDP:
		return "UDP"
	case ProtoICMP:
		return "ICMP"
	case ProtoICMPv6:
		return "ICMPv6"
	case 132:
		return "SCTP"
	case 136:
		return "UDPLITE"
	}
	return strconv.Itoa(int(proto))
}

var flagNames = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// AppendFlags appends TCP flags as "SYN,ACK", or "NONE".
func AppendFlags(b []byte, flags uint8) []byte {
	if flags == 0 {
		return append(b, "NONE"...)
	}
	first := true
	for i, name := range flagNames {
		if flags&(1<<i) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		b = append(b, name...)
		first = false
	}
	return b
}
