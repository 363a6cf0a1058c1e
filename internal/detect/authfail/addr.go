package authfail

import "net/netip"

// hostGroup is the capture group name <HOST> expands to.
const hostGroup = "host"

// hostRE is what <HOST> expands to: a numeric IPv4 address or an IPv6
// address (with an optional embedded IPv4 tail and zone), optionally in
// brackets. The IPv4 tail is tried before a hex field so that an
// unconstrained match of ::ffff:1.2.3.4 does not stop at ::ffff:1. It is deliberately a little wider than the address grammar;
// parseAddr decides. It never matches a host name: a name needs letters
// beyond a-f outside an IPv6 shape, and an IPv6 shape needs two colons.
const hostRE = `\[?(?P<` + hostGroup + `>` +
	`\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}` +
	`|(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]{1,4})?(?:%[0-9A-Za-z_.\-]{1,32})?` +
	`)\]?`

// parseAddr parses a numeric address the way net/netip does, without
// allocating: IPv4 in dotted-decimal with no leading zeros (192.030.0.6 is
// not an address; glibc would read it as octal), IPv6 in any RFC 4291 form.
// A zone (fe80::1%eth0) is stripped and an IPv4-mapped IPv6 address is
// unmapped, so the same client always has the same key.
func parseAddr(b []byte) (netip.Addr, bool) {
	if len(b) >= 2 && b[0] == '[' && b[len(b)-1] == ']' {
		b = b[1 : len(b)-1]
	}
	colon := false
	for i, c := range b {
		if c == ':' {
			colon = true
		}
		if c == '%' {
			if !colon {
				return netip.Addr{}, false
			}
			b = b[:i]
			break
		}
	}
	if !colon {
		v4, ok := parseV4(b)
		if !ok {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4(v4), true
	}
	v6, ok := parseV6(b)
	if !ok {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(v6).Unmap(), true
}

func parseV4(b []byte) ([4]byte, bool) {
	var out [4]byte
	field, digits, val := 0, 0, 0
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c >= '0' && c <= '9':
			if digits == 1 && val == 0 {
				return out, false // leading zero
			}
			val = val*10 + int(c-'0')
			digits++
			if val > 255 {
				return out, false
			}
		case c == '.':
			if digits == 0 || field == 3 {
				return out, false
			}
			out[field] = byte(val)
			field++
			digits, val = 0, 0
		default:
			return out, false
		}
	}
	if field != 3 || digits == 0 {
		return out, false
	}
	out[3] = byte(val)
	return out, true
}

func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func parseV6(s []byte) ([16]byte, bool) {
	var ip [16]byte
	ellipsis := -1
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis = 0
		s = s[2:]
		if len(s) == 0 {
			return ip, true
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, 0
		for off < len(s) {
			v := hexVal(s[off])
			if v < 0 {
				break
			}
			if off > 3 {
				return ip, false
			}
			acc = acc<<4 + v
			off++
		}
		if off == 0 {
			return ip, false
		}
		if off < len(s) && s[off] == '.' {
			if ellipsis < 0 && i != 12 || i+4 > 16 {
				return ip, false
			}
			v4, ok := parseV4(s)
			if !ok {
				return ip, false
			}
			copy(ip[i:], v4[:])
			i += 4
			s = nil
			break
		}
		ip[i], ip[i+1] = byte(acc>>8), byte(acc)
		i += 2
		s = s[off:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' {
			return ip, false
		}
		s = s[1:]
		if len(s) == 0 {
			return ip, false
		}
		if s[0] == ':' {
			if ellipsis >= 0 {
				return ip, false
			}
			ellipsis = i
			s = s[1:]
			if len(s) == 0 {
				break
			}
		}
	}
	if len(s) != 0 {
		return ip, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return ip, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		for j := ellipsis + n - 1; j >= ellipsis; j-- {
			ip[j] = 0
		}
	} else if ellipsis >= 0 {
		return ip, false
	}
	return ip, true
}

// keyFor is the counting key of a: the address itself for IPv4, its
// prefix of v6bits bits for IPv6.
func keyFor(a netip.Addr, v6bits int) netip.Prefix {
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(v6bits)
	return p
}
