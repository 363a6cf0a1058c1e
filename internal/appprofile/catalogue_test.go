package appprofile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestBuiltinRequiredProfiles(t *testing.T) {
	want := map[string][]Port{
		"ssh":            {tcp(22, 22)},
		"http":           {tcp(80, 80)},
		"https":          {tcp(443, 443)},
		"www-full":       {tcp(80, 80), tcp(443, 443)},
		"dns":            {both(53, 53)},
		"ntp":            {udp(123, 123)},
		"smtp":           {tcp(25, 25)},
		"submission":     {tcp(587, 587)},
		"smtps":          {tcp(465, 465)},
		"imap":           {tcp(143, 143)},
		"imaps":          {tcp(993, 993)},
		"pop3":           {tcp(110, 110)},
		"pop3s":          {tcp(995, 995)},
		"mysql":          {tcp(3306, 3306)},
		"postgresql":     {tcp(5432, 5432)},
		"redis":          {tcp(6379, 6379)},
		"mongodb":        {tcp(27017, 27017)},
		"memcached":      {tcp(11211, 11211)},
		"elasticsearch":  {tcp(9200, 9200), tcp(9300, 9300)},
		"rabbitmq":       {tcp(5672, 5672)},
		"ldap":           {tcp(389, 389)},
		"ldaps":          {tcp(636, 636)},
		"ftp":            {tcp(21, 21)},
		"samba":          {tcp(139, 139), tcp(445, 445), udp(137, 137), udp(138, 138)},
		"nfs":            {tcp(2049, 2049)},
		"rdp":            {tcp(3389, 3389)},
		"vnc":            {tcp(5900, 5900)},
		"kubernetes-api": {tcp(6443, 6443)},
		"etcd":           {tcp(2379, 2380)},
		"prometheus":     {tcp(9090, 9090)},
		"node-exporter":  {tcp(9100, 9100)},
		"grafana":        {tcp(3000, 3000)},
		"wireguard":      {udp(51820, 51820)},
		"openvpn":        {udp(1194, 1194)},
		"ipsec":          {udp(500, 500), udp(4500, 4500)},
		"dhcp":           {udp(67, 67), udp(68, 68)},
		"snmp":           {udp(161, 161)},
		"syslog":         {udp(514, 514)},
		"mosh":           {udp(60000, 61000)},
		"bgp":            {tcp(179, 179)},
		"sip":            {both(5060, 5060)},
		"http-alt":       {tcp(8080, 8080)},
		"https-alt":      {tcp(8443, 8443)},
		"docker-api":     {tcp(2375, 2375), tcp(2376, 2376)},
		"mssql":          {tcp(1433, 1433)},
		"oracle":         {tcp(1521, 1521)},
		"cassandra":      {tcp(9042, 9042)},
		"zookeeper":      {tcp(2181, 2181)},
		"kafka":          {tcp(9092, 9092)},
		"nats":           {tcp(4222, 4222)},
		"minio":          {tcp(9000, 9000)},
		"couchdb":        {tcp(5984, 5984)},
		"influxdb":       {tcp(8086, 8086)},
	}
	c := Builtin()
	for name, ports := range want {
		p, ok := c.Lookup(name)
		if !ok {
			t.Errorf("builtin %q missing", name)
			continue
		}
		if p.Name != name || p.Source != SourceBuiltin {
			t.Errorf("Lookup(%q) = name %q source %q", name, p.Name, p.Source)
		}
		if diff := cmp.Diff(ports, p.Ports); diff != "" {
			t.Errorf("%s ports (-want +got):\n%s", name, diff)
		}
	}
}

func TestBuiltinWellFormed(t *testing.T) {
	list := Builtin().List()
	if len(list) < 50 {
		t.Fatalf("only %d builtin profiles", len(list))
	}
	for _, p := range list {
		if checkName(p.Name) != "" || strings.ToLower(p.Name) != p.Name {
			t.Errorf("builtin name %q is not a valid lower-case name", p.Name)
		}
		if p.Title == "" || p.Description == "" || strings.Contains(p.Description, "\n") {
			t.Errorf("builtin %q: title %q, description %q", p.Name, p.Title, p.Description)
		}
		if len(p.Ports) == 0 || p.Source != SourceBuiltin {
			t.Errorf("builtin %q: ports %v, source %q", p.Name, p.Ports, p.Source)
		}
	}
	if Builtin() != Builtin() {
		t.Error("Builtin returns a new catalogue each time")
	}
}

