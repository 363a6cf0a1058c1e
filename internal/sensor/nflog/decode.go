package nflog

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
	"sync"

	"github.com/moat-sec/moat/internal/event"
)

// IP protocol numbers Decode knows.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flags, as in event.Packet.TCPFlags.
const (
	FIN = 0x01
	SYN = 0x02
	RST = 0x04
	PSH = 0x08
	ACK = 0x10
	URG = 0x20
	ECE = 0x40
	CWR = 0x80
)

// Decode errors. Decode returns them unwrapped, so == works; errors.Is too.
var (
	ErrTruncated = errors.New("truncated packet")
	ErrVersion   = errors.New("not an IPv4 or IPv6 packet")
	ErrHeader    = errors.New("malformed header")
	// ErrExtHeaders: more IPv6 extension headers than Decode walks.
	ErrExtHeaders = errors.New("too many IPv6 extension headers")
	// ErrFragment is returned with the network-layer fields filled for a
	// fragment other than the first: it has no transport header, so its
	// ports and flags are unknown (not zero).
	ErrFragment = errors.New("non-first fragment: no transport header")
)

// maxExtHeaders bounds the IPv6 extension header walk. RFC 8200 allows each
// header once (destination options twice); more is an evasion attempt.
const maxExtHeaders = 8

// maxOptions is the most TCP option bytes there can be (data offset 15).
const maxOptions = 40

