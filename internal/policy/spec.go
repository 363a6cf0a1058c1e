package policy

// Spec is a rule as the admin writes it, before names are resolved: a
// [[rule]] table in a policy file, or the words after `moat allow`. Empty
// strings mean "any" (or "in" for Direction).
type Spec struct {
	Action    string `toml:"action" json:"action"`
	Direction string `toml:"direction,omitempty" json:"direction,omitempty"`
	InIface   string `toml:"in_on,omitempty" json:"in_on,omitempty"`
	OutIface  string `toml:"out_on,omitempty" json:"out_on,omitempty"`
	Proto     string `toml:"proto,omitempty" json:"proto,omitempty"`
	From      string `toml:"from,omitempty" json:"from,omitempty"`
	FromPort  string `toml:"from_port,omitempty" json:"from_port,omitempty"`
	To        string `toml:"to,omitempty" json:"to,omitempty"`
	Port      string `toml:"port,omitempty" json:"port,omitempty"`
	App       string `toml:"app,omitempty" json:"app,omitempty"`
	Rate      string `toml:"rate,omitempty" json:"rate,omitempty"`
	ConnLimit uint32 `toml:"conn_limit,omitempty" json:"conn_limit,omitempty"`
	Log       bool   `toml:"log,omitempty" json:"log,omitempty"`
	Comment   string `toml:"comment,omitempty" json:"comment,omitempty"`
}
