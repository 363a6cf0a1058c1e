package nft

import (
	"errors"
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Conn is a netlink connection to the kernel's nftables in one network
// namespace. Its methods may be called from several goroutines; they run one
// at a time.
type Conn struct {
	mu sync.Mutex // serialises use of nc: queued messages and replies share one socket
	nc *nftables.Conn
}

// Option configures Open.
type Option func(*options)

type options struct {
	netns    int
	hasNetNS bool
}

// WithNetNSFd makes the connection work in the network namespace that fd
// refers to (an open /proc/PID/ns/net or /run/netns/NAME), instead of the
// calling process's. The fd must stay open while the Conn is used.
func WithNetNSFd(fd int) Option {
	return func(o *options) { o.netns, o.hasNetNS = fd, true }
}

// Open connects to nftables in the calling process's network namespace, or
// the one given by WithNetNSFd. The socket is opened once and kept: a socket
// belongs to the namespace it was opened in, whatever thread uses it later.
// Open fails if the process lacks CAP_NET_ADMIN, which nfnetlink requires
// for every request, reads included.
func Open(opts ...Option) (*Conn, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	nopts := []nftables.ConnOption{nftables.AsLasting()}
	if o.hasNetNS {
		nopts = append(nopts, nftables.WithNetNSFd(o.netns))
	}
	nc, err := nftables.New(nopts...)
	if err != nil {
		return nil, fmt.Errorf("nft: open: %w", err)
	}
	if _, err := nc.GetGen(); err != nil {
		_ = nc.CloseLasting()
		return nil, fmt.Errorf("nft: open: %w", err)
	}
	return &Conn{nc: nc}, nil
}

// Close closes the connection. Tables stay in the kernel.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.nc.CloseLasting(); err != nil {
		return fmt.Errorf("nft: close: %w", err)
	}
	return nil
}

// Replace makes the kernel's inet table t.Name exactly t, in one netlink
// transaction: the table is created if missing, deleted with all it holds,
// and built again from t. The kernel commits the whole batch or nothing, so
// after an error the previous table, if any, is still there unchanged, and
// packets never see a half-built table. A table that fails Validate is
// refused before anything is sent; the error wraps ErrInvalid. Errors from
// the kernel wrap its errno (test with errors.Is, e.g. unix.EMLINK for a
// jump loop).
//
// Sets are rebuilt too: elements added by the packet path or by other
// programs since the last Replace are gone.
func (c *Conn) Replace(t *Table) error {
	enc, err := encode(t)
	if err != nil {
		name := ""
		if t != nil {
			name = t.Name
		}
		return fmt.Errorf("nft: replace table %s: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	queue := enc.queueReplace
	if kept, chains, sets, err := c.keptSets(t); err != nil {
		return fmt.Errorf("nft: replace table %s: %w", t.Name, err)
	} else if len(kept) > 0 {
		queue = func(nc *nftables.Conn) error { return enc.queueReplaceKeeping(nc, kept, chains, sets) }
	}
	if err := queue(c.nc); err != nil {
		// A failed queue call records its error in the library's
		// connection, so this flush discards the batch without sending it.
		_ = c.nc.Flush()
		return fmt.Errorf("nft: replace table %s: %w", t.Name, err)
	}
	if err := c.nc.Flush(); err != nil {
		return fmt.Errorf("nft: replace table %s: %w", t.Name, err)
	}
	return nil
}

// keptSets returns the sets of t marked Keep that the live table already
// has with the same shape, and the live table's chains and sets; nothing
// when the table does not exist.
func (c *Conn) keptSets(t *Table) (map[string]bool, []*nftables.Chain, []*nftables.Set, error) {
	want := map[string]*Set{}
	for _, s := range t.Sets {
		if s.Keep {
			want[s.Name] = s
		}
	}
	if len(want) == 0 {
		return nil, nil, nil, nil
	}
	ok, err := c.exists(t.Name)
	if err != nil || !ok {
		return nil, nil, nil, err
	}
	nt := &nftables.Table{Name: t.Name, Family: nftables.TableFamilyINet}
	sets, err := c.nc.GetSets(nt)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list sets: %w", err)
	}
	kept := map[string]bool{}
	for _, live := range sets {
		s, ok := want[live.Name]
		if !ok {
			continue
		}
		v6 := s.Type == KeyIPv6
		sameKey := (s.Type == KeyIPv4 && live.KeyType.Name == nftables.TypeIPAddr.Name) ||
			(v6 && live.KeyType.Name == nftables.TypeIP6Addr.Name)
		if sameKey && live.Interval == s.Interval && live.HasTimeout == (s.Timeout > 0 || s.Timeouts) && live.Dynamic == s.Dynamic {
			kept[live.Name] = true
		}
	}
	if len(kept) == 0 {
		return nil, nil, nil, nil
	}
	all, err := c.nc.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("list chains: %w", err)
	}
	var chains []*nftables.Chain
	for _, ch := range all {
		if ch.Table.Name == t.Name {
			chains = append(chains, ch)
		}
	}
	return kept, chains, sets, nil
}

