package e2e

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moat-sec/moat/internal/nettest"
)

const trapPolicy = `
[defaults]
incoming = "deny"
outgoing = "allow"
routed = "deny"

[networks]
admins = ["198.51.100.0/24", "2001:db8:a::/64"]

[[rule]]
action = "allow"
app = "ssh"

[[rule]]
action = "allow"
port = "80"
proto = "tcp"

[bans]
allowlist = ["admins"]

[honeypot]
tcp = [2323, 3389]
udp = [1900]
bantime = "1h"

[jail.sshd]
logpath = ["%s"]
`

// inKernelSet reports whether addr is an element of table moat's set.
func inKernelSet(ns *nettest.NS, set, addr string) bool {
	out, err := ns.Run("nft", "list", "set", "inet", "moat", set)
	return err == nil && strings.Contains(out, addr+" ") || strings.Contains(out, addr+",")
}

// TestHoneypot: a completed handshake on a trap port bans the source in the
// kernel (IPv4 and IPv6); a spoofed SYN bans nobody; a UDP datagram only
// alerts; an allowlisted admin is never banned; a connection flood leaves
// the daemon healthy.
func TestHoneypot(t *testing.T) {
	b := newBed(t)
	nettest.RequireTools(t, "hping3")
	logPath := filepath.Join(b.dir, "auth.log")
	must(t, os.WriteFile(logPath, nil, 0o600))
	listenTCP(b.server, 80)
	b.writePolicy(fmt.Sprintf(trapPolicy, logPath))
	b.mustMoat("up")
	b.daemon(t)

	// A spoofed SYN never completes a handshake: not with a source that
	// does not exist (192.0.2.99), nor with a live one (203.0.113.67, a
	// second address of the internet host, whose kernel answers our
	// SYN-ACK with a RST that conntrack counts as established).
	b.inet.MustRun("ip", "addr", "add", "203.0.113.67/24", "dev", "eth0")
	b.inet.Run("hping3", "-S", "-a", "192.0.2.99", "-p", "2323", "-c", "20", "-i", "u10000", serverWan4)
	b.inet.Run("hping3", "-S", "-a", "203.0.113.67", "-p", "2323", "-c", "20", "-i", "u10000", serverWan4)
	if inKernelSet(b.server, "ban_v4", "203.0.113.67") {
		t.Fatal("a SYN forged with a live host's address got that host banned (its RST to our SYN-ACK)")
	}
	// A UDP datagram to a UDP trap: alert only.
	udp := b.inet.Cmd("socat", "-T", "1", "-", fmt.Sprintf("UDP:%s:1900", serverWan4))
	udp.Stdin = strings.NewReader("M-SEARCH\n")
	udp.Run()
	time.Sleep(300 * time.Millisecond)
	if bans := b.bans(t); len(bans) != 0 {
		t.Errorf("spoofed SYNs or a UDP datagram caused bans: %v", bans)
	}
	if !tcpOpen(b.inet, serverWan4, 80) {
		t.Fatal("the internet host lost port 80 before touching a trap")
	}

	// The real thing, in both families.
	start := time.Now()
	tcpOpen(b.inet, serverWan4, 2323)
	if !inKernelSet(b.server, "ban_v4", inetV4) {
		t.Fatalf("no kernel ban right after a completed handshake (%v)", time.Since(start))
	}
	tcpOpen(b.inet, serverWan6, 3389, "-s", inetV6)
	if !inKernelSet(b.server, "ban_v6", inetV6) {
		t.Fatal("no kernel ban for the IPv6 trap connection")
	}
	if tcpOpen(b.inet, serverWan4, 80) || tcpOpen(b.inet, serverWan6, 80, "-s", inetV6) {
		t.Error("a trapped source still reaches port 80")
	}
	b.waitBanned(t, inetV4+"/32", true, 2*time.Second)
	if ban := b.bans(t)[inetV4+"/32"]; ban.Jail != "honeypot" || time.Until(ban.Expires) < 50*time.Minute {
		t.Errorf("recorded ban = %+v, want jail honeypot for about 1h", ban)
	}

	// The admin pokes the trap hard: allowlisted, never banned; the daemon
	// stays healthy through a flood of connections.
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 40 {
				tcpOpen(b.admin, serverAdm4, 2323)
			}
		})
	}
	wg.Wait()
	if inKernelSet(b.server, "ban_v4", adminV4) {
		t.Error("the allowlisted admin was banned by the kernel trap rule")
	}
	if _, banned := b.bans(t)[adminV4+"/32"]; banned {
		t.Error("the allowlisted admin was banned by the daemon")
	}
	if out, code := b.moat("status"); code != 0 || !strings.Contains(out, "healthy") {
		t.Errorf("after a trap flood: exit %d\n%s", code, out)
	}
	if !tcpOpen(b.admin, serverAdm4, 80) {
		t.Error("the admin lost port 80")
	}
}

