// Package authfail turns failure lines in daemons' logs into findings: filters that extract the offender's address, and jails that count failures in a window.
//
// A Filter is a list of fail2ban-style failregex patterns in which <HOST>
// marks the offender's address. Patterns are Go regexps (RE2: linear time,
// no lookaround, no backreferences), matched against the message that
// follows a common prefix (usually the syslog header). <HOST> only ever
// matches a numeric IPv4 or IPv6 address, which is parsed by hand with the
// rules of net/netip: leading-zero octets are refused, ::ffff:a.b.c.d is
// unmapped and zones are stripped. Host names are never resolved: a line
// whose host is a DNS name yields no address.
//
// Patterns are linted when they load (SECURITY.md R1): see Compile.
//
// Some daemons spread one failure over several lines (sshd's "Connection
// from", a failure line without an address, the disconnect with one). A
// Session follows such connections by their syslog tag (host, daemon and
// pid) in bounded memory; a Jail uses one. Filter.Match looks at one line
// alone and reports only lines that are failures by themselves.
//
// A Jail counts failures per source (IPv4 address, or IPv6 prefix of
// IPv6Prefix bits) in a sliding window of event time and returns a finding
// when a source reaches MaxRetry. Its state is bounded by an LRU and window
// expiry; it starts no goroutines and reads time only from observations.
package authfail
