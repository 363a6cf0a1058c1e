package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/moat-sec/moat/internal/policy"
)

// RedirectFile is one [[redirect]] table: new connections to a real service
// port from banned (or untrusted) sources go to a honeypot instead.
type RedirectFile struct {
	Port  int      `toml:"port"`
	Proto string   `toml:"proto"`
	From  string   `toml:"from"`
	To    []string `toml:"to"`
}

// redirects validates the [[redirect]] tables into p.
func (v *validator) redirects(f *File, p *policy.Policy) {
	type key struct {
		proto  policy.Proto
		port   uint16
		banned bool
	}
	seen := map[key]int{}
	for i, rf := range f.Redirects {
		path := "redirect." + strconv.Itoa(i+1)
		r := policy.Redirect{Origin: policy.Origin{File: v.file}}
		if v.loc != nil {
			r.Origin.Line = v.loc.at(path).Line
		}
		ok := true
		bad := func(field string, err error) {
			v.add(path+"."+field, err)
			ok = false
		}
		if rf.Port < 1 || rf.Port > 65535 {
			bad("port", fmt.Errorf("port %d out of range 1-65535 (the real service's port)", rf.Port))
		}
		r.Port = uint16(rf.Port)
		switch rf.Proto {
		case "", "tcp":
			r.Proto = policy.ProtoTCP
		case "udp":
			r.Proto = policy.ProtoUDP
		default:
			bad("proto", fmt.Errorf("proto %q: want tcp or udp", rf.Proto))
		}
		if err := parseRedirectFrom(rf.From, p.Networks, &r); err != nil {
			bad("from", err)
		}
		if err := parseRedirectTo(rf.To, &r); err != nil {
			bad("to", err)
		}
		if !ok {
			continue
		}
		if r.LocalPort == r.Port {
			bad("to", fmt.Errorf("port %d redirects to itself", r.Port))
			continue
		}
		k := key{r.Proto, r.Port, r.Banned}
		if j, dup := seen[k]; dup {
			bad("port", fmt.Errorf("%s/%d is already redirected by redirect %d", r.Proto, r.Port, j+1))
			continue
		}
		seen[k] = i
		p.Redirects = append(p.Redirects, r)
	}
}

// parseRedirectFrom reads "banned" (the default), a network name or a
// prefix, or either of those after "!" for every source outside it.
func parseRedirectFrom(s string, networks map[string][]netip.Prefix, r *policy.Redirect) error {
	if s == "" || s == "banned" {
		r.Banned = true
		return nil
	}
	text, except := strings.CutPrefix(s, "!")
	if text == "" || text == "any" || text == "banned" {
		return fmt.Errorf("%q: want \"banned\", a network name or a prefix, optionally after \"!\"", s)
	}
	r.Except = except
	if ps, ok := networks[text]; ok {
		r.From = policy.Endpoint{Text: text, Prefixes: ps}
		return nil
	}
	pfx, err := policy.ParsePrefix(text)
	if err != nil {
		return fmt.Errorf("%q: not \"banned\", a network name or a prefix: %v", s, err)
	}
	if pfx.Bits() == 0 {
		return fmt.Errorf("%q matches every source of its family: redirect \"banned\" sources, or name who is untrusted", s)
	}
	r.From = policy.Endpoint{Text: text, Prefixes: []netip.Prefix{pfx}}
	return nil
}

// parseRedirectTo reads the target: a port alone ("2222") for a honeypot on
// this host, or "ADDR:PORT" ("192.0.2.9:2222", "[2001:db8::9]:2222") for a
// honeypot host, at most one of each family.
func parseRedirectTo(to []string, r *policy.Redirect) error {
	if len(to) == 0 {
		return fmt.Errorf("missing: a port on this host (\"2222\") or a honeypot host \"ADDR:PORT\"")
	}
	for _, s := range to {
		if n, err := strconv.Atoi(strings.TrimPrefix(s, ":")); err == nil {
			if n < 1 || n > 65535 {
				return fmt.Errorf("port %d out of range 1-65535", n)
			}
			if r.LocalPort != 0 || len(to) > 1 {
				return fmt.Errorf("%q: a port on this host serves both families; list nothing else", s)
			}
			r.LocalPort = uint16(n)
			continue
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return fmt.Errorf("%q: want a port, \"ADDR:PORT\" or \"[IPv6]:PORT\"", s)
		}
		a := ap.Addr().Unmap()
		switch {
		case ap.Port() == 0:
			return fmt.Errorf("%q: port 0", s)
		case a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast():
			return fmt.Errorf("%q: want a unicast address a honeypot can have", s)
		case a.IsLoopback():
			return fmt.Errorf("%q: the kernel does not route outside traffic to loopback; give the port alone for a honeypot on this host", s)
		}
		ap = netip.AddrPortFrom(a, ap.Port())
		dst := &r.To4
		if a.Is6() {
			dst = &r.To6
		}
		if dst.IsValid() {
			return fmt.Errorf("%q: two targets of the same family", s)
		}
		*dst = ap
	}
	return nil
}
