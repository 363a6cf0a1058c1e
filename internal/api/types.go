package api

import (
	"net/netip"
	"time"
)

// Status is the daemon's health: what it reads, what it enforces, and
// whether that is really happening.
type Status struct {
	Healthy  bool           `json:"healthy"`
	Problems []string       `json:"problems,omitempty"`
	Started  time.Time      `json:"started"`
	Config   string         `json:"config"`
	Sources  []SourceStatus `json:"sources"`
	Jails    []JailStatus   `json:"jails"`
	Kernel   KernelStatus   `json:"kernel"`
	Store    StoreStatus    `json:"store"`
	// What psad --Status shows: the most dangerous recent scanners and
	// the ports scanned most.
	TopScanners []Scan      `json:"top_scanners,omitempty"`
	TopPorts    []PortCount `json:"top_ports,omitempty"`
	TrapHits    uint64      `json:"trap_hits"`
	// The UDP trap verifier: datagrams answered with a cookie, and
	// sources that sent it back (and so were banned, unless allowlisted).
	TrapChallenges uint64 `json:"trap_udp_challenges,omitempty"`
	TrapProven     uint64 `json:"trap_udp_proven,omitempty"`
}

// Scan is one scanner as the scan detector sees it.
type Scan struct {
	Src       netip.Addr `json:"src"`
	First     time.Time  `json:"first"`
	Last      time.Time  `json:"last"`
	Packets   int        `json:"packets"`
	Ports     []uint16   `json:"ports"`
	PortCount int        `json:"port_count"`
	Protocols []string   `json:"protocols"`
	Types     []string   `json:"types"`
	Danger    int        `json:"danger"`
	OSGuess   string     `json:"os_guess,omitempty"`
	Action    string     `json:"action"` // "banned", "allowlisted", "over budget", "alert only"
}

// PortCount is how many sources scanned a port.
type PortCount struct {
	Proto   string `json:"proto"`
	Port    uint16 `json:"port"`
	Sources int    `json:"sources"`
}

// SourceStatus is one log source.
type SourceStatus struct {
	ID        string    `json:"id"`
	Following bool      `json:"following"`
	Lines     uint64    `json:"lines"`
	Truncated uint64    `json:"truncated"`
	LastLine  time.Time `json:"last_line,omitzero"`
	Error     string    `json:"error,omitempty"`
}

// JailStatus is one jail's counters.
type JailStatus struct {
	Name        string `json:"name"`
	Filter      string `json:"filter"`
	Lines       uint64 `json:"lines"`
	Matches     uint64 `json:"matches"`
	Refused     uint64 `json:"refused,omitempty"` // forged or untrusted lines refused
	CurrentBans int    `json:"current_bans"`
	TotalBans   uint64 `json:"total_bans"`
}

// KernelStatus says whether the ban sets are in the kernel.
type KernelStatus struct {
	Table   string `json:"table"`
	Present bool   `json:"present"`
	Bans    int    `json:"bans"`
	Repairs uint64 `json:"repairs"` // times the table was put back after another tool removed it
}

// StoreStatus is the database's state.
type StoreStatus struct {
	Path      string `json:"path"`
	Recovered bool   `json:"recovered,omitempty"`
	Reason    string `json:"reason,omitempty"`
	Error     string `json:"error,omitempty"`
}

// Ban is one active ban.
type Ban struct {
	Prefix   netip.Prefix `json:"prefix"`
	Jail     string       `json:"jail"`
	Reason   string       `json:"reason"`
	Created  time.Time    `json:"created"`
	Expires  time.Time    `json:"expires,omitzero"` // zero: permanent
	Offence  int          `json:"offence"`
	Evidence []string     `json:"evidence,omitempty"`
}

// BanRequest asks for a manual ban.
type BanRequest struct {
	Prefix   netip.Prefix  `json:"prefix"`
	Duration time.Duration `json:"duration"` // 0: the default ban time; negative: permanent
	Reason   string        `json:"reason"`
	Force    bool          `json:"force"` // ban even an allowlisted address
}

// AllowEntry is one allowlist entry and why it is there.
type AllowEntry struct {
	Prefix  netip.Prefix `json:"prefix"`
	Why     string       `json:"why"`
	Comment string       `json:"comment,omitempty"`
}

// AllowRequest adds to the runtime allowlist.
type AllowRequest struct {
	Prefix  netip.Prefix `json:"prefix"`
	Comment string       `json:"comment"`
}

// Count answers operations on many items.
type Count struct {
	N int `json:"n"`
}

type errorBody struct {
	Error string `json:"error"`
}