// scanBed is the scan bench: a server with six open, allowed
// ports (22, 80, 443, 3306, 5432, 8080), the admins allowlisted, and extra
// policy appended; the policy is applied.
func scanBed(t *testing.T, extra string) *bed {
	b := newBed(t)
	nettest.RequireTools(t, "nmap")
	for _, p := range []int{22, 80, 443, 3306, 5432, 8080} {
		listenTCP(b.server, p)
	}
	b.writePolicy(`
[defaults]
incoming = "deny"

[networks]
admins = ["198.51.100.0/24", "2001:db8:a::/64"]

[bans]
allowlist = ["admins"]

[[rule]]
action = "allow"
port = "22,80,443,3306,5432,8080"
proto = "tcp"
` + extra)
	b.mustMoat("up")
	return b
}

// TestScanBlock: an nmap SYN scan is blocked in the kernel after a few
// dropped probes, so it finds few of the six open ports; probes forged with
// the allowlisted admin's address block nobody.
func TestScanBlock(t *testing.T) {
	b := scanBed(t, "")
	nettest.RequireTools(t, "hping3")
	// Forged probes in the admin's name, from the internet side.
	b.inet.Run("hping3", "-S", "-a", adminV4, "--scan", "1000-1100", serverWan4)
	if inKernelSet(b.server, "scan_v4", adminV4) {
		t.Fatal("probes forged with the allowlisted admin's address blocked the admin")
	}
	if !tcpOpen(b.admin, serverAdm4, 80) {
		t.Fatal("the admin lost port 80")
	}
	start := guardCounters(t, b)
	out, _ := b.inet.Run("nmap", "-n", "-Pn", "-sS", "-T4", "--top-ports", "1000", "--max-retries", "1", "--host-timeout", "40s", serverWan4)
	if !inKernelSet(b.server, "scan_v4", inetV4) {
		t.Fatalf("the scanner is not in the kernel block set\n%s", out)
	}
	// The block lasts longer than the scan, so every probe that reached
	// the default drop came before the block.
	end := guardCounters(t, b)
	before := end["default in"] - start["default in"]
	after := end["scan-block scan_v4"] - start["scan-block scan_v4"]
	if before == 0 || before > 10 {
		t.Errorf("%d of nmap's probes reached the default drop before the block, want 1-10", before)
	}
	if after < 100 {
		t.Errorf("only %d probes met the block, want most of the scan's", after)
	}
	t.Logf("nmap probes dropped before the block: %d, after it: %d", before, after)
	if !tcpOpen(b.admin, serverAdm4, 3306) {
		t.Error("the admin is affected by the scanner's block")
	}
}

const udpVerifyPolicy = `
[defaults]
incoming = "deny"
outgoing = "allow"
routed = "deny"

[networks]
admins = ["198.51.100.0/24", "2001:db8:a::/64"]

[[rule]]
action = "allow"
app = "ssh"

[bans]
allowlist = ["admins"]

[honeypot]
tcp = [2323]
udp = [%s]
udp_verify = true
tcp_bytes = 100
bantime = "1h"

[jail.sshd]
logpath = ["%s"]
`

// inNS runs fn on a locked thread moved into ns, so that the sockets fn
// opens live in ns (they stay there), then moves the thread back. A
// thread that cannot go back is never unlocked, so the runtime retires it
// and no other code runs in ns by accident.
func inNS[T any](t *testing.T, ns *nettest.NS, fn func() (T, error)) T {
	t.Helper()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{err: err}
			return
		}
		defer home.Close()
		target, err := os.Open("/run/netns/" + ns.Name)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: err}
			return
		}
		v, err := fn()
		if rerr := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); rerr != nil {
			done <- result{err: fmt.Errorf("back to the test's namespace: %w", rerr)}
			return
		}
		runtime.UnlockOSThread()
		done <- result{v, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatalf("in %s: %v", ns.Name, r.err)
	}
	return r.v
}

