package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/nettest"
)

var moatBin string

func TestMain(m *testing.M) {
	moatBin = os.Getenv("MOAT_BIN")
	if moatBin == "" && os.Geteuid() == 0 {
		dir, err := os.MkdirTemp("", "moat-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		moatBin = filepath.Join(dir, "moat")
		build := exec.Command("go", "build", "-o", moatBin, "../cmd/moat")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build moat: %v\n%s", err, out)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// Addresses of the test bed (documentation ranges, on veth links only).
const (
	serverAdm4 = "198.51.100.1"
	adminV4    = "198.51.100.10"
	serverAdm6 = "2001:db8:a::1"
	adminV6    = "2001:db8:a::10"
	serverWan4 = "203.0.113.1"
	inetV4     = "203.0.113.66"
	serverWan6 = "2001:db8:b::1"
	inetV6     = "2001:db8:b::66"
	inetV6b    = "2001:db8:b::67" // same /64 as inetV6
)

// bed is a server with an admin host and an internet host, each on its own
// veth link, and a moat configuration in a temporary directory.
type bed struct {
	t                   *testing.T
	server, admin, inet *nettest.NS
	dir                 string
}

func newBed(t *testing.T) *bed {
	t.Helper()
	nettest.RequireRoot(t)
	nettest.RequireTools(t, "socat", "nc", "ss")
	b := &bed{t: t, dir: t.TempDir()}
	b.server = nettest.New(t, "msrv")
	b.admin = nettest.New(t, "madm")
	b.inet = nettest.New(t, "minet")
	nettest.Link(t, b.server, "adm0", []string{serverAdm4 + "/24", serverAdm6 + "/64"}, b.admin, "eth0", []string{adminV4 + "/24", adminV6 + "/64"})
	nettest.Link(t, b.server, "wan0", []string{serverWan4 + "/24", serverWan6 + "/64"}, b.inet, "eth0", []string{inetV4 + "/24", inetV6 + "/64", inetV6b + "/64"})
	for _, d := range []string{"state", "run"} {
		if err := os.MkdirAll(filepath.Join(b.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func (b *bed) configPath() string { return filepath.Join(b.dir, "moat.toml") }

// writePolicy writes moat.toml.
func (b *bed) writePolicy(toml string) {
	b.t.Helper()
	if err := os.WriteFile(b.configPath(), []byte(toml), 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// moatCmd is the moat command line for the server namespace.
func (b *bed) moatArgs(args ...string) []string {
	return append([]string{moatBin, "--config", b.configPath(), "--state-dir", filepath.Join(b.dir, "state"), "--run-dir", filepath.Join(b.dir, "run")}, args...)
}

// moat runs moat in the server namespace and returns its output and exit code.
func (b *bed) moat(args ...string) (string, int) {
	b.t.Helper()
	cmd := b.server.Cmd(b.moatArgs(args...)...)
	cmd.Env = append(os.Environ(), "SSH_CONNECTION=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	b.t.Fatalf("run moat %v: %v", args, err)
	return "", -1
}

// mustMoat runs moat and fails the test unless it succeeds.
func (b *bed) mustMoat(args ...string) string {
	b.t.Helper()
	out, code := b.moat(args...)
	if code != 0 {
		b.t.Fatalf("moat %s: exit %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// listenTCP starts a TCP service (dual-stack) on port in ns.
func listenTCP(ns *nettest.NS, port int) {
	ns.Start("socat", "-lf", "/dev/null", fmt.Sprintf("TCP6-LISTEN:%d,fork,reuseaddr,ipv6only=0", port), "EXEC:cat")
	ns.WaitListen(port)
}

// listenUDP starts a UDP echo service on port in ns, bound to each of
// addrs so that replies leave from the address the request went to.
func listenUDP(ns *nettest.NS, port int, addrs ...string) {
	for _, a := range addrs {
		spec := fmt.Sprintf("UDP4-RECVFROM:%d,bind=%s,fork,reuseaddr", port, a)
		if strings.Contains(a, ":") {
			spec = fmt.Sprintf("UDP6-RECVFROM:%d,bind=[%s],fork,reuseaddr", port, a)
		}
		ns.Start("socat", "-lf", "/dev/null", spec, "EXEC:cat")
	}
	time.Sleep(100 * time.Millisecond)
}

// tcpOpen reports whether a TCP connection from ns to addr:port completes.
func tcpOpen(ns *nettest.NS, addr string, port int, extra ...string) bool {
	args := append([]string{"nc", "-z", "-n", "-w", "1"}, extra...)
	_, err := ns.Run(append(args, addr, strconv.Itoa(port))...)
	return err == nil
}

// udpEcho reports whether a datagram from ns to addr:port comes back.
func udpEcho(ns *nettest.NS, addr string, port int) bool {
	target := fmt.Sprintf("UDP:%s:%d", addr, port)
	if strings.Contains(addr, ":") {
		target = fmt.Sprintf("UDP6:[%s]:%d", addr, port)
	}
	cmd := ns.Cmd("socat", "-T", "1", "-", target)
	cmd.Stdin = strings.NewReader("ping\n")
	out, _ := cmd.Output()
	return strings.Contains(string(out), "ping")
}

// nftList returns `nft -a -s list ruleset` in ns: with handles, which change
// whenever a table is rebuilt, and without counters, which traffic changes.
func nftList(ns *nettest.NS) string {
	return ns.MustRun("nft", "-a", "-s", "list", "ruleset")
}

const sshlessHeader = `
[defaults]
incoming = "deny"
outgoing = "allow"
routed = "deny"
`