// Decode reads the network and transport headers of a packet that starts
// at its IPv4 or IPv6 header, as NFLOG delivers it. The payload may be cut
// short (the group's copy range): what is there is decoded, and a header
// that is cut is ErrTruncated.
//
// It never panics, reads only inside payload, and allocates nothing except
// Packet.TCPOptions when the options are not among the common ones
// (interned). The packet returned with ErrFragment has its IP fields set;
// with other errors it is partial and must not be used.
func Decode(payload []byte) (event.Packet, error) {
	var p event.Packet
	if len(payload) == 0 {
		return p, ErrTruncated
	}
	var l4 []byte
	switch payload[0] >> 4 {
	case 4:
		if len(payload) < 20 {
			return p, ErrTruncated
		}
		ihl := int(payload[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(payload[2:4]))
		if ihl < 20 || total < ihl {
			return p, ErrHeader
		}
		if len(payload) < ihl {
			return p, ErrTruncated
		}
		p.Length = uint16(total)
		p.TTL = payload[8]
		p.Proto = payload[9]
		p.Src = netip.AddrFrom4([4]byte(payload[12:16]))
		p.Dst = netip.AddrFrom4([4]byte(payload[16:20]))
		if binary.BigEndian.Uint16(payload[6:8])&0x1fff != 0 {
			return p, ErrFragment
		}
		l4 = payload[ihl:min(len(payload), total)]
	case 6:
		if len(payload) < 40 {
			return p, ErrTruncated
		}
		plen := int(binary.BigEndian.Uint16(payload[4:6]))
		p.Length = uint16(min(40+plen, 0xffff))
		p.TTL = payload[7]
		p.Src = netip.AddrFrom16([16]byte(payload[8:24]))
		p.Dst = netip.AddrFrom16([16]byte(payload[24:40]))
		end := len(payload)
		if plen != 0 { // 0: a jumbogram, or unknown
			end = min(end, 40+plen)
		}
		next, rest, err := walkIPv6(payload[6], payload[40:end])
		p.Proto = next
		if err != nil {
			return p, err
		}
		l4 = rest
	default:
		return p, ErrVersion
	}
	return p, decodeL4(&p, l4)
}

// walkIPv6 skips IPv6 extension headers and returns the upper-layer
// protocol and its bytes.
func walkIPv6(next uint8, b []byte) (uint8, []byte, error) {
	for range maxExtHeaders + 1 {
		var n int
		switch next {
		case 0, 43, 60, 135, 139, 140: // hop-by-hop, routing, destination options, mobility, HIP, shim6
			if len(b) < 8 {
				return next, nil, ErrTruncated
			}
			n = (int(b[1]) + 1) * 8
		case 44: // fragment
			if len(b) < 8 {
				return next, nil, ErrTruncated
			}
			if binary.BigEndian.Uint16(b[2:4])>>3 != 0 {
				return b[0], nil, ErrFragment
			}
			n = 8
		case 51: // authentication header
			if len(b) < 8 {
				return next, nil, ErrTruncated
			}
			n = (int(b[1]) + 2) * 4
		default: // an upper layer, ESP (50) or no next header (59)
			return next, b, nil
		}
		if len(b) < n {
			return next, nil, ErrTruncated
		}
		next, b = b[0], b[n:]
	}
	return next, nil, ErrExtHeaders
}

func decodeL4(p *event.Packet, b []byte) error {
	switch p.Proto {
	case ProtoTCP:
		if len(b) < 20 {
			return ErrTruncated
		}
		off := int(b[12]>>4) * 4
		if off < 20 {
			return ErrHeader
		}
		p.SrcPort = binary.BigEndian.Uint16(b[0:2])
		p.DstPort = binary.BigEndian.Uint16(b[2:4])
		p.TCPFlags = b[13]
		p.Window = binary.BigEndian.Uint16(b[14:16])
		if off > 20 {
			// Options cut by the copy range are read as far as they go.
			p.TCPOptions = TCPOptions(b[20:min(off, len(b))])
		}
	case ProtoUDP:
		if len(b) < 8 {
			return ErrTruncated
		}
		p.SrcPort = binary.BigEndian.Uint16(b[0:2])
		p.DstPort = binary.BigEndian.Uint16(b[2:4])
	case ProtoICMP, ProtoICMPv6:
		if len(b) < 4 {
			return ErrTruncated
		}
		p.ICMPType = b[0]
	}
	return nil
}

// TCPOptions renders TCP option bytes as the kinds in order, p0f-style:
// "M<mss>" maximum segment size, "S" SACK permitted, "T" timestamp, "N"
// no-op, "W<shift>" window scale, "E" end of list (the rest is padding),
// "?<kind>" any other kind. A malformed option (a length that is too short
// or runs past the end) ends the list. At most 40 bytes are read. Linux's
// SYN gives "M1460,S,T,N,W7". The common strings are interned: rendering
// them does not allocate.
func TCPOptions(b []byte) string {
	if len(b) > maxOptions {
		b = b[:maxOptions]
	}
	var buf [4 * maxOptions]byte // the worst case is 20 × "?255,"
	out := buf[:0]
	for i := 0; i < len(b); {
		if len(out) > 0 {
			out = append(out, ',')
		}
		kind := b[i]
		switch kind {
		case 0:
			out = append(out, 'E')
			return intern(out)
		case 1:
			out = append(out, 'N')
			i++
			continue
		}
		if i+1 >= len(b) || b[i+1] < 2 || i+int(b[i+1]) > len(b) {
			out = out[:max(len(out)-1, 0)] // the comma
			break
		}
		l := int(b[i+1])
		switch {
		case kind == 2 && l == 4:
			out = append(out, 'M')
			out = strconv.AppendUint(out, uint64(binary.BigEndian.Uint16(b[i+2:i+4])), 10)
		case kind == 3 && l == 3:
			out = append(out, 'W')
			out = strconv.AppendUint(out, uint64(b[i+2]), 10)
		case kind == 4 && l == 2:
			out = append(out, 'S')
		case kind == 8 && l == 10:
			out = append(out, 'T')
		default:
			out = append(out, '?')
			out = strconv.AppendUint(out, uint64(kind), 10)
		}
		i += l
	}
	return intern(out)
}

var (
	internOnce sync.Once
	internTab  map[string]string
)

// intern returns b as a string, without allocating when it is a common
// option layout. The table is fixed after its first use, so concurrent
// readers need no lock.
func intern(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	internOnce.Do(buildIntern)
	if s, ok := internTab[string(b)]; ok {
		return s
	}
	return string(b)
}

// buildIntern fills the table with the SYN options of common stacks and
// scanners at common MSS values: about 1,900 strings.
func buildIntern() {
	mss := []int{536, 1200, 1220, 1240, 1250, 1260, 1280, 1300, 1320, 1330, 1340, 1350, 1360, 1370, 1380,
		1390, 1400, 1410, 1412, 1414, 1420, 1424, 1430, 1432, 1436, 1440, 1448, 1452, 1456, 1460,
		8960, 8940, 9000, 16344, 65476, 65483, 65495}
	fixed := []string{"M%d", "M%d,S,T", "M%d,N,N,S", "M%d,S", "M%d,N,N,T", "M%d,N,N,T,N,N,S"}
	scaled := []string{
		"M%d,S,T,N,W%d",       // Linux
		"M%d,N,N,S,N,W%d",     // Linux without timestamps
		"M%d,N,W%d",           // old stacks, some scanners
		"M%d,N,W%d,N,N,S",     // Windows
		"M%d,N,W%d,S,T",       // FreeBSD
		"M%d,N,W%d,N,N,T,S,E", // macOS
		"M%d,N,W%d,N,N,T,S",   // macOS, older
		"M%d,N,W%d,N,N,T",     // BSD without SACK
		"M%d,N,N,S,N,W%d,N,N,T",
	}
	internTab = make(map[string]string, len(mss)*(len(fixed)+15*len(scaled))+8)
	add := func(s string) { internTab[s] = s }
	for _, s := range []string{"N", "S", "T", "E", "N,N,T", "W0", "M1460,W10,S,T,E", "W10,N,M1460,S,T"} {
		add(s)
	}
	for _, m := range mss {
		ms := strconv.Itoa(m)
		for _, f := range fixed {
			add(fill(f, ms, ""))
		}
		for w := range 15 {
			ws := strconv.Itoa(w)
			for _, f := range scaled {
				add(fill(f, ms, ws))
			}
		}
	}
}

// fill replaces the first "%d" in f with a and the second with b.
func fill(f, a, b string) string {
	out := make([]byte, 0, len(f)+8)
	n := 0
	for i := 0; i < len(f); i++ {
		if f[i] == '%' && i+1 < len(f) && f[i+1] == 'd' {
			if n == 0 {
				out = append(out, a...)
			} else {
				out = append(out, b...)
			}
			n++
			i++
			continue
		}
		out = append(out, f[i])
	}
	return string(out)
}