func TestBuildBuiltinRejectsBadDefinitions(t *testing.T) {
	for _, defs := range [][]builtinDef{
		{{"Upper", "t", "d", "1/tcp", nil}},
		{{"a", "t", "d", "1:2", nil}},
		{{"a", "t", "", "1/tcp", nil}},
		{{"a", "t", "d", "1/tcp", nil}, {"a", "t", "d", "2/tcp", nil}},
		{{"a", "t", "d", "1/tcp", []string{"b"}}, {"b", "t", "d", "2/tcp", nil}},
		{{"a", "t", "d", "1/tcp", []string{"Bad"}}},
	} {
		if _, err := buildBuiltin(defs); err == nil {
			t.Errorf("buildBuiltin(%v) succeeded", defs)
		}
	}
}

func TestLookup(t *testing.T) {
	c := Builtin()
	tests := []struct {
		in, want string // want "" for not found
	}{
		{"ssh", "ssh"},
		{"SSH", "ssh"},
		{"OpenSSH", "ssh"},
		{"openssh", "ssh"},
		{"OPENSSH", "ssh"},
		{"postgres", "postgresql"},
		{"PostgreSQL", "postgresql"},
		{"web", "www-full"},
		{"WWW Full", "www-full"},
		{"Www", "http"},
		{"smb", "samba"},
		{"node_exporter", "node-exporter"},
		{"sftp", ""},
		{"", ""},
		{" ssh", ""},
		{"\u212Aafka", ""}, // KELVIN SIGN must not fold to "k"
		{"22", ""},
	}
	for _, tt := range tests {
		p, ok := c.Lookup(tt.in)
		if ok != (tt.want != "") || p.Name != tt.want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", tt.in, p.Name, ok, tt.want)
		}
	}
}

func TestAliases(t *testing.T) {
	c := Builtin()
	if got, want := c.Aliases("SSH"), []string{"openssh"}; !slices.Equal(got, want) {
		t.Errorf("Aliases(SSH) = %q, want %q", got, want)
	}
	if got, want := c.Aliases("web"), []string{"web", "www full"}; !slices.Equal(got, want) {
		t.Errorf("Aliases(web) = %q, want %q", got, want)
	}
	if got := c.Aliases("redis"); got != nil {
		t.Errorf("Aliases(redis) = %q, want nil", got)
	}
	if got := c.Aliases("nope"); got != nil {
		t.Errorf("Aliases(nope) = %q, want nil", got)
	}
}

func TestListSorted(t *testing.T) {
	c, err := Load("testdata/ufw", "testdata/custom")
	if err != nil {
		t.Fatal(err)
	}
	list := c.List()
	if !sort.SliceIsSorted(list, func(i, j int) bool {
		return strings.ToLower(list[i].Name) < strings.ToLower(list[j].Name)
	}) {
		t.Error("List is not sorted by name")
	}
	seen := map[string]bool{}
	for _, p := range list {
		k := strings.ToLower(p.Name)
		if seen[k] {
			t.Errorf("List has %q twice", p.Name)
		}
		seen[k] = true
	}
}

func TestCatalogueImmutable(t *testing.T) {
	c := Builtin()
	p, _ := c.Lookup("ssh")
	p.Ports[0].First = 1
	p.Name = "changed"
	c.List()[0].Ports[0].First = 1
	if p, _ := c.Lookup("ssh"); p.Ports[0].First != 22 {
		t.Errorf("catalogue changed through Lookup's result: %v", p.Ports)
	}
	if got := Builtin().List()[0]; got.Ports[0].First == 1 {
		t.Errorf("catalogue changed through List's result: %v", got)
	}
}

func TestNilCatalogue(t *testing.T) {
	var c *Catalogue
	if _, ok := c.Lookup("ssh"); ok || c.List() != nil || c.Aliases("ssh") != nil {
		t.Error("nil catalogue is not empty")
	}
}

