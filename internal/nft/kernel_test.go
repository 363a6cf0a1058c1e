package nft

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/moat-sec/moat/internal/nettest"
)

// Kernel tests run against the real nftables, each in a network namespace
// of its own: the test binary re-runs itself for that one test in a child
// process cloned into a new namespace (CLONE_NEWNET), so nothing, not even a
// bug in Conn, can reach the host's ruleset. They need root; under CI=true
// a missing root or nft fails them instead of skipping.

// inNetNS runs the test in a fresh network namespace (see nettest.InChild).
func inNetNS(t *testing.T) bool { return nettest.InChild(t) }

// run runs a command in the test's namespace and returns its stdout.
func run(t *testing.T, stdin string, name string, args ...string) string {
	return nettest.Output(t, stdin, name, args...)
}

// listing is what nft shows of a table: the stateless listing, and the
// netlink expressions of every rule and the elements of every set.
type listing struct{ text, netlink string }

func list(t *testing.T, table string) listing {
	t.Helper()
	return listing{
		text:    run(t, "", "nft", "-s", "list", "table", "inet", table),
		netlink: normaliseNetlink(run(t, "", "nft", "--debug=netlink", "list", "table", "inet", table)),
	}
}

// normaliseNetlink sorts each set's elements, which the kernel lists in hash
// order, and drops the text listing that follows the netlink dump.
func normaliseNetlink(s string) string {
	if i := strings.Index(s, "\ntable inet "); i >= 0 {
		s = s[:i+1]
	}
	lines := strings.Split(s, "\n")
	for i := 0; i < len(lines); {
		j := i
		for j < len(lines) && strings.HasPrefix(lines[j], "\telement ") {
			j++
		}
		slices.Sort(lines[i:j])
		i = max(j, i+1)
	}
	return strings.Join(lines, "\n")
}

// nftListing loads t.Text() with nft in a fresh namespace and lists it.
func nftListing(t *testing.T, tbl *Table) listing {
	t.Helper()
	script := fmt.Sprintf(`nft -f - && nft -s list table inet %[1]s && echo %[2]s && nft --debug=netlink list table inet %[1]s`, tbl.Name, "=====")
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdin = strings.NewReader(tbl.Text())
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nft -f of Text(): %v\n%s", err, stderr.String())
	}
	text, nl, _ := strings.Cut(string(out), "=====\n")
	return listing{text: text, netlink: normaliseNetlink(nl)}
}

func openConn(t *testing.T) *Conn {
	t.Helper()
	c, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

func compare(t *testing.T, what string, got, want listing) {
	t.Helper()
	if diff := cmp.Diff(want.text, got.text); diff != "" {
		t.Errorf("%s: nft -s list differs (-nft -f +Replace):\n%s", what, diff)
	}
	if diff := cmp.Diff(want.netlink, got.netlink); diff != "" {
		t.Errorf("%s: netlink expressions differ (-nft -f +Replace):\n%s", what, diff)
	}
}

// TestKernelMatchesText proves the netlink encoding is the one nft makes
// from the text: the same table applied both ways lists the same, down to
// each rule's expressions and handle.
func TestKernelMatchesText(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	c := openConn(t)
	for _, tbl := range []*Table{allTable(), bigTable(200, 500)} {
		if err := c.Replace(tbl); err != nil {
			t.Fatal(err)
		}
		compare(t, tbl.Name, list(t, tbl.Name), nftListing(t, tbl))
	}
}

func otherTable(t *testing.T) string {
	t.Helper()
	run(t, "table inet other {\n\tset s { type ipv4_addr; elements = { 192.0.2.9 } }\n\tchain c {\n\t\ttype filter hook input priority 5; policy accept;\n\t\tcounter accept\n\t}\n}\n", "nft", "-f", "-")
	return run(t, "", "nft", "-a", "list", "table", "inet", "other")
}

func smallTable(name string) *Table {
	return &Table{Name: name,
		Sets: []*Set{{Name: "ban", Type: KeyIPv4, Prefixes: pfx("192.0.2.1/32")}},
		Chains: []*Chain{
			{Name: "in", Hook: HookInput, Policy: VerdictAccept, Rules: []*Rule{
				rule("one", &Addr{Dir: Src, Set: "ban"}, &Counter{}, drop),
				rule("two", &Verdict{Kind: VerdictJump, Chain: "j"}),
			}},
			{Name: "j", Rules: []*Rule{rule("three", &Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{22, 22}}}, accept)}},
		}}
}

// TestReplaceReplaces checks that a second Replace leaves nothing of the
// first, and that other tables are untouched.
func TestReplaceReplaces(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	other := otherTable(t)
	c := openConn(t)
	first := allTable()
	first.Name = "moat"
	if err := c.Replace(first); err != nil {
		t.Fatal(err)
	}
	second := smallTable("moat")
	if err := c.Replace(second); err != nil {
		t.Fatal(err)
	}
	compare(t, "second table", list(t, "moat"), nftListing(t, second))
	if got := run(t, "", "nft", "-a", "list", "table", "inet", "other"); got != other {
		t.Errorf("table other changed:\nbefore:\n%s\nafter:\n%s", other, got)
	}
	tables := run(t, "", "nft", "list", "tables")
	if want := "table inet other\ntable inet moat\n"; tables != want {
		t.Errorf("tables:\n%s\nwant:\n%s", tables, want)
	}
}

