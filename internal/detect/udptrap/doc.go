// Package udptrap proves that the source of a datagram to a UDP trap port is real: it answers with a cookie that only the real source can send back.
//
// A datagram's source address can be forged, so a UDP trap alone never
// bans (Artillery banned the source of any datagram, so one forged
// datagram locked out whoever its sender chose). A Verifier answers a
// datagram from S with a random 16-byte cookie, kept for S for a short
// time (CookieTTL). Only a host that receives packets sent to S can learn
// it; when a later datagram from S carries it, S has proven that it is the
// real sender, and the caller reports a verified finding. Guessing a
// cookie means guessing 128 random bits.
//
// The replies cannot be turned against anyone:
//
//   - A reply is never larger than the datagram that provoked it: it is the
//     cookie alone, and a datagram shorter than the cookie gets no reply at
//     all. (A truncated cookie would either be useless, since the proof
//     needs all of it, or, if a proof could be shorter, guessable.) Forged
//     datagrams therefore never amplify.
//   - Replies are rate-limited per source (one per SourceEvery) and
//     overall (GlobalRate a second), and a new cookie is made only for a
//     reply, so a flood of forged sources churns the table no faster than
//     the global rate.
//   - No reply goes to a source port below 1024, where the services that
//     reflect (echo, chargen, DNS, NTP, SNMP) listen, nor to a source port
//     equal to the trap port, where another honeypot would answer us back.
//   - A datagram that carries the cookie never gets a reply; one that is
//     the cookie and nothing else is what an echo service returns, and
//     proves nothing: the proof must carry something besides the cookie.
//
// What remains: a service at S that returns arbitrary input inside its
// answer, on a port at or above 1024, could be made to prove S. Protected
// addresses (the allowlist: own addresses, gateways, resolvers, configured
// networks) are never banned whatever the proof.
//
// The per-source table is an LRU bounded by Sources; an evicted source
// simply has no cookie any more (its proof fails, it is not banned). The
// Verifier reads time only from its callers and is safe for concurrent use.
package udptrap
