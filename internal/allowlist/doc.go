// Package allowlist decides which addresses moat must never ban: configured networks, the host's own addresses, and the peers an admin depends on.
package allowlist
