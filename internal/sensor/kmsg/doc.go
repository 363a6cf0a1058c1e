// Package kmsg reads netfilter log lines from the kernel log (files, for forensics on old logs) into packet observations.
//
// The kernel's LOG target (iptables) and nftables' "log" statement without
// a group write one line per packet: the prefix the rule set, then fields
// such as "IN=eth0 OUT= SRC=203.0.113.66 DST=198.51.100.1 ... PROTO=TCP
// SPT=53321 DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0". Parse reads such a
// line, as found in /var/log/kern.log, /var/log/ufw.log, dmesg or
// journalctl -k, into the event.Packet that NFLOG would have given, so
// that `moat scans --from-log FILE` can run the scan detector over old logs
// (psad's forensic mode).
//
// Lines in files can be forged by anyone who can write to the log (a local
// `logger` call writes a "kernel:" line to syslog), and every packet field
// can be forged by the packet's sender: what Parse returns is evidence for
// an alert, never for a ban.
package kmsg