// udpClient is a UDP socket in ns connected to addr: it only accepts
// datagrams from addr, so a reply must come from the address it was sent to.
func udpClient(t *testing.T, ns *nettest.NS, local, addr string) *net.UDPConn {
	t.Helper()
	c := inNS(t, ns, func() (*net.UDPConn, error) {
		return net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(local), 0)), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange sends msg and returns the reply, or nil after wait.
func exchange(t *testing.T, c *net.UDPConn, msg []byte, wait time.Duration) []byte {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(wait))
	n, err := c.Read(buf)
	if err != nil {
		return nil
	}
	return buf[:n]
}

// trapBytes connects from ns to the IPv4 addr:port and counts the bytes
// received before the connection ends. Raw system calls: on a veth the
// trap's data and reset can arrive before connect returns, and a reset
// connect is an error to net.Dial, though the data is there to be read.
func trapBytes(t *testing.T, ns *nettest.NS, addr string, port int) int {
	t.Helper()
	return inNS(t, ns, func() (int, error) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		defer unix.Close(fd)
		tv := unix.NsecToTimeval((2 * time.Second).Nanoseconds())
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return 0, err
		}
		if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: netip.MustParseAddr(addr).As4()}); err != nil && err != unix.ECONNRESET {
			return 0, err
		}
		total := 0
		buf := make([]byte, 8192)
		for {
			n, err := unix.Read(fd, buf)
			if n <= 0 || err != nil {
				return total, nil
			}
			total += n
		}
	})
}

