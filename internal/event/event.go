package event

import (
	"net/netip"
	"time"
)

// Observation is one thing a sensor saw. Today a log line; the scan
// detector's NFLOG packets and honeypot touches will be observations too.
// Everything in Line is attacker-controlled.
type Observation struct {
	Source    string    // the sensor, e.g. "file:/var/log/auth.log" or "journal:ssh.service"
	Time      time.Time // when it happened: the log's own timestamp if trusted, else receive time
	Line      string    // the log line, without its newline, cut at the source's line limit
	Truncated bool      // Line was cut

	// Trusted metadata, from journald's fields that unprivileged processes
	// cannot forge; zero values when the source cannot tell (files).
	Trusted bool   // the fields below were filled by journald
	Unit    string // _SYSTEMD_UNIT
	Comm    string // _COMM
	UID     int    // _UID
	PID     int    // _PID

	// Packet is set for packet observations (NFLOG, kernel log lines):
	// the firewall logged the packet with Prefix (e.g. "moat:in:drop:default ").
	Packet *Packet
	Prefix string
}

// Packet is the header fields of one logged packet. All of it can be
// forged by whoever sent the packet: never ban on it alone.
type Packet struct {
	Src, Dst         netip.Addr
	Proto            uint8 // 6 tcp, 17 udp, 1 icmp, 58 icmpv6
	SrcPort, DstPort uint16
	TCPFlags         uint8 // FIN 0x01 SYN 0x02 RST 0x04 PSH 0x08 ACK 0x10 URG 0x20 ECE 0x40 CWR 0x80
	ICMPType         uint8
	TTL              uint8  // or IPv6 hop limit
	Window           uint16 // TCP window
	Length           uint16 // IP total length
	// TCPOptions is the TCP options' kinds in order, with the MSS and
	// window scale values (for passive OS fingerprinting), e.g.
	// "M1460,S,T,N,W7"; empty without options.
	TCPOptions string
}

// Finding is a detector's conclusion that an address misbehaved.
type Finding struct {
	Time     time.Time
	Addr     netip.Addr // the offender: a numeric address the daemon wrote, never a name
	Detector string     // "jail", "manual", later "portscan", "honeypot", "ids"
	Jail     string     // the jail (or detector instance) whose policy applies
	Reason   string     // human summary, e.g. "5 failures in 10m0s"
	Evidence []string   // the lines that led to it (bounded)
	// Verified is true when the evidence needed a return path (a log line
	// written after a handshake, a completed TCP connection). Packet-level
	// evidence that can be spoofed is not verified.
	Verified bool
}

// Op is what a decision does.
type Op int

const (
	Ban Op = iota
	Unban
)

func (o Op) String() string {
	if o == Unban {
		return "unban"
	}
	return "ban"
}

// Decision is an order for the enforcer and the store.
type Decision struct {
	Op       Op
	Prefix   netip.Prefix  // a single address (/32, /128) or an aggregate (/64, /24 ...)
	Duration time.Duration // 0 with Op Ban: permanent
	Expires  time.Time     // zero when permanent
	Time     time.Time     // when decided
	Jail     string
	Detector string
	Reason   string
	Evidence []string
	Offence  int // how many times this prefix has been banned, this one included
}

// Permanent reports whether the ban never expires.
func (d Decision) Permanent() bool { return d.Op == Ban && d.Duration == 0 }
