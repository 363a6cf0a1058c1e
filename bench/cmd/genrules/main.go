// Command genrules writes the same N-rule firewall policy for moat and for
// UFW, for the apply benchmark (bench/fw-apply.sh):
//
//	genrules N OUTDIR
//
// writes OUTDIR/moat.toml and OUTDIR/user.rules, OUTDIR/user6.rules (UFW's
// own files, as `ufw allow proto tcp from ADDR to any port PORT` writes them,
// so that `ufw reload` loads N rules). Rule i (0-based) allows TCP from the
// i+1-th address of 10.0.0.0/8 (10.0.0.1, 10.0.0.2, ...) to port
// ports[i%len(ports)]. The defaults are the same on both sides: deny
// incoming, allow outgoing, deny routed (UFW's stock /etc/default/ufw).
// Output is deterministic: the same N gives the same bytes.
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// ports is the small cycle of destination ports.
var ports = []int{80, 443, 8080, 5432, 6379, 9000, 3000}

// maxRules keeps the addresses inside 10.0.0.0/8 (10.0.0.1 .. 10.255.255.254).
const maxRules = 1<<24 - 2

func addr(i int) string {
	n := i + 1
	return fmt.Sprintf("10.%d.%d.%d", n>>16&255, n>>8&255, n&255)
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: genrules N OUTDIR")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[1])
	if err != nil || n < 0 || n > maxRules {
		fmt.Fprintf(os.Stderr, "genrules: N must be an integer in 0..%d\n", maxRules)
		os.Exit(2)
	}
	dir := os.Args[2]
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatal(err)
	}
	write(filepath.Join(dir, "moat.toml"), 0o644, func(w *bufio.Writer) { moatTOML(w, n) })
	write(filepath.Join(dir, "user.rules"), 0o640, func(w *bufio.Writer) { ufwRules(w, "ufw", n) })
	write(filepath.Join(dir, "user6.rules"), 0o640, func(w *bufio.Writer) { ufwRules(w, "ufw6", 0) })
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "genrules:", err)
	os.Exit(1)
}

func write(path string, mode os.FileMode, body func(*bufio.Writer)) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<16)
	body(w)
	if err := w.Flush(); err != nil {
		fatal(err)
	}
	if err := f.Close(); err != nil {
		fatal(err)
	}
}

func moatTOML(w *bufio.Writer, n int) {
	fmt.Fprintf(w, "# %d generated rules (bench/cmd/genrules); apply with `moat up --force`.\n", n)
	w.WriteString("[defaults]\nincoming = \"deny\"\noutgoing = \"allow\"\nrouted = \"deny\"\n")
	for i := 0; i < n; i++ {
		fmt.Fprintf(w, "\n[[rule]]\naction = \"allow\"\nproto = \"tcp\"\nfrom = %q\nport = \"%d\"\n", addr(i), ports[i%len(ports)])
	}
}

// ufwRules writes user.rules (chain prefix "ufw") or user6.rules ("ufw6")
// exactly as ufw 0.36 writes them with LOGLEVEL=low: the chain declarations,
// the rules section (a "### tuple ###" comment, which is what ufw reads back
// as the rule, then the iptables-restore line), the logging section and the
// rate-limiting section.
func ufwRules(w *bufio.Writer, c string, n int) {
	w.WriteString("*filter\n")
	for _, ch := range []string{
		"user-input", "user-output", "user-forward",
		"before-logging-input", "before-logging-output", "before-logging-forward",
		"user-logging-input", "user-logging-output", "user-logging-forward",
		"after-logging-input", "after-logging-output", "after-logging-forward",
		"logging-deny", "logging-allow", "user-limit", "user-limit-accept",
	} {
		fmt.Fprintf(w, ":%s-%s - [0:0]\n", c, ch)
	}
	w.WriteString("### RULES ###\n")
	for i := 0; i < n; i++ {
		a, p := addr(i), ports[i%len(ports)]
		fmt.Fprintf(w, "\n### tuple ### allow tcp %d 0.0.0.0/0 any %s in\n", p, a)
		fmt.Fprintf(w, "-A %s-user-input -p tcp --dport %d -s %s -j ACCEPT\n", c, p, a)
	}
	w.WriteString("\n### END RULES ###\n\n### LOGGING ###\n")
	lim := "-m limit --limit 3/min --limit-burst 10"
	fmt.Fprintf(w, "-A %s-after-logging-input -j LOG --log-prefix \"[UFW BLOCK] \" %s\n", c, lim)
	fmt.Fprintf(w, "-A %s-after-logging-forward -j LOG --log-prefix \"[UFW BLOCK] \" %s\n", c, lim)
	fmt.Fprintf(w, "-I %s-logging-deny -m conntrack --ctstate INVALID -j RETURN %s\n", c, lim)
	fmt.Fprintf(w, "-A %s-logging-deny -j LOG --log-prefix \"[UFW BLOCK] \" %s\n", c, lim)
	fmt.Fprintf(w, "-A %s-logging-allow -j LOG --log-prefix \"[UFW ALLOW] \" %s\n", c, lim)
	w.WriteString("### END LOGGING ###\n\n### RATE LIMITING ###\n")
	fmt.Fprintf(w, "-A %s-user-limit -m limit --limit 3/minute -j LOG --log-prefix \"[UFW LIMIT BLOCK] \"\n", c)
	fmt.Fprintf(w, "-A %s-user-limit -j REJECT\n", c)
	fmt.Fprintf(w, "-A %s-user-limit-accept -j ACCEPT\n", c)
	w.WriteString("### END RATE LIMITING ###\nCOMMIT\n")
}
