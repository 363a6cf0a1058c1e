package appprofile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Port is one port or port range of a profile.
type Port struct {
	Proto       string // "tcp", "udp", or "" for both
	First, Last uint16 // First == Last for a single port
}

// String formats p the way profile files write it: "22/tcp",
// "60000:61000/udp", "53" (both protocols).
func (p Port) String() string {
	s := strconv.Itoa(int(p.First))
	if p.Last != p.First {
		s += ":" + strconv.Itoa(int(p.Last))
	}
	if p.Proto != "" {
		s += "/" + p.Proto
	}
	return s
}

// Profile is a named service and the ports it listens on.
type Profile struct {
	Name        string
	Title       string
	Description string
	Ports       []Port
	// Source is "builtin" or "path:line" of the profile's [section] header.
	// A custom profile that replaces a builtin one says so:
	// "path:line (overrides builtin)", or, when its name was a builtin
	// profile's alias, "path:line (overrides builtin alias of ssh)".
	Source string
}

func (p Profile) clone() Profile {
	p.Ports = slices.Clone(p.Ports)
	return p
}

// SourceBuiltin is the Source of builtin profiles.
const SourceBuiltin = "builtin"

// Catalogue is a set of profiles, looked up by name or alias without regard to
// ASCII case. It is immutable once made, so it is safe for concurrent use; a
// nil *Catalogue is empty.
type Catalogue struct {
	profiles map[string]Profile // by lower-case name
	aliases  map[string]string  // lower-case alias -> lower-case name
	keys     []string           // keys of profiles, sorted
}

// Lookup returns the profile called name, or the one name is an alias of.
// Names are matched without regard to ASCII case; a profile's own name wins
// over another profile's alias.
func (c *Catalogue) Lookup(name string) (Profile, bool) {
	key, ok := c.resolve(name)
	if !ok {
		return Profile{}, false
	}
	return c.profiles[key].clone(), true
}

func (c *Catalogue) resolve(name string) (string, bool) {
	if c == nil {
		return "", false
	}
	key := asciiLower(name)
	if _, ok := c.profiles[key]; ok {
		return key, true
	}
	key, ok := c.aliases[key]
	return key, ok
}

// List returns all profiles sorted by name (ignoring ASCII case).
func (c *Catalogue) List() []Profile {
	if c == nil {
		return nil
	}
	out := make([]Profile, len(c.keys))
	for i, k := range c.keys {
		out[i] = c.profiles[k].clone()
	}
	return out
}

// Aliases returns the aliases (lower-case, sorted) that Lookup also accepts
// for the profile that name resolves to, or nil.
func (c *Catalogue) Aliases(name string) []string {
	key, ok := c.resolve(name)
	if !ok {
		return nil
	}
	var out []string
	for a, k := range c.aliases {
		if k == key {
			out = append(out, a)
		}
	}
	sort.Strings(out)
	return out
}

func (c *Catalogue) clone() *Catalogue {
	return &Catalogue{
		profiles: maps.Clone(c.profiles),
		aliases:  maps.Clone(c.aliases),
	}
}

func (c *Catalogue) index() {
	c.keys = slices.Sorted(maps.Keys(c.profiles))
}

// Load returns the builtin profiles plus the custom profiles in the files of
// each directory in dirs, read in order and each directory's files in name
// order. The directories are in ufw's applications.d format (see Parse), so
// /etc/ufw/applications.d can be used unchanged.
//
// A directory that does not exist is skipped. Only regular files (or symbolic
// links to them) are read; hidden files and the leftovers of editors and
// package managers (names ending in "~", ".swp", ".dpkg-old", ".dpkg-dist",
// ".dpkg-new", ".dpkg-tmp", ".rpmnew", ".rpmsave", ".ucf-old", ".ucf-new",
// ".ucf-dist") are skipped.
//
// A custom profile with the name of a builtin one, or of a builtin alias,
// replaces it and says so in its Source. Two custom profiles with the same
// name are an error, even in different directories. Errors in file contents
// are *ParseError; a file or directory that cannot be read is an error too.
func Load(dirs ...string) (*Catalogue, error) {
	base := Builtin()
	c := base.clone()
	custom := map[string]string{} // lower-case name -> Source
	done := map[string]bool{}
	for _, dir := range dirs {
		if dir == "" || done[filepath.Clean(dir)] {
			continue
		}
		done[filepath.Clean(dir)] = true
		entries, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading application profiles: %w", err)
		}
		for _, e := range entries { // sorted by name
			if skipFile(e.Name()) {
				continue
			}
			path := filepath.Join(dir, e.Name())
			data, ok, err := readFile(path)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			ps, err := parse(path, data)
			if err != nil {
				return nil, err
			}
			for _, p := range ps {
				key := asciiLower(p.Name)
				if prev, dup := custom[key]; dup {
					return nil, &ParseError{Path: path, Line: p.line,
						Msg: fmt.Sprintf("profile %q already defined at %s", p.Name, prev)}
				}
				custom[key] = p.Source
				if _, ok := base.profiles[key]; ok {
					p.Source += " (overrides builtin)"
				} else if target, ok := base.aliases[key]; ok {
					p.Source += fmt.Sprintf(" (overrides builtin alias of %s)", target)
					delete(c.aliases, key)
				}
				c.profiles[key] = p.Profile
			}
		}
	}
	c.index()
	return c, nil
}

// skipFile reports whether a directory entry is not a profile file.
func skipFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return true
	}
	for _, suffix := range []string{
		"~", ".swp",
		".dpkg-old", ".dpkg-dist", ".dpkg-new", ".dpkg-tmp",
		".rpmnew", ".rpmsave",
		".ucf-old", ".ucf-new", ".ucf-dist",
	} {
		if strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// readFile reads a profile file. ok is false, with no error, when path is not
// a regular file (or a symbolic link to one) or has vanished.
func readFile(path string) (data []byte, ok bool, err error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil // dangling symbolic link, or removed meanwhile
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading application profiles: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, nil
	}
	tooBig := &ParseError{Path: path, Msg: fmt.Sprintf("file larger than %d bytes (1 MiB)", MaxFileSize)}
	if fi.Size() > MaxFileSize {
		return nil, false, tooBig
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, false, fmt.Errorf("reading application profiles: %w", err)
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, false, fmt.Errorf("reading application profiles: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, false, nil
	}
	data, err = io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, false, fmt.Errorf("reading application profiles: %w", err)
	}
	if len(data) > MaxFileSize {
		return nil, false, tooBig
	}
	return data, true, nil
}
