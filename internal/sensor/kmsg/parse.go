package kmsg

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/moat-sec/moat/internal/event"
	"github.com/moat-sec/moat/internal/sensor/nflog"
)

// MaxLine is the longest line Parse reads; the kernel's own lines are under
// 1 KiB.
const MaxLine = 4096

// Parse reads a netfilter log line: the prefix the rule logged with (as it
// appears, trailing space included: "moat:in:drop:default ", "[UFW BLOCK] ")
// and the packet's fields. It accepts the line bare (journalctl -k -o cat),
// after a syslog header ending in "kernel: ", and after dmesg's
// "[ 1234.567890] " or "[Mon Jan  2 03:04:05 2026] " stamp.
//
// ok is false when the line is not a netfilter log line, an address is not
// numeric (net/netip rules: no leading zeros, zones dropped), or the
// transport header was not logged (a later fragment, "INCOMPLETE"): a TCP
// line counts only with its ports and URGP= (which ends the flags), UDP
// with its ports, ICMP with its TYPE=.
func Parse(line string) (p event.Packet, prefix string, ok bool) {
	if len(line) > MaxLine {
		return p, "", false
	}
	rest := line
	if _, after, found := strings.Cut(rest, "kernel: "); found {
		rest = after
	}
	rest = stripStamp(rest)
	i := fieldsStart(rest)
	if i < 0 {
		return p, "", false
	}
	prefix, rest = rest[:i], rest[i:]

	var (
		proto    string // after PROTO=
		sawLen   bool
		sawSrc   bool
		sawDst   bool
		sawSPT   bool
		sawDPT   bool
		sawURGP  bool
		sawType  bool
		opt      bool // the previous token was OPT
		protoSet bool
	)
	for rest != "" {
		var tok string
		tok, rest, _ = strings.Cut(rest, " ")
		if tok == "" {
			continue
		}
		if protoSet && tok[0] == '[' {
			break // an ICMP error's quoted packet: not this packet's fields
		}
		if opt {
			opt = false
			if protoSet && p.Proto == nflog.ProtoTCP && sawURGP && p.TCPOptions == "" {
				p.TCPOptions = tcpOptions(tok)
			}
			continue
		}
		key, val, isKV := strings.Cut(tok, "=")
		if !isKV {
			switch {
			case tok == "OPT":
				opt = true
			case protoSet && p.Proto == nflog.ProtoTCP && !sawURGP:
				p.TCPFlags |= flagBit(tok)
			}
			continue
		}
		switch key {
		case "SRC":
			if a, err := netip.ParseAddr(val); err == nil && !sawSrc {
				p.Src, sawSrc = a.WithZone(""), true
			}
		case "DST":
			if a, err := netip.ParseAddr(val); err == nil && !sawDst {
				p.Dst, sawDst = a.WithZone(""), true
			}
		case "LEN":
			if !sawLen && !protoSet {
				p.Length = uint16(num(val, 0xffff))
				sawLen = true
			}
		case "TTL", "HOPLIMIT":
			if !protoSet {
				p.TTL = uint8(num(val, 0xff))
			}
		case "PROTO":
			if protoSet {
				continue
			}
			proto, protoSet = val, true
			p.Proto = protoNumber(val)
		case "SPT":
			if protoSet && hasPorts(p.Proto) && !sawSPT {
				p.SrcPort, sawSPT = uint16(num(val, 0xffff)), true
			}
		case "DPT":
			if protoSet && hasPorts(p.Proto) && !sawDPT {
				p.DstPort, sawDPT = uint16(num(val, 0xffff)), true
			}
		case "WINDOW":
			if protoSet && p.Proto == nflog.ProtoTCP {
				p.Window = uint16(num(val, 0xffff))
			}
		case "URGP":
			if protoSet && p.Proto == nflog.ProtoTCP {
				sawURGP = true
			}
		case "TYPE":
			if protoSet && !sawType && (p.Proto == nflog.ProtoICMP || p.Proto == nflog.ProtoICMPv6) {
				p.ICMPType, sawType = uint8(num(val, 0xff)), true
			}
		}
	}
	if !sawSrc || !sawDst || !protoSet || p.Src.Is4() != p.Dst.Is4() {
		return event.Packet{}, "", false
	}
	switch p.Proto {
	case nflog.ProtoTCP:
		ok = sawSPT && sawDPT && sawURGP
	case nflog.ProtoUDP, 136: // UDP-Lite logs like UDP
		ok = sawSPT && sawDPT
	case nflog.ProtoICMP, nflog.ProtoICMPv6:
		ok = sawType
	default:
		ok = proto != ""
	}
	if !ok {
		return event.Packet{}, "", false
	}
	return p, prefix, true
}

