// Package decide turns findings into ban decisions: one allowlist for every engine, escalating ban times, IPv6 and subnet aggregation, and a ban budget.
package decide