// TestReplaceFailureKeepsOld checks that a Replace the kernel refuses, or that
// fails validation, leaves the whole ruleset as it was, handles included.
func TestReplaceFailureKeepsOld(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	otherTable(t)
	c := openConn(t)
	if err := c.Replace(allTable()); err != nil {
		t.Fatal(err)
	}
	before := run(t, "", "nft", "-a", "-s", "list", "ruleset")

	loop := smallTable("moat_all")
	loop.Chains[1].Rules = append(loop.Chains[1].Rules, rule("", &Verdict{Kind: VerdictJump, Chain: "k"}))
	loop.Chains = append(loop.Chains, &Chain{Name: "k", Rules: []*Rule{rule("", &Verdict{Kind: VerdictJump, Chain: "j"})}})
	full := smallTable("moat_all")
	full.Sets[0].Size = 1
	full.Sets[0].Prefixes = pfx("192.0.2.1/32", "192.0.2.2/32")
	missing := smallTable("moat_all")
	missing.Chains[0].Rules[1].Exprs[0] = &Verdict{Kind: VerdictJump, Chain: "nowhere"}

	for _, tc := range []struct {
		name  string
		tbl   *Table
		errno error
	}{
		{"jump loop", loop, unix.EMLINK},
		{"set over its size", full, unix.ENFILE},
		{"jump to a missing chain", missing, ErrInvalid},
	} {
		err := c.Replace(tc.tbl)
		t.Logf("%s: %v", tc.name, err)
		if !errors.Is(err, tc.errno) {
			t.Errorf("%s: Replace returned %v, want %v", tc.name, err, tc.errno)
		}
		if after := run(t, "", "nft", "-a", "-s", "list", "ruleset"); after != before {
			t.Errorf("%s: ruleset changed:\n%s", tc.name, cmp.Diff(before, after))
		}
	}
	// The connection is usable after a failed batch.
	if err := c.Replace(smallTable("moat_all")); err != nil {
		t.Fatal(err)
	}
}

// setLinkUp sets the interface up, as `ip link set NAME up` does.
func setLinkUp(t *testing.T, name string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatal(err)
	}
}

