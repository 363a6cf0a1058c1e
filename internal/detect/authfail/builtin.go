package authfail

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
)

// A builtin filter: its prefix and, per mode, its rules and ignoreregex.
type builtinDef struct {
	prefix   string
	strip    [][]string
	rootOnly bool
	modes    map[string]modeDef
}

type modeDef struct {
	rules  []ruleSpec
	ignore []string
}

var (
	builtinOnce sync.Once
	builtins    map[string]builtinDef
	builtCache  sync.Map // "name\x00mode" -> *Filter
)

// BuiltinNames lists the built-in filters.
func BuiltinNames() []string {
	builtinOnce.Do(initBuiltins)
	names := make([]string, 0, len(builtins))
	for n := range builtins {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// BuiltinModes lists a built-in filter's modes.
func BuiltinModes(name string) []string {
	builtinOnce.Do(initBuiltins)
	d, ok := builtins[name]
	if !ok {
		return nil
	}
	modes := make([]string, 0, len(d.modes))
	for m := range d.modes {
		modes = append(modes, m)
	}
	sort.Strings(modes)
	return modes
}

// Builtin returns a built-in filter in a mode ("" is "normal"). The
// library covers sshd (modes normal, ddos, extra, aggressive),
// nginx-http-auth, nginx-limit-req, nginx-botsearch, apache-auth,
// apache-badbots, apache-noscript, apache-overflows, apache-botsearch,
// postfix, dovecot, vsftpd, proftpd, pure-ftpd, mysqld-auth and recidive.
// The patterns are written for RE2 from the daemons' log formats; every
// attacker-written field (user names, URLs, user agents, ident strings,
// e-mail addresses, reverse-DNS names) is matched so that an address in it
// is never taken: the address comes from daemon-written text around it.
func Builtin(name, mode string) (*Filter, error) {
	builtinOnce.Do(initBuiltins)
	if mode == "" {
		mode = "normal"
	}
	key := name + "\x00" + mode
	if f, ok := builtCache.Load(key); ok {
		return f.(*Filter), nil
	}
	d, ok := builtins[name]
	if !ok {
		return nil, fmt.Errorf("authfail: no builtin filter %q (have %s)", name, strings.Join(BuiltinNames(), ", "))
	}
	md, ok := d.modes[mode]
	if !ok {
		return nil, fmt.Errorf("authfail: builtin filter %q has no mode %q (have %s)", name, mode, strings.Join(BuiltinModes(name), ", "))
	}
	f, err := build(name, mode, d.prefix, md.rules, md.ignore, true)
	if err != nil {
		return nil, fmt.Errorf("authfail: builtin filter %q mode %q: %w", name, mode, err)
	}
	if f.prefix != nil {
		f.prefix.strip = d.strip
	}
	f.rootOnly = d.rootOnly
	got, _ := builtCache.LoadOrStore(key, f)
	return got.(*Filter), nil
}

func cat(parts ...[]ruleSpec) []ruleSpec {
	var out []ruleSpec
	for _, p := range parts {
		out = append(out, p...)
	}
	return slices.Clip(out)
}

func fail(label, pattern string) ruleSpec {
	return ruleSpec{label: label, pattern: pattern, kind: kindFail}
}

func initBuiltins() {
	builtins = map[string]builtinDef{
		"sshd":             sshdDef(),
		"nginx-http-auth":  nginxHTTPAuthDef(),
		"nginx-limit-req":  nginxLimitReqDef(),
		"nginx-botsearch":  nginxBotsearchDef(),
		"apache-auth":      apacheAuthDef(),
		"apache-badbots":   apacheBadbotsDef(),
		"apache-noscript":  apacheNoscriptDef(),
		"apache-overflows": apacheOverflowsDef(),
		"apache-botsearch": apacheBotsearchDef(),
		"postfix":          postfixDef(),
		"dovecot":          dovecotDef(),
		"vsftpd":           vsftpdDef(),
		"proftpd":          proftpdDef(),
		"pure-ftpd":        pureFTPdDef(),
		"mysqld-auth":      mysqldAuthDef(),
		"recidive":         recidiveDef(),
	}
}

// ---- sshd ----------------------------------------------------------------

// sshd's user name is whatever the client sent (spaces included), and so
// are the ident string and, for hostbased authentication, the client user
// and host. Every rule that has such a field before <HOST> is end-anchored
// with a fixed suffix after it, so the address is the daemon's last
// " from <HOST> port N ssh2".
//
// Multi-line semantics (a Session): helper rules (kind helper) are not
// failures by themselves. They tell the connection (syslog host, tag and
// pid) its address and user. A failure without an address (hostless) is
// held until the connection's address is known. soft helpers (a PAM
// failure, a failed public key) become a failure when the connection has
// tried more than one user name and no failure has been counted for it
// (gained: the same for a success). forget ends the connection.
func sshdDef() builtinDef {
	const (
		port    = `(?: port \d+)?`
		preauth = `(?: \[preauth\])?`
		end     = `\s*$`
		users   = `(?:(?:invalid|authenticating) user (?P<user>.*) )?`
	)
	helper := func(label, p string, forget bool, fast fastFunc) ruleSpec {
		return ruleSpec{label: "sshd/" + label, pattern: p, kind: kindHelper, forget: forget, fast: fast}
	}
	f := func(label, p string) ruleSpec { return fail("sshd/"+label, p) }
	hostless := func(label, p string, forget bool) ruleSpec {
		return ruleSpec{label: "sshd/" + label, pattern: p, kind: kindFail, hostless: true, forget: forget}
	}
	withFast := func(r ruleSpec, fast fastFunc) ruleSpec { r.fast = fast; return r }
	withForget := func(r ruleSpec) ruleSpec { r.forget = true; return r }

	common := []ruleSpec{
		f("authentication-failure", `^Authentication (?:failure|error|failed) for (?P<user>.*) from <HOST>(?: via \S+)?`+port+preauth+end),
		f("authentication-failure-lc", `^authentication (?:failure|error|failed) for (?P<user>.*) from <HOST>(?: via \S+)?`+port+preauth+end),
		f("pam-user-unknown", `^User not known to the underlying authentication module for (?P<user>.*) from <HOST>`+port+preauth+end),
		f("failed-publickey-invalid-user", `^Failed publickey for invalid user (?P<user>.*) from <HOST>`+port+`(?: ssh\d*)?(?:: \S+ \S+)?`+end),
		{label: "sshd/failed-publickey", pattern: `^Failed publickey for (?P<user>.*) from <HOST>` + port + `(?: ssh\d*)?(?:: \S+ \S+)?` + end, kind: kindHelper, soft: true},
		f("failed-hostbased", `^Failed hostbased for (?:invalid user )?(?P<user>.*) from <HOST>`+port+`(?: ssh\d*)?: \S+ \S+, client user "[^"\s]*", client host "[^"\s]*"`+end),
		withFast(f("failed", `^Failed \S+ for (?:invalid user )?(?P<user>.*) from <HOST>`+port+`(?: ssh\d*)?`+end), fastSSHDFailed),
		f("root-login-refused", `^ROOT LOGIN REFUSED FROM <HOST>`+port+preauth+end),
		withFast(f("invalid-user", `^Invalid user (?P<user>.*) from <HOST>`+port+preauth+end), fastSSHDInvalidUser),
		f("invalid-user-lc", `^invalid user (?P<user>.*) from <HOST>`+port+preauth+end),
		f("illegal-user", `^Illegal user (?P<user>.*) from <HOST>`+port+preauth+end),
		f("illegal-user-lc", `^illegal user (?P<user>.*) from <HOST>`+port+preauth+end),
		f("user-not-allowed", `^User (?P<user>.*) from <HOST> not allowed because (?:not listed in AllowUsers|listed in DenyUsers|not in any group|a group is listed in DenyGroups|none of user's groups are listed in AllowGroups)`+preauth+end),
		f("refused-connect", `^refused connect from \S+ \(<HOST>\)`+end),
		withFast(withForget(f("auth-fail-disconnect", `^Received disconnect from <HOST>`+port+`:\s*3: .*: Auth fail`+preauth+end)), fastSSHDDisconnect("")),
		withFast(ruleSpec{label: "sshd/pam-authentication-failure", pattern: `^pam_[a-z]+\(sshd:auth\):\s+authentication failure;\s+logname=\S*\s+uid=\S*\s+euid=\S*\s+tty=\S*\s+ruser=(?P<alt>.*)\s+rhost=<HOST>(?:\s+user=(?P<user>\S*))?` + preauth + end, kind: kindHelper, soft: true}, fastSSHDPam),
		f("max-auth-attempts", `^maximum authentication attempts exceeded for (?:invalid user )?(?P<user>.*) from <HOST>`+port+`(?: ssh\d*)?`+preauth+end),
		hostless("account-locked", `^User (?P<user>.*) not allowed because account is locked`+preauth+end, false),
		withForget(f("change-of-username", `^Disconnecting (?:invalid|authenticating) user (?P<user>\S+) <HOST>`+port+`:\s*Change of username or service not allowed:.*\[preauth\]`+end)),
		hostless("too-many-auth-failures", `^Disconnecting: Too many authentication failures(?: for (?P<user>.*?))?`+preauth+end, false),
		helper("too-many-auth-failures-helper", `^Disconnecting (?:invalid|authenticating) user (?P<user>\S+) <HOST>`+port+`: Too many authentication failures`+preauth+end, false, nil),
		helper("disconnect-11", `^Received disconnect from <HOST>`+port+`:\s*11:`, true, fastSSHDDisconnect("11")),
	}
	closers := []struct{ label, lit string }{
		{"connection-closed", "Connection closed by "},
		{"connection-reset", "Connection reset by "},
		{"disconnected", "Disconnected from "},
	}
	var closedHelpers, closedPreauth []ruleSpec
	for _, c := range closers {
		closedHelpers = append(closedHelpers, helper(c.label, `^`+regexp.QuoteMeta(c.lit)+users+`<HOST>`+port+preauth+end, true, fastSSHDClosed(c.lit, false)))
		closedPreauth = append(closedPreauth, withFast(withForget(f(c.label+"-preauth", `^`+regexp.QuoteMeta(c.lit)+users+`<HOST>`+port+`\s+\[preauth\]`+end)), fastSSHDClosed(c.lit, true)))
	}
	tail := []ruleSpec{
		{label: "sshd/accepted", pattern: `^Accepted \S+ for (?P<user>\S+) from <HOST>(?:\s|$)`, kind: kindHelper, gained: true, forget: true, fast: fastSSHDAccepted},
		helper("connection-from", `^Connection from <HOST>(?: |$)`, false, fastSSHDConnectionFrom),
	}
	ddos := []ruleSpec{
		f("no-identification", `^Did not receive identification string from <HOST>`+port+end),
		hostless("kex-identification", `^kex_exchange_identification: (?:read: )?(?:[Cc]lient sent invalid protocol identifier|[Cc]onnection (?:closed by remote host|reset by peer))`, false),
		f("bad-protocol-version", `^Bad protocol version identification '.*' from <HOST>`+port+end),
		helper("ssh-ltype", `^SSH: Server;Ltype: (?:Authname|Version|Kex);Remote: <HOST>-\d+;[A-Z]\w+:`, false, nil),
		hostless("read-reset", `^Read from socket failed: Connection reset by peer`, true),
		f("banner-exchange", `^banner exchange: Connection from <HOST>`+port+`: invalid format`),
		f("dispatch-fatal", `^ssh_dispatch_run_fatal: Connection from <HOST>`+port+`: (?:message authentication code incorrect|Connection corrupted)`+preauth+end),
		f("timeout-before-auth", `^Timeout before authentication for (?:connection from )?<HOST>(?: port \d+| to \S+, pid = \d+)?`+end),
	}
	extra := []ruleSpec{
		withFast(withForget(f("no-auth-methods", `^Received disconnect from <HOST>`+port+`:\s*14: No(?: supported)? authentication methods available`)), fastSSHDDisconnect("")),
		f("negotiate-with", `^Unable to negotiate with <HOST>`+port+`: no matching (?:\w+ ){0,2}\w+ found\.`),
		hostless("negotiate", `^Unable to negotiate a (?:\w+ ){0,2}\w+`, false),
		hostless("no-matching", `^no matching (?:\w+ ){0,2}\w+ found:`, false),
	}
	extraOther := []ruleSpec{
		withForget(f("disconnected-user-preauth", `^Disconnected from (?:invalid|authenticating) user (?P<user>\S+) <HOST>`+port+` \[preauth\]`+end)),
	}
	return builtinDef{
		prefix:   `<SYSLOG:sshd|sshd-session|sshd-auth>`,
		strip:    [][]string{{"error: ", "fatal: "}, {"PAM: "}},
		rootOnly: true,
		modes: map[string]modeDef{
			"normal":     {rules: cat(common, closedHelpers, tail)},
			"ddos":       {rules: cat(common, ddos, closedPreauth, closedHelpers, tail)},
			"extra":      {rules: cat(common, extra, extraOther, closedHelpers, tail)},
			"aggressive": {rules: cat(common, ddos, extra, closedPreauth, closedHelpers, tail)},
		},
	}
}

// ---- nginx ---------------------------------------------------------------

// nginx error-log lines put the attacker's user name before "client:" and
// the request, Host and Referer after it, so both sides are hostile: the
// rules are end-anchored, and the fields after the address are \S+ (a
// request line or header with a space does not match).
const nginxErrorPrefix = `<SYSLOG?:nginx>(?:\S+ nginx: )?\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(?:emerg|alert|crit|error|warn|notice|info)\] \d+#\d+: \*\d+ `

const nginxTail = `, client: <HOST>, server: \S*(?:, request: "\S+ \S+ HTTP/\d(?:\.\d)?")?(?:, upstream: "\S+")?(?:, host: "\S+")?(?:, referrer: "\S+")?\s*$`

func nginxHTTPAuthDef() builtinDef {
	auth := []ruleSpec{
		fail("nginx-http-auth/user", `^user "(?P<user>.*)":? (?:password mismatch|was not found in "[^"]*")`+nginxTail),
		fail("nginx-http-auth/pam", `^PAM: user '(?P<user>.*)' - not authenticated: Authentication failure`+nginxTail),
	}
	fallback := []ruleSpec{
		fail("nginx-http-auth/ssl", `^SSL_\w+\(\) failed \(SSL: .*\) while (?:SSL handshaking|waiting for request), client: <HOST>, server: \S+\s*$`),
	}
	return builtinDef{
		prefix: nginxErrorPrefix,
		modes: map[string]modeDef{
			"normal":     {rules: auth},
			"auth":       {rules: auth},
			"fallback":   {rules: fallback},
			"aggressive": {rules: cat(auth, fallback)},
		},
	}
}

func nginxLimitReqDef() builtinDef {
	return builtinDef{
		prefix: nginxErrorPrefix,
		modes: map[string]modeDef{"normal": {rules: []ruleSpec{
			fail("nginx-limit-req/limit", `^(?:limiting|delaying) (?:requests?|connections?)(?:, excess: [\d.]+,?)? by zone "[^"]*"`+nginxTail),
		}}},
	}
}

// The paths bots probe for.
const botBlock = `(?:roundcube|(?:ext)?mail|horde|(?:v-?)?webmail|(?:typo3/|xampp/|admin/)?(?:pma|(?:php)?[Mm]y[Aa]dmin)|wp-(?:login|signup|admin)\.php|cgi-bin|mysqladmin)`

// accessHead is the start of a common/combined access-log line: an
// optional virtual host (a name: it cannot look like an address), then the
// client address, which the server writes first.
const accessHead = `^(?:[A-Za-z][\w.-]*(?::\d+)? )?<HOST> \S+ \S+ \[[^\]]+\] `

func nginxBotsearchDef() builtinDef {
	return builtinDef{
		prefix: `<SYSLOG?:nginx>`,
		modes: map[string]modeDef{"normal": {rules: []ruleSpec{
			fail("nginx-botsearch/access", accessHead+`"(?:GET|POST|HEAD) /+`+botBlock+`[^"\s]* HTTP/\d(?:\.\d)?" 404 `),
			fail("nginx-botsearch/error", `^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[error\] \d+#\d+: \*\d+ (?:open\(\) "[^"]*" failed|"[^"]*" is not found) \(2: No such file or directory\), client: <HOST>, server: \S*, request: "(?:GET|POST|HEAD) /+`+botBlock+`\S* HTTP/\d(?:\.\d)?", host: "\S+"(?:, referrer: "\S+")?\s*$`),
		}}},
	}
}

// ---- apache --------------------------------------------------------------

// The error-log header ("[time] [module:level] [pid N:tid M] [client IP:port]
// AHnnnnn: ") is daemon-written and the client address comes before any
// attacker text, so the rules are start-anchored on it (CVE-2013-2178 was
// an unanchored "[client <HOST>] user .* not found" that matched a copy
// inside the URL).
const apachePrefix = `<SYSLOG?:(?:httpd|apache2?)(?:/[\w.-]+)?>(?:\[[A-Z][a-z]{2} [A-Z][a-z]{2} \d{1,2} \d{1,2}:\d\d:\d\d(?:\.\d+)? \d{4}\] )?`

const apacheHead = `^\[(?:[\w-]*:)?\w+\] (?:\[pid \d+(?::tid \d+)?\] )?\[(?:client|remote) <HOST>(?::\d+)?\] (?:AH\d+: )?`

func apacheAuthDef() builtinDef {
	rules := []ruleSpec{
		fail("apache-auth/user-not-found", apacheHead+`(?:Digest: )?user (?:.*) not found(?::|,|$)`),
		fail("apache-auth/auth-failure", apacheHead+`user .*: (?:authentication|authorization) failure for "`),
		fail("apache-auth/password-mismatch", apacheHead+`(?:Digest: )?user .*: password mismatch`),
		fail("apache-auth/denied", apacheHead+`client denied by server configuration`),
		fail("apache-auth/wrong-scheme", apacheHead+`client used wrong authentication scheme`),
		fail("apache-auth/authz-owner", apacheHead+`Authorization of user .* to access .* failed, reason: `),
		fail("apache-auth/digest-realm-user", apacheHead+"(?:Digest: )?user `.*' in realm `.*' not found"),
		fail("apache-auth/digest-qop", apacheHead+"(?:Digest: )?invalid qop `.*' received"),
		fail("apache-auth/digest-nonce", apacheHead+`(?:Digest: )?invalid nonce \S+ received - (?:length is not \d+|user attempted time travel)`),
		fail("apache-auth/digest-realm", apacheHead+"(?:Digest: )?realm mismatch - got `.*' but expected `"),
		fail("apache-auth/digest-algorithm", apacheHead+"(?:Digest: )?unknown algorithm `.*' received"),
		fail("apache-auth/sni", apacheHead+`(?:Hostname \S+ provided via SNI(?:,| and hostname \S+ provided via HTTP) (?:but no hostname provided in HTTP request|have no compatible SSL setup)|No hostname was provided via SNI for a name based virtual host)`),
	}
	return builtinDef{
		prefix: apachePrefix,
		modes: map[string]modeDef{
			// mod_evasive denials are rate limits, not authentication failures
			"normal":     {rules: rules, ignore: []string{`^\[evasive\d*:`}},
			"aggressive": {rules: rules},
		},
	}
}

// User agents of spam and e-mail harvesting bots (a list kept short on
// purpose: well-known offenders only).
var badBots = []string{
	"TrackBack/1.02", "Atomic_Email_Hunter", "atSpider", "autoemailspider", "bwh3_user_agent",
	"China Local Browse 2.6", "ContactBot", "ContentSmartz", "DataCha0s", "DBrowse", "Demo Bot",
	"EmailCollector", "EmailSiphon", "EmailWolf", "Extractorpro", "Franklin Locator",
	"Full Web Bot", "Guestbook Auto Submitter", "Industry Program", "ISC Systems iRc Search",
	"IUPUI Research Bot", "LARBIN-EXPERIMENTAL", "LetsCrawl.com", "Mac Finder", "Missigua Locator",
	"NameOfAgent", "NICErsPRO", "Production Bot", "Program Shareware", "Shai", "SiteBot",
	"Snapbot", "Snoopy", "SurveyBot", "WebVulnCrawl", "WebVulnScan", "Wells Search II",
	"WEP Search 00", "sqlmap", "Nikto", "masscan", "zgrab", "Morfeus Fucking Scanner",
}

func apacheBadbotsDef() builtinDef {
	names := make([]string, len(badBots))
	for i, b := range badBots {
		names[i] = regexp.QuoteMeta(b)
	}
	return builtinDef{
		modes: map[string]modeDef{"normal": {rules: []ruleSpec{
			fail("apache-badbots/agent", accessHead+`"(?:GET|POST|HEAD) [^"\s]* HTTP/\d(?:\.\d)?" \d{3} \S+ "(?:[^"\\]|\\.)*" "(?:`+strings.Join(names, "|")+`)(?:[/ ][^"]*)?"\s*$`),
		}}},
	}
}

const noScript = `/\S*(?:php(?:[45]|[.-]cgi)?|\.asp|\.exe|\.pl|cgi-bin/)`

func apacheNoscriptDef() builtinDef {
	return builtinDef{
		prefix: apachePrefix,
		modes: map[string]modeDef{"normal": {rules: []ruleSpec{
			fail("apache-noscript/not-found", apacheHead+`(?:[Ff]ile does not exist|script not found or unable to stat): `+noScript),
			fail("apache-noscript/script", apacheHead+`script '`+noScript+`\S*' not found or unable to stat`),
			fail("apache-noscript/stderr", apacheHead+`stderr from /\S*: script not found or unable to stat`),
			fail("apache-noscript/fcgi", apacheHead+`Got error '[Pp]rimary script unknown(?:\\n)?'`),
		}}},
	}
}

func apacheOverflowsDef() builtinDef {
	return builtinDef{
		prefix: apachePrefix,
		modes: map[string]modeDef{"normal": {rules: []ruleSpec{
			fail("apache-overflows/request", apacheHead+`(?:Invalid (?:method|URI) in request|request failed: (?:URI too long|erroneous characters after protocol string)|invalid URI path)`),
		}}},
	}
}

func apacheBotsearchDef() builtinDef {
	const webroot = `/var/www/`
	return builtinDef{
		prefix: apachePrefix,
		modes: map[string]modeDef{"normal": {rules: []ruleSpec{
			fail("apache-botsearch/not-found", apacheHead+`(?:File does not exist|script not found or unable to stat): `+webroot+botBlock),
			fail("apache-botsearch/script", apacheHead+`script '`+webroot+botBlock+`[^']*' not found or unable to stat`),
		}}},
	}
}

// ---- postfix -------------------------------------------------------------

// Postfix writes the client as name[address]; the name is the reverse DNS
// name (attacker-chosen, but validated by postfix) and matched as
// [^\s\[\]]* so it cannot hold a fake "[192.0.2.66]" (CVE-2013-7176).
const pfClient = `[^\s\[\]]*\[<HOST>\](?::\d+)?`

func postfixDef() builtinDef {
	normal := []ruleSpec{
		fail("postfix/reject", `^(?:NOQUEUE|[0-9A-Za-z]+): (?:milter-)?reject: [A-Z]+ from `+pfClient+`: [45][50][0-9] [45]\.\d\.\d+ (?:(?:<[^>]*>)?: )?(?:(?:Helo command|(?:Sender|Recipient) address) rejected: )?(?:Service unavailable|Access denied|(?:Client host|Command|Data command) rejected|Relay access denied|(?:Host|Domain) not found|need fully-qualified hostname|match\b|[Uu]ser unknown|[Uu]ndeliverable address|Malformed DNS server reply)`),
		fail("postfix/pipelining", `^improper command pipelining after \S+ from `+pfClient+`:?`),
		fail("postfix/too-many-errors", `^too many errors after \S+ from `+pfClient),
	}
	errors := []ruleSpec{normal[2]}
	rbl := []ruleSpec{
		fail("postfix/rbl", `^(?:NOQUEUE|[0-9A-Za-z]+): reject: RCPT from `+pfClient+`: [45]54 [45]\.7\.1 Service unavailable; Client host \[\S+\] blocked\b`),
	}
	auth := []ruleSpec{
		fail("postfix/sasl", `^warning: `+pfClient+`: SASL (?i:LOGIN|PLAIN|(?:CRAM|DIGEST)-MD5) authentication failed:`),
	}
	authIgnore := []string{`: SASL \S+ authentication failed: (?:Connection lost to authentication server|Invalid authentication mechanism)`}
	aggrIgnore := []string{`: SASL \S+ authentication failed: Connection lost to authentication server`, `^(?:NOQUEUE: )?lost connection after (?:DATA|AUTH)\b`}
	ddos := []ruleSpec{
		fail("postfix/disconnect-auth", `^disconnect from `+pfClient+`(?: [a-z]+=\d+(?:/\d+)?)* auth=0/[1-9]\d*`),
		fail("postfix/lost-connection", `^(?:NOQUEUE: )?lost connection after [A-Z-]+ from `+pfClient),
		fail("postfix/postscreen", `^(?:PREGREET \d+|HANGUP) after \S+ from \[<HOST>\]:\d+`),
		fail("postfix/postscreen-limit", `^COMMAND (?:TIME|COUNT|LENGTH) LIMIT from \[<HOST>\]:\d+`),
		fail("postfix/rate-limit", `^warning: (?:Connection|Message delivery request) rate limit exceeded: \d+ from `+pfClient+` for service \S+`),
	}
	ddosIgnore := []string{`^(?:NOQUEUE: )?lost connection after (?:DATA|AUTH)\b`}
	aggrOnly := []ruleSpec{
		fail("postfix/not-resolve", `^warning: hostname [^\s\[\]]+ does not resolve to address <HOST>(?:: |$)`),
	}
	return builtinDef{
		prefix: `<SYSLOG:postfix(?:-\w+)?(?:/[\w-]+)*/(?:smtpd|postscreen)>`,
		modes: map[string]modeDef{
			"normal":     {rules: normal},
			"more":       {rules: normal},
			"rbl":        {rules: rbl},
			"errors":     {rules: errors},
			"auth":       {rules: auth, ignore: authIgnore},
			"extra":      {rules: cat(auth, normal), ignore: authIgnore},
			"ddos":       {rules: ddos, ignore: ddosIgnore},
			"aggressive": {rules: cat(auth, normal, ddos, aggrOnly), ignore: aggrIgnore},
		},
	}
}

// ---- dovecot -------------------------------------------------------------

// dovecot logs the attempted user name as user=<…> with control characters
// removed but nothing escaped, so a user name can hold ">, rip=192.0.2.66,";
// the login rules use lint exception (c): the address is the one after the
// last "rip=", and a line with another "rip=" after it is refused. The
// rest of such a line (local address, TLS state, session id) is written by
// dovecot.
const dovecotPrefix = `(?:@[0-9a-f]{24} |[A-Z][a-z]{2} +\d{1,2} \d{1,2}:\d\d:\d\d |\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d\S* )?(?:[\w.-]+ )?(?:dovecot(?:\[\d+\])?: |dovecot-auth: )?(?:dovecot: )?(?:auth(?:-worker)?(?:\([^()\s]*\))?: )?(?:(?:pop3|imap|managesieve|submission|lmtp)-login: )?(?:Info: )?(?:conn unix:auth-worker \([^()\s]*\): auth-worker<\d+>: )?`

func dovecotDef() builtinDef {
	login := func(label, reasons string) ruleSpec {
		return ruleSpec{
			label:   "dovecot/" + label,
			pattern: `^(?:Aborted login|Disconnected|Remote closed connection|Client has quit the connection|Login aborted)(?::.*?)? \((?:` + reasons + `)\)(?: \(\w+\))?: (?:user=<(?P<user>.*)>, )?(?:method=\S+, )?rip=<HOST>(?:, |$)`,
			kind:    kindFail,
			anchor:  "rip=",
		}
	}
	normal := []ruleSpec{
		fail("dovecot/pam-unix", `^pam_unix\(dovecot:auth\):\s+authentication failure;\s+logname=\S*\s+uid=\S*\s+euid=\S*\s+tty=\S*\s+ruser=(?P<alt>.*)\s+rhost=<HOST>(?:\s+user=(?P<user>\S*))?\s*$`),
		login("login", `auth failed, \d+ attempts(?: in \d+ secs)?|tried to use (?:disabled|disallowed) \S+ auth|proxy dest auth failed`),
		fail("dovecot/pam-authenticate", `^pam\((?P<user>[^()\s]*),<HOST>(?:,[^()\s]*)?\): pam_authenticate\(\) failed: (?:User not known to the underlying authentication module: \d+ Time\(s\)|Authentication failure \([Pp]assword mismatch\?\)|Permission denied)\s*$`),
		fail("dovecot/passdb", `^[a-z-]{3,15}\((?P<user>[^()\s]*),<HOST>(?:,[^()\s]*)?\): (?:[Uu]nknown user|[Ii]nvalid credentials|[Pp]assword mismatch)`),
		fail("dovecot/passdb-2.4", `^auth\((?P<user>[^()\s]*),<HOST>,[^()\s]*\)<[^<>\s]*>: Info: \w+: (?:[Pp]assword mismatch|[Uu]nknown user|[Ii]nvalid credentials)`),
	}
	aggressive := []ruleSpec{
		login("no-auth", `no auth attempts(?: in \d+ secs)?|disconnected before auth was ready, waited \d+ secs|client didn't finish \S+ auth, waited \d+ secs|disconnected during TLS handshake`),
	}
	return builtinDef{
		prefix: dovecotPrefix,
		modes: map[string]modeDef{
			"normal":     {rules: normal},
			"aggressive": {rules: cat(normal, aggressive)},
		},
	}
}

// ---- FTP -----------------------------------------------------------------

func vsftpdDef() builtinDef {
	return builtinDef{
		prefix:   `<SYSLOG?:vsftpd(?:\(pam_unix\))?>(?:[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4} )?`,
		rootOnly: true,
		modes: map[string]modeDef{"normal": {rules: []ruleSpec{
			fail("vsftpd/pam", `^(?:\(pam_unix\) |pam_unix\(vsftpd:auth\): )?authentication failure; logname=\S* uid=\S* euid=\S* tty=\S* ruser=(?P<alt>.*) rhost=<HOST>(?:\s+user=(?P<user>\S*))?\s*$`),
			fail("vsftpd/fail-login", `^(?:\[pid \d+\] )?\[(?P<user>.*)\] FAIL LOGIN: Client "<HOST>"(?:, "User is not in the allow user list\.")?\s*$`),
		}}},
	}
}

func proftpdDef() builtinDef {
	return builtinDef{
		prefix:   `<SYSLOG:proftpd>`,
		rootOnly: true,
		modes: map[string]modeDef{"normal": {rules: []ruleSpec{
			fail("proftpd/failure", `^\S+ \([^\s\[\]()]*\[<HOST>\]\)(?::| -) (?:USER .*(?: \(Login failed\):|: no such user found from)|SECURITY VIOLATION: [Rr]oot login attempted|Maximum login attempts \(\d+\) exceeded)`),
		}}},
	}
}

func pureFTPdDef() builtinDef {
	return builtinDef{
		prefix:   `<SYSLOG:pure-ftpd>`,
		rootOnly: true,
		modes: map[string]modeDef{"normal": {rules: []ruleSpec{
			fail("pure-ftpd/auth", `^\([^@\s]*@<HOST>\) \[WARNING\] Authentication failed for user \[`),
		}}},
	}
}

// ---- mysqld --------------------------------------------------------------

func mysqldAuthDef() builtinDef {
	return builtinDef{
		prefix: `<SYSLOG?:mysqld|mariadbd?>(?:\d{6} +\d{1,2}:\d\d:\d\d |\d{4}-\d\d-\d\d(?:T| +)\d{1,2}:\d\d:\d\d(?:\.\d+)?Z? )?(?:\d+ )?\[(?:Warning|Note)\] (?:\[MY-\d+\] \[Server\] )?`,
		modes: map[string]modeDef{"normal": {rules: []ruleSpec{
			fail("mysqld-auth/access-denied", `^Access denied for user '(?P<user>.*)'@'<HOST>'(?: \(using password: (?:YES|NO)\))?\s*$`),
		}}},
	}
}

// ---- recidive ------------------------------------------------------------

// RecidiveLine is the line moat writes (to syslog or the journal, tag
// "moat") for every ban, and which the recidive filter reads:
//
//	ban <address or prefix> jail=<jail> detector=<detector> offence=<n> duration=<d> reason="<escaped text>"
//
// The address comes first, before any free text. Bans by the recidive jail
// itself are ignored. fail2ban's "NOTICE [jail] Ban <address>" lines are
// read too, so that a host migrating from fail2ban keeps its history.
func RecidiveLine(prefix string, jail, detector string, offence int, duration, reason string) string {
	return fmt.Sprintf("ban %s jail=%s detector=%s offence=%d duration=%s reason=%q", prefix, jail, detector, offence, duration, reason)
}

func recidiveDef() builtinDef {
	return builtinDef{
		prefix:   `<SYSLOG?:moat|fail2ban|fail2ban-server|fail2ban\.actions>`,
		rootOnly: true,
		modes: map[string]modeDef{"normal": {
			rules: []ruleSpec{
				fail("recidive/moat", `^ban <HOST>(?:/\d{1,3})? jail=[\w.@-]+(?: |$)`),
				fail("recidive/fail2ban", `^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ )?(?:fail2ban\.actions *(?:\[\d+\])?: )?(?:NOTICE +)?\[[^\]\s]+\] Ban <HOST>\s*$`),
			},
			ignore: []string{`^ban \S+ jail=recidive(?: |$)`, `\[recidive\] Ban `},
		}},
	}
}