// Delete removes the inet table name and everything in it. A missing table
// is not an error.
func (c *Conn) Delete(name string) error {
	if err := checkName("table", name); err != nil {
		return fmt.Errorf("nft: delete table %s: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Creating the table first makes the delete succeed when it is
	// missing, on kernels without NFT_MSG_DESTROYTABLE (before 6.3) too.
	t := &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
	c.nc.AddTable(t)
	c.nc.DelTable(t)
	if err := c.nc.Flush(); err != nil {
		return fmt.Errorf("nft: delete table %s: %w", name, err)
	}
	return nil
}

// Exists reports whether the inet table name exists.
func (c *Conn) Exists(name string) (bool, error) {
	if err := checkName("table", name); err != nil {
		return false, fmt.Errorf("nft: table %s exists: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exists(name)
}

func (c *Conn) exists(name string) (bool, error) {
	_, err := c.nc.ListTableOfFamily(name, nftables.TableFamilyINet)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.ENOENT):
		return false, nil
	}
	return false, fmt.Errorf("nft: table %s exists: %w", name, err)
}

// LiveRule is a rule as the kernel has it now.
type LiveRule struct {
	Chain   string
	Handle  uint64
	Comment string // the rule's comment: moat's key back to the policy rule
	// Packets and Bytes are from the rule's first counter; zero without one.
	Packets, Bytes uint64
}

// maxReadTries bounds how often Rules starts over when the ruleset changes
// while it reads.
const maxReadTries = 3

// Rules lists the rules of the inet table, chain by chain in the kernel's
// order of chains, each chain's rules in evaluation order. The listing is
// consistent: if the ruleset changes while it is read (the kernel's
// generation ID moves), Rules reads again. A missing table is an error
// wrapping unix.ENOENT.
func (c *Conn) Rules(table string) ([]LiveRule, error) {
	if err := checkName("table", table); err != nil {
		return nil, fmt.Errorf("nft: rules of table %s: %w", table, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for try := 1; ; try++ {
		before, err := c.nc.GetGen()
		if err != nil {
			return nil, fmt.Errorf("nft: rules of table %s: %w", table, err)
		}
		rules, err := c.rules(table)
		after, gerr := c.nc.GetGen()
		if gerr != nil {
			return nil, fmt.Errorf("nft: rules of table %s: %w", table, gerr)
		}
		if before.ID == after.ID || try == maxReadTries {
			if err == nil && before.ID != after.ID {
				err = errors.New("ruleset kept changing while read")
			}
			if err != nil {
				return nil, fmt.Errorf("nft: rules of table %s: %w", table, err)
			}
			return rules, nil
		}
	}
}

func (c *Conn) rules(table string) ([]LiveRule, error) {
	t, err := c.nc.ListTableOfFamily(table, nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	chains, err := c.nc.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, err
	}
	var out []LiveRule
	for _, ch := range chains {
		if ch.Table == nil || ch.Table.Name != table {
			continue
		}
		rs, err := c.nc.GetRules(t, ch)
		if err != nil {
			return nil, fmt.Errorf("chain %s: %w", ch.Name, err)
		}
		for _, r := range rs {
			lr := LiveRule{Chain: ch.Name, Handle: r.Handle, Comment: ruleComment(r.UserData)}
			for _, x := range r.Exprs {
				if ctr, ok := x.(*expr.Counter); ok {
					lr.Packets, lr.Bytes = ctr.Packets, ctr.Bytes
					break
				}
			}
			out = append(out, lr)
		}
	}
	return out, nil
}

// ruleComment returns the comment in a rule's user data: a sequence of
// type, length, value records, the comment being type 0 with a NUL-terminated
// string. Rules written by other tools may carry other records, or none.
func ruleComment(ud []byte) string {
	// userdata.Get trusts the lengths it reads; check them first.
	for b := ud; len(b) > 0; {
		if len(b) < 2 || len(b) < 2+int(b[1]) {
			return ""
		}
		b = b[2+int(b[1]):]
	}
	s, _ := userdata.GetString(ud, userdata.TypeComment)
	return s
}