func sendUDP(t *testing.T, n int) {
	t.Helper()
	// An unconnected socket: the icmp port unreachable that answers each
	// datagram (nothing listens on port 9) does not fail the next write.
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	for range n {
		if _, err := conn.WriteTo([]byte("moat"), to); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRules checks that Rules reports each rule with its comment and
// counter, in order, and that the counters move with traffic.
func TestRules(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	setLinkUp(t, "lo")
	c := openConn(t)
	tbl := &Table{Name: "moat", Chains: []*Chain{
		{Name: "output", Hook: HookOutput, Policy: VerdictAccept, Rules: []*Rule{
			rule("x", &IfName{Name: "lo"}, &Port{Dir: Dst, Proto: ProtoUDP, Ranges: []PortRange{{9, 9}}}, &Counter{}, accept),
			rule("no counter", &IfName{Name: "lo"}, accept),
		}},
		{Name: "sub", Rules: []*Rule{rule("", &Counter{})}},
		{Name: "input", Hook: HookInput, Policy: VerdictAccept, Rules: []*Rule{
			rule("icmp", &NfProto{}, &ICMPType{Types: []uint8{3}}, &Counter{}, accept),
		}},
	}}
	if err := c.Replace(tbl); err != nil {
		t.Fatal(err)
	}
	got, err := c.Rules("moat")
	if err != nil {
		t.Fatal(err)
	}
	want := []LiveRule{{Chain: "output", Comment: "x"}, {Chain: "output", Comment: "no counter"}, {Chain: "sub"}, {Chain: "input", Comment: "icmp"}}
	if diff := cmp.Diff(want, got, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Handle" }, cmp.Ignore())); diff != "" {
		t.Fatalf("Rules before traffic (-want +got):\n%s", diff)
	}
	handles := map[uint64]bool{}
	for _, r := range got {
		if r.Handle == 0 || handles[r.Handle] {
			t.Errorf("rule %+v: handle not set or not unique", r)
		}
		handles[r.Handle] = true
	}

	sendUDP(t, 3)
	got, err = c.Rules("moat")
	if err != nil {
		t.Fatal(err)
	}
	if r := got[0]; r.Packets != 3 || r.Bytes != 3*(20+8+4) {
		t.Errorf("output counter after 3 datagrams: %d packets, %d bytes; want 3, 96", r.Packets, r.Bytes)
	}
	if r := got[3]; r.Packets == 0 {
		t.Errorf("input counter of port unreachable replies is 0")
	}
	sendUDP(t, 2)
	again, err := c.Rules("moat")
	if err != nil {
		t.Fatal(err)
	}
	if again[0].Packets != 5 || again[0].Handle != got[0].Handle {
		t.Errorf("after 2 more datagrams: %+v, want 5 packets on handle %d", again[0], got[0].Handle)
	}
}

// TestDeleteExists covers Delete and Exists, and Rules of a missing table.
func TestDeleteExists(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	other := otherTable(t)
	c := openConn(t)
	exists := func(want bool) {
		t.Helper()
		got, err := c.Exists("moat")
		if err != nil || got != want {
			t.Fatalf("Exists(moat) = %v, %v; want %v", got, err, want)
		}
	}
	exists(false)
	if err := c.Delete("moat"); err != nil {
		t.Fatalf("Delete of a missing table: %v", err)
	}
	if _, err := c.Rules("moat"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Rules of a missing table: %v, want ENOENT", err)
	}
	if err := c.Replace(smallTable("moat")); err != nil {
		t.Fatal(err)
	}
	exists(true)
	if err := c.Delete("moat"); err != nil {
		t.Fatal(err)
	}
	exists(false)
	if got := run(t, "", "nft", "-a", "list", "ruleset"); got != other {
		t.Errorf("ruleset after Delete:\n%s\nwant only table other:\n%s", got, other)
	}
	if ok, err := c.Exists("other"); err != nil || !ok {
		t.Errorf("Exists(other) = %v, %v", ok, err)
	}
	if err := c.Delete("bad name"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Delete(bad name) = %v, want ErrInvalid", err)
	}
}

// TestWithNetNSFd checks that a Conn opened on another namespace works
// there, and only there.
func TestWithNetNSFd(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	// A process in a namespace of its own holds it while we use it.
	holder := exec.Command("sleep", "60")
	holder.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = holder.Process.Kill()
		_ = holder.Wait()
	})
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()

	there, err := Open(WithNetNSFd(int(ns.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	defer there.Close()
	if err := there.Replace(smallTable("moat")); err != nil {
		t.Fatal(err)
	}
	if ok, err := there.Exists("moat"); err != nil || !ok {
		t.Errorf("Exists there = %v, %v; want true", ok, err)
	}
	if ok, err := openConn(t).Exists("moat"); err != nil || ok {
		t.Errorf("Exists here = %v, %v; want false", ok, err)
	}
	if _, err := exec.LookPath("nsenter"); err == nil {
		got := run(t, "", "nsenter", "--net=/proc/"+fmt.Sprint(holder.Process.Pid)+"/ns/net", "nft", "list", "tables")
		if got != "table inet moat\n" {
			t.Errorf("tables in the other namespace: %q", got)
		}
	}
}

// bigTable has n rules and a set of m prefixes.
func bigTable(n, m int) *Table {
	tbl := &Table{Name: "moat_big"}
	s := &Set{Name: "ban", Type: KeyIPv4, Interval: true}
	for i := range m {
		s.Prefixes = append(s.Prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24+i%9))
	}
	tbl.Sets = append(tbl.Sets, s)
	in := &Chain{Name: "input", Hook: HookInput, Policy: VerdictDrop}
	for i := range n {
		var exprs []Expr
		switch i % 5 {
		case 0:
			exprs = []Expr{&NfProto{}, &Addr{Dir: Src, Set: "ban"}, &Counter{}, drop}
		case 1:
			exprs = []Expr{&Port{Dir: Dst, Proto: ProtoTCP, Ranges: []PortRange{{uint16(i), uint16(i)}, {uint16(i + 1000), uint16(i + 1010)}}}, &Counter{}, accept}
		case 2:
			exprs = []Expr{&Addr{Dir: Src, V6: true, Prefixes: pfx(fmt.Sprintf("2001:db8:%x::/48", i), "fe80::/10")}, &Counter{}, accept}
		case 3:
			exprs = []Expr{&CtState{States: CtNew}, &TCPFlags{Mask: TCPSyn | TCPAck, Value: TCPSyn}, &Limit{Rate: uint64(i), Unit: time.Second}, &Counter{}, accept}
		case 4:
			exprs = []Expr{&IfName{In: true, Name: fmt.Sprintf("eth%d", i%100)}, &Log{Prefix: fmt.Sprintf("r%d ", i), Level: "info"}, &Counter{}}
		}
		in.Rules = append(in.Rules, &Rule{Exprs: exprs, Comment: fmt.Sprintf("rule %d", i)})
	}
	tbl.Chains = append(tbl.Chains, in)
	return tbl
}

// TestReplaceLarge applies a table the size of a big policy in one batch,
// twice, which exercises the socket buffer sizing.
func TestReplaceLarge(t *testing.T) {
	if !inNetNS(t) {
		return
	}
	c := openConn(t)
	tbl := bigTable(10000, 20000)
	for range 2 {
		start := time.Now()
		if err := c.Replace(tbl); err != nil {
			t.Fatal(err)
		}
		t.Logf("Replace of %d rules, %d set elements: %v", len(tbl.Chains[0].Rules), len(tbl.Sets[0].Prefixes), time.Since(start))
	}
	rules, err := c.Rules(tbl.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 10000 || rules[9999].Comment != "rule 9999" {
		t.Errorf("Rules: %d rules, last %+v", len(rules), rules[len(rules)-1])
	}
}
