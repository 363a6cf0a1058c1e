// Package nflog reads the packets moat's firewall logs to an NFLOG group and decodes their headers into observations.
//
// The firewall logs the packets it drops, rejects or rate-limits with
// nftables' "log group N prefix ..." statement; the kernel hands them to the
// netlink socket bound to that group, starting at the network header. A
// Source binds the group, decodes each packet's IPv4/IPv6 and TCP/UDP/ICMP
// headers with Decode (bounded, allocation-free) and sends one
// event.Observation per packet. Every field of a packet can be forged by
// whoever sent it: observations from here are evidence for alerts and
// budgeted short blocks, never for bans on their own (SECURITY.md R6).
//
// Under a flood (a port scan is one) the socket's buffer can overflow and
// the kernel then drops whole batches. A Source asks for a large receive
// buffer, sets NETLINK_NO_ENOBUFS so that an overflow never stops it, and
// counts what was lost from the gaps in the group's sequence numbers
// (Stats.Dropped).
package nflog