// banOf returns the recorded ban that covers addr.
func banOf(bans map[string]banJSON, addr string) (netip.Prefix, bool) {
	a := netip.MustParseAddr(addr)
	for k := range bans {
		if p, err := netip.ParsePrefix(k); err == nil && p.Contains(a) {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// inKernelBan reports whether the kernel's ban sets hold p.
func inKernelBan(ns *nettest.NS, p netip.Prefix) bool {
	set, elem := "banpfx_v4", p.String()
	if p.IsSingleIP() {
		set, elem = "ban_v4", p.Addr().String()
	}
	if p.Addr().Is6() {
		set = strings.Replace(set, "v4", "v6", 1)
	}
	return inKernelSet(ns, set, elem)
}

// TestHoneypotUDPVerify: with udp_verify, a UDP trap answers with a cookie
// no larger than the datagram; a forged datagram (from a missing host, a
// live one, an echo service, the allowlisted admin) bans nobody; a real
// client that sends the cookie back is banned, in the kernel and in `moat
// bans`, in both families. With tcp_bytes, a trap connection gets the
// bytes before its reset. A UDP trap port a real service uses is refused.
func TestHoneypotUDPVerify(t *testing.T) {
	b := newBed(t)
	nettest.RequireTools(t, "hping3")
	logPath := filepath.Join(b.dir, "auth.log")
	must(t, os.WriteFile(logPath, nil, 0o600))

	// A real service on a UDP port: refused as a trap at start.
	listenUDP(b.server, 5353, serverWan4)
	b.writePolicy(fmt.Sprintf(udpVerifyPolicy, "1900, 5353", logPath))
	b.mustMoat("up")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	out, err := b.server.CmdContext(ctx, b.moatArgs("run")...).CombinedOutput()
	cancel()
	if err == nil || !strings.Contains(string(out), "honeypot port 5353/udp is in use by a real service") {
		t.Fatalf("moat run with a UDP trap on a used port: %v\n%s", err, out)
	}

	b.writePolicy(fmt.Sprintf(udpVerifyPolicy, "1900", logPath))
	b.mustMoat("up")
	b.daemon(t)
	deadline := time.Now().Add(5 * time.Second)
	for !inKernelSet(b.server, "trapudp_on_v4", "0.0.0.0/0") {
		if time.Now().After(deadline) {
			t.Fatalf("the kernel's udp trap switch is off:\n%s", b.server.MustRun("nft", "list", "table", "inet", "moat"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The switch turns itself off unless the daemon keeps refreshing it.
	if sw := b.server.MustRun("nft", "list", "set", "inet", "moat", "trapudp_on_v6"); !strings.Contains(sw, "::/0 timeout 10s") {
		t.Errorf("the IPv6 switch is not on with a timeout:\n%s", sw)
	}

	t.Run("forged", func(t *testing.T) {
		// A source that does not exist, a live host (its kernel gets our
		// cookie and answers with an ICMP error), an echo service on the
		// live host (it sends the cookie straight back), the admin.
		b.inet.MustRun("ip", "addr", "add", "203.0.113.67/24", "dev", "eth0")
		listenUDP(b.inet, 7000, "203.0.113.67")
		b.inet.Run("hping3", "-2", "-a", "203.0.113.67", "-s", "7000", "-k", "-p", "1900", "-d", "64", "-c", "3", "-i", "u20000", serverWan4)
		b.inet.Run("hping3", "-2", "-a", "192.0.2.99", "-s", "40000", "-p", "1900", "-d", "64", "-c", "5", "-i", "u20000", serverWan4)
		b.inet.Run("hping3", "-2", "-a", "203.0.113.67", "-s", "40000", "-p", "1900", "-d", "64", "-c", "5", "-i", "u20000", serverWan4)
		b.inet.Run("hping3", "-2", "-a", adminV4, "-s", "40000", "-p", "1900", "-d", "64", "-c", "5", "-i", "u20000", serverWan4)
		time.Sleep(500 * time.Millisecond)
		if bans := b.bans(t); len(bans) != 0 {
			t.Errorf("forged datagrams caused bans: %v", bans)
		}
		for _, a := range []string{"192.0.2.99", "203.0.113.67", adminV4} {
			if inKernelSet(b.server, "ban_v4", a) {
				t.Errorf("forged datagrams got %s banned in the kernel", a)
			}
		}
		st := b.mustMoat("status", "--json")
		if !strings.Contains(st, `"trap_udp_challenges"`) || strings.Contains(st, `"trap_udp_proven"`) {
			t.Errorf("status: want challenges (the forged sources got cookies) and no proof:\n%s", st)
		}
		// The admin is never answered, so never challenged.
		adm := udpClient(t, b.admin, adminV4, serverAdm4+":1900")
		if r := exchange(t, adm, make([]byte, 64), 500*time.Millisecond); r != nil {
			t.Errorf("the allowlisted admin got a %d-byte reply", len(r))
		}
	})

	for _, fam := range []struct{ name, local, server string }{
		{"v4", inetV4, serverWan4 + ":1900"},
		{"v6", inetV6, "[" + serverWan6 + "]:1900"},
	} {
		t.Run("real "+fam.name, func(t *testing.T) {
			c := udpClient(t, b.inet, fam.local, fam.server)
			if r := exchange(t, c, []byte("M-SEARCH"), 500*time.Millisecond); r != nil {
				t.Fatalf("an 8-byte datagram got a %d-byte reply (larger than a cookie can be cut to)", len(r))
			}
			req := []byte("M-SEARCH * HTTP/")
			cookie := exchange(t, c, req, 2*time.Second)
			if len(cookie) == 0 || len(cookie) > len(req) {
				t.Fatalf("reply of %d bytes to a %d-byte datagram, want 1-%d", len(cookie), len(req), len(req))
			}
			if p, banned := banOf(b.bans(t), fam.local); banned {
				t.Fatalf("%s banned (%s) before sending the cookie back", fam.local, p)
			}
			// Sending the cookie back: the source is real.
			if _, err := c.Write(append([]byte("cookie "), cookie...)); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(3 * time.Second)
			for {
				p, ok := banOf(b.bans(t), fam.local)
				if ok {
					if ban := b.bans(t)[p.String()]; ban.Jail != "honeypot" || time.Until(ban.Expires) < 50*time.Minute {
						t.Errorf("recorded ban %+v, want jail honeypot for about 1h", ban)
					}
					if !inKernelBan(b.server, p) {
						t.Errorf("%s is recorded but not in the kernel's ban sets", p)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s sent the cookie back and is not banned: %v", fam.local, b.bans(t))
				}
				time.Sleep(50 * time.Millisecond)
			}
			// Banned: the trap no longer answers it.
			if r := exchange(t, c, make([]byte, 64), 500*time.Millisecond); r != nil {
				t.Error("a banned source still gets replies")
			}
		})
	}

	t.Run("tcp bytes", func(t *testing.T) {
		for range 5 {
			if n := trapBytes(t, b.admin, serverAdm4, 2323); n != 100 {
				t.Fatalf("a trap connection got %d bytes, want tcp_bytes = 100", n)
			}
		}
		// A flood of them: the daemon writes inline, nothing piles up.
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 50 {
					tcpOpen(b.admin, serverAdm4, 2323)
				}
			})
		}
		wg.Wait()
		if n := trapBytes(t, b.admin, serverAdm4, 2323); n != 100 {
			t.Errorf("after a flood, a trap connection got %d bytes, want 100", n)
		}
	})
	if out, code := b.moat("status"); code != 0 || !strings.Contains(out, "healthy") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
}

// TestScanHold: with the first-SYN hold on the database and app ports, an
// nmap SYN scan (IPv4 and IPv6) finds none of them: its first probes there
// are held, and the scan block stops it before it tries again. A real
// client from another address connects after its kernel's retransmission,
// and then at once.
func TestScanHold(t *testing.T) {
	b := scanBed(t, "\n[scan]\nhold = [3306, 5432, 8080]\n")
	held := []string{"3306/tcp", "5432/tcp", "8080/tcp"}
	// A realistic scan over IPv4, and over IPv6 one that probes the held
	// ports first, in order (-r), which without the hold finds them all.
	for _, scan := range []struct {
		name string
		args []string
	}{
		{"IPv4 top 1000", []string{"--top-ports", "1000", serverWan4}},
		{"IPv6 held ports first", []string{"-r", "-p", "3306,5432,8080,20000-20100", "-6", "-S", inetV6, "-e", "eth0", serverWan6}},
	} {
		before := guardCounters(t, b)["guard in hold first"]
		args := append([]string{"nmap", "-n", "-Pn", "-sS", "-T4", "--max-retries", "1", "--host-timeout", "40s"}, scan.args...)
		out, _ := b.inet.Run(args...)
		for _, port := range held {
			if strings.Contains(out, port+" open") {
				t.Errorf("%s: nmap found held port %s\n%s", scan.name, port, out)
			}
		}
		if !strings.Contains(out, "Nmap done") {
			t.Errorf("%s: nmap did not finish\n%s", scan.name, out)
		}
		// The hold, not luck, kept the ports from nmap.
		if g := guardCounters(t, b); strings.HasPrefix(scan.name, "IPv6") && g["guard in hold first"] <= before || g["guard in hold passed"] != 0 {
			t.Errorf("%s: hold counters: first %d (was %d), passed %d (want 0)", scan.name, g["guard in hold first"], before, g["guard in hold passed"])
		}
	}
	// A client that is not scanning: its first SYN is held, its kernel's
	// retransmission passes, and so does its next connection, at once.
	b.inet.MustRun("ip", "addr", "add", "203.0.113.67/24", "dev", "eth0")
	for _, c := range []struct{ addr, src string }{{serverWan4, "203.0.113.67"}, {serverWan6, inetV6b}} {
		start := time.Now()
		if !tcpOpen(b.inet, c.addr, 5432, "-w", "3", "-s", c.src) {
			t.Fatalf("a real client from %s never reached the held port", c.src)
		}
		first := time.Since(start)
		start = time.Now()
		if !tcpOpen(b.inet, c.addr, 3306, "-s", c.src) {
			t.Fatalf("the client from %s was held again", c.src)
		}
		again := time.Since(start)
		if first < 500*time.Millisecond || again > 300*time.Millisecond {
			t.Errorf("client %s: first connection %v (want about 1s: held once), next %v (want at once)", c.src, first, again)
		}
		t.Logf("client %s: first connection %v, next %v", c.src, first, again)
	}
}

// TestTrapsReload: a reload that changes the trap ports restarts the
// listeners; one that names a port a real service holds is refused, and
// the old listeners keep running.
func TestTrapsReload(t *testing.T) {
	b := newBed(t)
	logPath := filepath.Join(b.dir, "auth.log")
	must(t, os.WriteFile(logPath, nil, 0o600))
	policyWith := func(ports string) string {
		return strings.Replace(fmt.Sprintf(trapPolicy, logPath), "tcp = [2323, 3389]", "tcp = ["+ports+"]", 1)
	}
	listening := func(port int) bool {
		out, _ := b.server.Run("ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		return strings.Contains(out, "LISTEN")
	}
	b.writePolicy(policyWith("2323, 3389"))
	b.mustMoat("up")
	b.daemon(t)
	if !listening(2323) || !listening(3389) {
		t.Fatal("the trap listeners are not up")
	}
	b.writePolicy(policyWith("2323, 4444"))
	b.mustMoat("reload")
	if !listening(2323) || !listening(4444) || listening(3389) {
		t.Errorf("after the reload: 2323 %v, 4444 %v (want both), 3389 %v (want gone)", listening(2323), listening(4444), listening(3389))
	}
	listenTCP(b.server, 5555)
	b.writePolicy(policyWith("2323, 5555"))
	if out, code := b.moat("reload"); code == 0 || !strings.Contains(out, "5555") {
		t.Errorf("a reload onto a port a real service holds: exit %d\n%s", code, out)
	}
	if !listening(2323) || !listening(4444) {
		t.Error("the refused reload took the old trap listeners down")
	}
	if out, code := b.moat("status"); code != 0 || !strings.Contains(out, "healthy") {
		t.Errorf("after the reloads: exit %d\n%s", code, out)
	}
}