// stripStamp removes dmesg's leading "[  123.456789] " (uptime) or
// "[Mon Jan  2 03:04:05 2026] " (dmesg -T), and not a bracketed prefix
// such as "[UFW BLOCK] ".
func stripStamp(s string) string {
	if !strings.HasPrefix(s, "[") {
		return s
	}
	end := strings.IndexByte(s, ']')
	if end < 0 {
		return s
	}
	in := s[1:end]
	uptime := in != ""
	for i := 0; i < len(in); i++ {
		if c := in[i]; (c < '0' || c > '9') && c != '.' && c != ' ' {
			uptime = false
			break
		}
	}
	dated := len(in) >= 4 && in[3] == ' ' && strings.Contains("Mon Tue Wed Thu Fri Sat Sun", in[:3]) && strings.Count(in, ":") == 2
	if !uptime && !dated {
		return s
	}
	return strings.TrimLeft(s[end+1:], " ")
}

// fieldsStart returns where the fields start: at the first "IN=", which
// a later " OUT=" follows, as in every netfilter log line.
func fieldsStart(s string) int {
	i := strings.Index(s, "IN=")
	if i < 0 || strings.LastIndex(s, " OUT=") < i {
		return -1
	}
	return i
}

// num parses a decimal field, capped at limit; junk is 0.
func num(s string, limit uint64) uint64 {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0
	}
	return min(n, limit)
}

func hasPorts(proto uint8) bool {
	return proto == nflog.ProtoTCP || proto == nflog.ProtoUDP || proto == 136 || proto == 132
}

func protoNumber(s string) uint8 {
	switch s {
	case "TCP":
		return nflog.ProtoTCP
	case "UDP":
		return nflog.ProtoUDP
	case "ICMP":
		return nflog.ProtoICMP
	case "ICMPv6":
		return nflog.ProtoICMPv6
	case "UDPLITE":
		return 136
	case "SCTP":
		return 132
	case "AH":
		return 51
	case "ESP":
		return 50
	}
	return uint8(num(s, 0xff))
}

func flagBit(w string) uint8 {
	switch w {
	case "FIN":
		return nflog.FIN
	case "SYN":
		return nflog.SYN
	case "RST":
		return nflog.RST
	case "PSH":
		return nflog.PSH
	case "ACK":
		return nflog.ACK
	case "URG":
		return nflog.URG
	case "ECE":
		return nflog.ECE
	case "CWR":
		return nflog.CWR
	}
	return 0
}

// tcpOptions reads "(020405B4...)", the options in hex, at most 40 bytes.
func tcpOptions(tok string) string {
	tok = strings.TrimPrefix(tok, "(")
	tok = strings.TrimSuffix(tok, ")")
	var buf [40]byte
	n := 0
	for i := 0; i+1 < len(tok) && n < len(buf); i += 2 {
		hi, ok1 := unhex(tok[i])
		lo, ok2 := unhex(tok[i+1])
		if !ok1 || !ok2 {
			break
		}
		buf[n] = hi<<4 | lo
		n++
	}
	return nflog.TCPOptions(buf[:n])
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
