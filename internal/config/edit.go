package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/pelletier/go-toml/v2"

	"github.com/moat-sec/moat/internal/policy"
)

const rulesHeader = `# Rules managed by moat: ` + "`moat allow|deny|reject|limit|route|insert|delete`" + ` rewrite this file.
# Hand-written rules belong in moat.toml; they come before these.
`

// RenderRules renders the managed rules file.
func RenderRules(specs []policy.Spec) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(rulesHeader)
	if len(specs) == 0 {
		return b.Bytes(), nil
	}
	b.WriteByte('\n')
	out, err := toml.Marshal(RulesFile{Rules: specs})
	if err != nil {
		return nil, fmt.Errorf("config: render rules: %w", err)
	}
	b.Write(out)
	return b.Bytes(), nil
}

// WriteFile replaces path atomically with data (mode 0644), so that a crash
// never leaves half a policy.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("config: create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("config: write %s: %w", path, err)
	}
	return nil
}

// ReadOptional returns a file's content, or nil if it does not exist.
func ReadOptional(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// SetKey sets table.key to a string value in the TOML file at path, editing
// only the bytes of that value (or adding one line), so that everything else
// the admin wrote, comments included, stays as it was.
func SetKey(path, table, key, value string) error {
	data, err := readFile(path)
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	out, err := setKey(data, table, key, value)
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	return WriteFile(path, out)
}

func setKey(data []byte, table, key, value string) ([]byte, error) {
	loc := newLocator(data)
	quoted := strconv.Quote(value)
	if s, ok := loc.pos[table+"."+key]; ok {
		var b bytes.Buffer
		b.Write(data[:s.Start])
		b.WriteString(quoted)
		b.Write(data[s.End:])
		return b.Bytes(), nil
	}
	line := key + " = " + quoted + "\n"
	if h, ok := loc.tables[table]; ok {
		// Insert after the header line.
		end := bytes.IndexByte(data[h.Start:], '\n')
		if end < 0 {
			return append(append(append([]byte{}, data...), '\n'), line...), nil
		}
		at := h.Start + end + 1
		return append(append(append([]byte{}, data[:at]...), line...), data[at:]...), nil
	}
	out := append([]byte{}, data...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\n')
	}
	return append(out, "\n["+table+"]\n"+line...), nil
}

// Starter is the commented policy `moat init` writes.
const Starter = `# moat policy. Hand-written; moat never rewrites this file except for the
# keys that ` + "`moat default`" + ` sets. Rules added with ` + "`moat allow`" + ` etc. go to
# the managed rules file (rules.toml, next to this one).
# Check it with ` + "`moat check`" + `, see the nftables it compiles to with ` + "`moat show`" + `,
# apply it with ` + "`moat up --confirm 2m`" + ` then ` + "`moat confirm`" + `.

[defaults]
incoming = "deny"    # allow, deny or reject
outgoing = "allow"
routed = "deny"      # forwarded traffic (containers, VMs, routers)

# Named networks that rules can use as "from" or "to".
[networks]
# admins = ["203.0.113.0/24", "2001:db8::/48"]

[guards]
loopback = true        # accept everything on lo
established = true     # accept replies and established connections
invalid = true         # drop packets conntrack calls invalid
bad_tcp_flags = true   # drop NULL, XMAS, SYN+FIN, SYN+RST, FIN+RST, FIN without ACK, new without SYN
icmp = true            # accept the ICMP/ICMPv6 networks need (PMTU, errors, neighbour discovery)
echo_rate = "5/second" # ping replies, host-wide
# syn_flood = "20/second"  # per-source limit on new TCP connections

[logging]
level = "low"             # off, low (default-policy drops), medium (and invalid, bad flags, rate limits, deny rules), high (and accepted connections)
rate = "3/minute"         # kernel log lines per reason
nflog_group = 100         # NFLOG group the moat daemon reads (0: none)
nflog_rate = "100/second"

[limit]
rate = "6/30s"      # default for limit rules: new connections per source
ipv6_prefix = 64    # IPv6 sources are counted per /64

# Hand-written rules, evaluated before the managed ones, in order:
# [[rule]]
# action = "limit"
# app = "ssh"
# from = "admins"
# comment = "SSH from the office"
`
