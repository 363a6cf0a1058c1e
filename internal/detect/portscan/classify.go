package portscan

import (
	"github.com/moat-sec/moat/internal/event"
)

// Protocol numbers and TCP flags (as in event.Packet).
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58

	fin = 0x01
	syn = 0x02
	rst = 0x04
	psh = 0x08
	ack = 0x10
	urg = 0x20
)

// kind is what a probe looks like; each is one bit of source.types.
type kind uint8

const (
	kindSYN     kind = iota // raw SYN, half-open
	kindConnect             // SYN from an OS stack's connect()
	kindFIN
	kindNULL
	kindXMAS
	kindACK
	kindMaimon
	kindUDP
	kindSweep // ICMP echo to several of our addresses, or timestamp/address-mask requests
	kindPing  // ICMP echo to one address
	kindICMP  // other ICMP requests
	kindOddTCP
	kindProto // a protocol without ports (nmap -sO)
	numKinds
)

// Type labels, as Scan.Types lists them, and the names Reason uses.
var (
	kindLabels = [numKinds]string{
		"SYN (nmap -sS)", "connect (nmap -sT)", "FIN (nmap -sF)", "NULL (nmap -sN)", "XMAS (nmap -sX)",
		"ACK (nmap -sA)", "Maimon (nmap -sM)", "UDP (nmap -sU)", "ICMP sweep (nmap -sn)", "ping", "ICMP",
		"TCP odd flags", "IP protocol (nmap -sO)",
	}
	kindReasons = [numKinds]string{
		"SYN scan (nmap -sS)", "connect scan (nmap -sT)", "FIN scan (nmap -sF)", "NULL scan (nmap -sN)",
		"XMAS scan (nmap -sX)", "ACK scan (nmap -sA)", "Maimon scan (nmap -sM)", "UDP scan (nmap -sU)",
		"ICMP sweep (nmap -sn)", "pings", "ICMP probes", "TCP probes with odd flags", "IP protocol scan (nmap -sO)",
	}
)

// replyPorts are UDP source ports of services whose replies reach us late
// (after conntrack forgot the flow) or as backscatter of someone spoofing
// us: a datagram from one of them to an ephemeral port, or to the same
// port, is a reply, not a probe. Otherwise our own DNS resolver would
// look like a UDP scanner.
var replyPorts = map[uint16]bool{
	17: true, 19: true, 53: true, 67: true, 68: true, 123: true, 137: true, 161: true, 389: true,
	443: true, 500: true, 1900: true, 3478: true, 3702: true, 4500: true, 5353: true, 11211: true,
}

// classify says what kind of probe p is. ok is false for packets that are
// not probes: replies and backscatter (RST, SYN/ACK, ICMP errors and echo
// replies, UDP from service ports), which a scanner does not send to us
// but a victim of someone spoofing our address does.
func classify(p *event.Packet) (k kind, ok bool) {
	switch p.Proto {
	case protoTCP:
		switch f := p.TCPFlags & (fin | syn | rst | psh | ack | urg); {
		case f&rst != 0, f == syn|ack:
			return 0, false
		case f == syn:
			if rawSYN(p.TCPOptions) {
				return kindSYN, true
			}
			return kindConnect, true
		case f == fin:
			return kindFIN, true
		case f == 0:
			return kindNULL, true
		case f == fin|psh|urg:
			return kindXMAS, true
		case f == ack:
			return kindACK, true
		case f == fin|ack:
			return kindMaimon, true
		default:
			return kindOddTCP, true
		}
	case protoUDP:
		if replyPorts[p.SrcPort] && (p.DstPort >= 1024 || p.DstPort == p.SrcPort) {
			return 0, false
		}
		return kindUDP, true
	case protoICMP:
		switch p.ICMPType {
		case 8:
			return kindPing, true
		case 13, 15, 17: // timestamp, information, address mask requests: nmap -PP, -PM
			return kindSweep, true
		case 0, 3, 4, 5, 11, 12, 14, 16, 18: // replies and errors
			return 0, false
		}
		return kindICMP, true
	case protoICMPv6:
		switch {
		case p.ICMPType == 128:
			return kindPing, true
		case p.ICMPType < 128, p.ICMPType == 129: // errors, echo replies
			return 0, false
		case p.ICMPType >= 130 && p.ICMPType <= 137, p.ICMPType == 143: // MLD, neighbour discovery
			return 0, false
		}
		return kindICMP, true
	}
	return kindProto, true
}

// rawSYN reports whether a SYN's options are those of a packet crafted on
// a raw socket (nmap -sS, masscan, zmap, hping3, Mirai): none, or MSS
// alone. Every current OS stack's connect() adds SACK-permitted, window
// scaling or timestamps (Linux "M*,S,T,N,W*", Windows "M*,N,W*,N,N,S",
// macOS "M*,N,W*,N,N,T,S,E"). Small embedded stacks (lwIP) that send MSS
// alone look raw too.
func rawSYN(opts string) bool {
	for i := 0; i < len(opts); i++ {
		switch opts[i] {
		case 'S', 'T', 'W', '?':
			return false
		}
	}
	return true
}

// OS guesses, by index (source.os); 0 is none.
var osNames = [...]string{"", "Linux", "Windows", "macOS/BSD", "nmap raw"}

const (
	osNone = iota
	osLinux
	osWindows
	osBSD
	osNmap
)

// osTable maps a SYN's option layout (values dropped) and initial TTL to an
// OS: a small subset of p0f's signatures, enough to tell the common stacks
// from each other and from nmap.
var osTable = map[string]map[uint8]uint8{
	"M,S,T,N,W":         {64: osLinux},
	"M,N,N,S,N,W":       {64: osLinux}, // timestamps off
	"M,S,T":             {64: osLinux}, // window scaling off
	"M,N,N,S":           {64: osLinux},
	"M,N,W,N,N,S":       {128: osWindows},
	"M,N,W,S,T":         {64: osBSD, 128: osWindows},
	"M,N,W,N,N,T,S,E":   {64: osBSD}, // macOS, iOS
	"M,N,W,N,N,T,S":     {64: osBSD},
	"M,N,W,N,N,T":       {64: osBSD},
	"M,N,N,S,N,W,N,N,T": {64: osBSD}, // OpenBSD
}

// osGuess guesses the sender's OS from a SYN: its initial TTL (the TTL
// rounded up to 32, 64, 128 or 255), the option layout and, for nmap's raw
// SYN (MSS alone), the window nmap picks (1024, 2048, 3072 or 4096). No
// options, no guess. Like all of the packet, this can be forged.
func osGuess(p *event.Packet) uint8 {
	if p.TCPOptions == "" {
		return osNone
	}
	var buf [160]byte
	layout := buf[:0]
	for i := 0; i < len(p.TCPOptions) && len(layout) < len(buf); i++ {
		if c := p.TCPOptions[i]; c < '0' || c > '9' {
			layout = append(layout, c)
		}
	}
	if string(layout) == "M" {
		switch p.Window {
		case 1024, 2048, 3072, 4096:
			return osNmap
		}
		return osNone
	}
	return osTable[string(layout)][initialTTL(p.TTL)]
}

func initialTTL(ttl uint8) uint8 {
	switch {
	case ttl <= 32:
		return 32
	case ttl <= 64:
		return 64
	case ttl <= 128:
		return 128
	}
	return 255
}