func TestLoad(t *testing.T) {
	c, err := Load("testdata/does-not-exist", "testdata/ufw", "testdata/custom", "")
	if err != nil {
		t.Fatal(err)
	}
	wantProfiles := map[string]Profile{
		"nginx full": {Name: "Nginx Full", Title: "Web Server (Nginx, HTTP + HTTPS)",
			Description: "Small, but very powerful and efficient web server",
			Ports:       []Port{tcp(80, 80), tcp(443, 443)}, Source: "testdata/ufw/nginx:11"},
		"Nginx QUIC": {Name: "Nginx QUIC", Title: "Web Server (Nginx, HTTP + HTTPS + HTTP/3)",
			Description: "Small, but very powerful and efficient web server",
			Ports:       []Port{tcp(80, 80), tcp(443, 443), udp(443, 443)}, Source: "testdata/ufw/nginx:16"},
		// Names beat aliases: ufw's OpenSSH shadows the builtin alias.
		"openssh": {Name: "OpenSSH", Title: "Secure shell server, an rshd replacement",
			Description: "OpenSSH is a free implementation of the Secure Shell protocol.",
			Ports:       []Port{tcp(22, 22)}, Source: "testdata/ufw/openssh-server:1 (overrides builtin alias of ssh)"},
		"cifs": {Name: "CIFS", Title: "SMB/CIFS server", Description: "Samba/CIFS server",
			Ports:  []Port{udp(137, 137), udp(138, 138), tcp(139, 139), tcp(445, 445)},
			Source: "testdata/ufw/ufw-fileserver:1 (overrides builtin alias of samba)"},
		"nfs": {Name: "NFS", Title: "NFS server", Description: "NFS server",
			Ports: []Port{both(2049, 2049)}, Source: "testdata/ufw/ufw-fileserver:6 (overrides builtin)"},
		// The builtin ssh is overridden, and so is what its remaining aliases reach.
		"ssh": {Name: "SSH", Title: "Secure Shell on port 2222",
			Description: "sshd moved off the default port; this replaces the builtin ssh profile.",
			Ports:       []Port{tcp(2222, 2222)}, Source: "testdata/custom/moat-local:4 (overrides builtin)"},
		"game server": {Name: "Game Server", Title: "Dedicated game server",
			Description: "Query port plus a block of game ports",
			Ports:       []Port{both(27015, 27015), udp(27000, 27030)}, Source: "testdata/custom/moat-local:10"},
		"METRICS.V2+BETA": {Name: "metrics.v2+beta", Title: "metrics.v2+beta",
			Ports:  []Port{tcp(9100, 9100), tcp(9101, 9101), tcp(9102, 9110)},
			Source: "testdata/custom/moat-local:15"},
		"redis": {Name: "redis", Title: "Redis", Description: "Redis key-value store.",
			Ports: []Port{tcp(6379, 6379)}, Source: "builtin"},
		"smb": {Name: "samba", Title: "Samba (SMB/CIFS)",
			Description: "Windows file and printer sharing: SMB (139, 445/tcp) and NetBIOS name and datagram services (137, 138/udp).",
			Ports:       []Port{tcp(139, 139), tcp(445, 445), udp(137, 137), udp(138, 138)}, Source: "builtin"},
	}
	for name, want := range wantProfiles {
		got, ok := c.Lookup(name)
		if !ok {
			t.Errorf("Lookup(%q) not found", name)
			continue
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Lookup(%q) (-want +got):\n%s", name, diff)
		}
	}
	if got := c.Aliases("samba"); !slices.Equal(got, []string{"smb"}) {
		t.Errorf("Aliases(samba) = %q; cifs should be gone", got)
	}
	if got, want := len(c.List()), len(Builtin().List())+8; got != want {
		t.Errorf("List has %d profiles, want %d", got, want)
	}
	// Loading did not touch the builtin catalogue.
	if p, _ := Builtin().Lookup("openssh"); p.Name != "ssh" || p.Ports[0].First != 22 {
		t.Errorf("Builtin changed by Load: %+v", p)
	}
	if p, _ := Builtin().Lookup("nfs"); p.Source != SourceBuiltin {
		t.Errorf("Builtin changed by Load: %+v", p)
	}
}

func TestLoadNoDirs(t *testing.T) {
	c, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Builtin().List(), c.List()); diff != "" {
		t.Errorf("Load() differs from Builtin (-want +got):\n%s", diff)
	}
}

