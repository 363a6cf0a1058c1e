// Package lru is a bounded map that evicts the least recently used entry, for per-source state that attackers control the size of.
package lru
