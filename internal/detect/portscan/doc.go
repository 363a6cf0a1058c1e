// Package portscan classifies the probes a firewall drops into scans, per source, with danger levels and a passive OS guess.
//
// It takes psad's role on moat's own logs: observations with a Packet
// (from package nflog live, or package kmsg for old logs) whose Prefix says
// the firewall dropped, rejected or rate-limited the packet on its way in
// ("moat:in:drop:default ", ":in:reject:", ":in:limit:"; also ufw's
// "[UFW BLOCK] "). Anything else is ignored. The firewall has already
// stopped these packets: a scan seen here failed, and what the detector
// adds is knowing who is looking, how hard, and with what.
//
// # Probes
//
// Each dropped packet is classified by its headers; the TCP flags are read
// without ECE and CWR:
//
//   - SYN alone: a SYN scan. With no options or MSS alone it was crafted on
//     a raw socket: "SYN (nmap -sS)" (also masscan, zmap, hping3, Mirai;
//     nmap picks window 1024, 2048, 3072 or 4096). With SACK-permitted,
//     timestamps or window scaling it came from an OS's connect():
//     "connect (nmap -sT)" (every current stack adds at least one; an
//     embedded stack sending MSS alone is taken for raw).
//   - FIN alone: "FIN (nmap -sF)". No flags: "NULL (nmap -sN)". FIN, PSH
//     and URG: "XMAS (nmap -sX)". ACK alone: "ACK (nmap -sA)" (nmap -sW
//     sends the same). FIN and ACK: "Maimon (nmap -sM)". Other
//     combinations: "TCP odd flags".
//   - UDP: "UDP (nmap -sU)".
//   - ICMP or ICMPv6 echo request to one of our addresses: "ping"; to a
//     second one, or an ICMP timestamp, information or address-mask
//     request (nmap -PP, -PM): "ICMP sweep (nmap -sn)". Other ICMP
//     requests: "ICMP".
//   - Any other protocol: "IP protocol (nmap -sO)".
//
// Packets that a scanner does not send to us, but the victim of someone
// spoofing our address does (backscatter), or that are late replies to
// our own traffic, are not probes and are ignored: TCP with RST, SYN+ACK;
// ICMP errors and echo replies; ICMPv6 errors, echo replies, MLD and
// neighbour discovery; UDP from a common service port (DNS 53, NTP 123,
// SNMP 161, SSDP 1900, memcached 11211, QUIC 443, ...) to a port ≥ 1024 or
// to the same port. Without that rule our own resolver's late answers
// would make it a "UDP scanner" of our ephemeral ports. The price: a UDP
// scan with source port 53 (nmap -g 53) of ports ≥ 1024 goes unseen.
//
// # Danger
//
// A source's danger level, 0 to 5, is the higher of two: the distinct
// (protocol, port) pairs it probed in the last Window against Thresholds
// (default 5, 15, 50, 150, 1500 ports) and the probes it sent in the last
// Window against PacketThresholds (default 20, 100, 500, 2500, 10000).
// Ports are the main signal; packets catch hammering of a few ports and
// ICMP or other portless probes, which count no ports. Scan.Danger is the
// highest level reached during the scan.
//
// A scan is a source's run of probes without a pause of a Window: after
// such a pause its next probe starts a new scan (counts, types, danger
// and the finding start over; Scans lists the previous scan until the new
// one reaches danger 1). Within a scan, each port is remembered
// with the time it was last probed, so the "last Window" counts are a
// sliding window of event time: a port stops counting a Window after its
// last probe (up to Window/16 later: recounts are lazy). Probes come from
// NFLOG or log lines that the firewall rate-limits, so counts are lower
// bounds.
//
// # Passive OS guess
//
// From a SYN with options (none, no guess): the initial TTL (the TTL
// rounded up to 32, 64, 128 or 255), the option layout with values
// dropped, and for MSS alone the window. A small table, a subset of p0f's:
// Linux (TTL 64, "M,S,T,N,W" and its variants without timestamps or
// scaling), Windows (TTL 128, "M,N,W,N,N,S"), macOS/BSD (TTL 64,
// "M,N,W,N,N,T,S,E", "M,N,W,S,T", OpenBSD's), nmap raw (MSS alone with
// window 1024/2048/3072/4096). Anything else: no guess.
//
// # Findings
//
// When a source's danger reaches AutoBlock (0: never), Observe returns one
// finding for the scan: Detector and Jail "portscan", Verified false,
// Reason like "SYN scan (nmap -sS) of 48 ports in 2.1s, danger 3, OS guess
// Linux", Evidence the lines (with their prefix) of the probes that raised
// the scan's level, one per level. Every header field,
// the source address first, can be forged: a scan from a spoofed or
// decoy address (nmap -S, -D) is classified exactly like a real one. The
// detector cannot tell; the decision stage must bound what it does with
// unverified findings (a ban budget, the never-ban set: SECURITY.md R6,
// R7, cases B3-B5), and sources with no route back through the interface
// they came in on are for the firewall's [guards] rp_filter to drop before
// they are logged (B7).
//
// # Bounds
//
// Memory is bounded whatever the sources do (SECURITY.md R11): at most
// MaxTracked sources (LRU: the least recently active is forgotten first;
// idle ones are forgotten after Recent, or after a Window if they never
// reached danger 1), at most MaxKeptPorts ports remembered per source and
// at most 32 × MaxTracked over all sources. Past those, a new port is
// counted but not remembered, so it may be counted again: PortCount and
// the danger may overstate a scan of more than 1024 ports within a
// Window, never understate it. There is no goroutine per source, no timer:
// time comes only from Observation.Time (and, for Scans and Top, from the
// caller's now).
package portscan