func TestLoadErrors(t *testing.T) {
	dir2 := t.TempDir()
	copyFile(t, "testdata/ufw/nginx", filepath.Join(dir2, "nginx-copy"))
	tests := []struct {
		name string
		dirs []string
		path string
		line int
		msg  string
	}{
		{"parse error", []string{"testdata/bad"}, "testdata/bad/broken", 7, `port range "6000:7000" needs a protocol (/tcp or /udp)`},
		{"duplicate across files", []string{"testdata/dup"}, "testdata/dup/b", 3,
			`profile "THING" already defined at testdata/dup/a:1`},
		{"duplicate across directories", []string{"testdata/ufw", "testdata/custom", dir2}, filepath.Join(dir2, "nginx-copy"), 1,
			`profile "Nginx HTTP" already defined at testdata/ufw/nginx:1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.dirs...)
			if err == nil {
				t.Fatalf("Load succeeded: %d profiles", len(c.List()))
			}
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error %v is not a *ParseError", err)
			}
			if pe.Path != tt.path || pe.Line != tt.line || pe.Msg != tt.msg {
				t.Errorf("error = %q, want %s:%d: %s", err, tt.path, tt.line, tt.msg)
			}
		})
	}
}

func TestLoadSameDirTwice(t *testing.T) {
	if _, err := Load("testdata/ufw", "testdata/ufw/", "./testdata/ufw"); err != nil {
		t.Errorf("Load of one directory under several spellings: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, to, string(data))
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLoadSkipsFiles(t *testing.T) {
	dir := t.TempDir()
	const prof = "[Thing]\nports=1/tcp\n"
	writeFile(t, filepath.Join(dir, "thing"), prof)
	// Each of these would be a duplicate (or garbage) if it were read.
	for _, name := range []string{
		"thing~", "thing.dpkg-old", "thing.dpkg-dist", "thing.dpkg-new", "thing.dpkg-tmp",
		"thing.swp", ".thing.swp", ".hidden", "thing.rpmnew", "thing.rpmsave",
		"thing.ucf-old", "thing.ucf-new", "thing.ucf-dist",
	} {
		writeFile(t, filepath.Join(dir, name), prof)
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "subdir", "thing"), prof)
	if err := os.Symlink("nowhere", filepath.Join(dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("subdir", filepath.Join(dir, "dirlink")); err != nil {
		t.Fatal(err)
	}
	// A symbolic link to a regular file is read.
	other := filepath.Join(t.TempDir(), "other")
	writeFile(t, other, "[Other]\nports=2/udp\n")
	if err := os.Symlink(other, filepath.Join(dir, "other-link")); err != nil {
		t.Fatal(err)
	}

	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := c.Lookup("thing"); !ok || p.Source != filepath.Join(dir, "thing")+":1" {
		t.Errorf("Lookup(thing) = %+v, %v", p, ok)
	}
	if p, ok := c.Lookup("other"); !ok || p.Source != filepath.Join(dir, "other-link")+":1" {
		t.Errorf("Lookup(other) = %+v, %v", p, ok)
	}
}

func TestLoadReadOrder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "b"), "[X]\nports=2/tcp\n")
	writeFile(t, filepath.Join(dir, "a"), "[x]\nports=1/tcp\n")
	_, err := Load(dir)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Path != filepath.Join(dir, "b") || !strings.Contains(pe.Msg, filepath.Join(dir, "a")+":1") {
		t.Errorf("Load error = %v, want duplicate reported in b naming a", err)
	}
}

func TestLoadTooBig(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big")
	writeFile(t, path, "[A]\nports=1/tcp\n"+strings.Repeat("#", MaxFileSize))
	_, err := Load(dir)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Path != path || pe.Line != 0 || !strings.Contains(pe.Msg, "larger than") {
		t.Errorf("Load error = %v, want file too large", err)
	}

	// Exactly the limit is fine.
	content := "[A]\nports=1/tcp\n"
	writeFile(t, path, content+strings.Repeat("#", MaxFileSize-len(content)))
	if _, err := Load(dir); err != nil {
		t.Errorf("Load of a file of exactly 1 MiB: %v", err)
	}
}

func TestLoadUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root can read files without read permission")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	writeFile(t, path, "[A]\nports=1/tcp\n")
	if err := os.Chmod(path, 0); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("Load error = %v, want permission denied", err)
	}

	locked := filepath.Join(t.TempDir(), "locked")
	if err := os.Mkdir(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })
	if _, err := Load(locked); !errors.Is(err, os.ErrPermission) {
		t.Errorf("Load of unreadable directory: error = %v, want permission denied", err)
	}
}

func TestLoadNotADirectory(t *testing.T) {
	if _, err := Load("testdata/ufw/nginx"); err == nil {
		t.Error("Load of a regular file as a directory succeeded")
	}
}

func TestOverrideKeepsAliases(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sshd"), "[Ssh]\ntitle=sshd on 2222\nports=2222/tcp\n")
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ssh", "SSH", "OpenSSH"} {
		p, ok := c.Lookup(name)
		want := Profile{Name: "Ssh", Title: "sshd on 2222", Ports: []Port{tcp(2222, 2222)},
			Source: filepath.Join(dir, "sshd") + ":1 (overrides builtin)"}
		if diff := cmp.Diff(want, p); !ok || diff != "" {
			t.Errorf("Lookup(%q) (-want +got):\n%s", name, diff)
		}
	}
	if got := c.Aliases("ssh"); !slices.Equal(got, []string{"openssh"}) {
		t.Errorf("Aliases(ssh) = %q", got)
	}
	if got, want := len(c.List()), len(Builtin().List()); got != want {
		t.Errorf("List has %d profiles, want %d", got, want)
	}
}
