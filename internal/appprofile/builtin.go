package appprofile

import (
	"fmt"
	"sync"
)

// builtinDef is one builtin profile; ports is in profile file syntax.
type builtinDef struct {
	name, title, desc, ports string
	aliases                  []string
}

// builtinDefs is the builtin catalogue. Names and aliases are lower-case.
var builtinDefs = []builtinDef{
	// Remote access
	{"ssh", "Secure Shell", "Remote login, command execution and file transfer (scp, sftp) over SSH.", "22/tcp", []string{"openssh"}},
	{"mosh", "Mobile Shell", "Roaming, latency-tolerant remote terminal; connects over SSH, then talks UDP.", "60000:61000/udp", nil},
	{"rdp", "Remote Desktop Protocol", "Microsoft Remote Desktop and xrdp.", "3389/tcp", nil},
	{"vnc", "VNC", "Virtual Network Computing remote desktop, display :0.", "5900/tcp", nil},

	// Web
	{"http", "Web server (HTTP)", "Plain HTTP web traffic.", "80/tcp", []string{"www"}},
	{"https", "Web server (HTTPS)", "HTTP over TLS.", "443/tcp", []string{"www secure"}},
	{"www-full", "Web server (HTTP, HTTPS)", "Plain HTTP and HTTP over TLS.", "80,443/tcp", []string{"web", "www full"}},
	{"http-alt", "Alternative HTTP", "HTTP on the common alternative port, used by proxies and application servers.", "8080/tcp", nil},
	{"https-alt", "Alternative HTTPS", "HTTPS on the common alternative port, used by proxies and application servers.", "8443/tcp", nil},

	// Name, time and address services
	{"dns", "Domain Name System", "DNS server, queries over UDP and TCP.", "53", nil},
	{"ntp", "Network Time Protocol", "NTP time server.", "123/udp", nil},
	{"dhcp", "DHCP", "Dynamic Host Configuration Protocol, server (67) and client (68).", "67,68/udp", nil},

	// Mail
	{"smtp", "SMTP", "Mail transfer between servers.", "25/tcp", nil},
	{"submission", "Mail submission", "Mail submission by clients, with STARTTLS (RFC 6409).", "587/tcp", nil},
	{"smtps", "SMTP over TLS", "Mail submission by clients over implicit TLS (RFC 8314).", "465/tcp", nil},
	{"imap", "IMAP", "Internet Message Access Protocol mailbox access.", "143/tcp", nil},
	{"imaps", "IMAP over TLS", "IMAP mailbox access over implicit TLS.", "993/tcp", nil},
	{"pop3", "POP3", "Post Office Protocol mailbox access.", "110/tcp", nil},
	{"pop3s", "POP3 over TLS", "POP3 mailbox access over implicit TLS.", "995/tcp", nil},

	// Databases and data stores
	{"mysql", "MySQL", "MySQL and MariaDB database server.", "3306/tcp", []string{"mariadb"}},
	{"postgresql", "PostgreSQL", "PostgreSQL database server.", "5432/tcp", []string{"postgres"}},
	{"redis", "Redis", "Redis key-value store.", "6379/tcp", nil},
	{"mongodb", "MongoDB", "MongoDB document database.", "27017/tcp", []string{"mongo"}},
	{"memcached", "Memcached", "Memcached in-memory cache (TCP only; keep UDP closed against amplification).", "11211/tcp", nil},
	{"elasticsearch", "Elasticsearch", "Elasticsearch REST API (9200) and node transport (9300).", "9200,9300/tcp", nil},
	{"mssql", "Microsoft SQL Server", "Microsoft SQL Server database engine.", "1433/tcp", nil},
	{"oracle", "Oracle Database", "Oracle Database TNS listener.", "1521/tcp", nil},
	{"cassandra", "Apache Cassandra", "Apache Cassandra CQL native protocol.", "9042/tcp", nil},
	{"couchdb", "Apache CouchDB", "Apache CouchDB HTTP API.", "5984/tcp", nil},
	{"influxdb", "InfluxDB", "InfluxDB HTTP API.", "8086/tcp", nil},
	{"minio", "MinIO", "MinIO S3-compatible object storage API.", "9000/tcp", nil},

	// Messaging and coordination
	{"rabbitmq", "RabbitMQ", "RabbitMQ AMQP message broker.", "5672/tcp", nil},
	{"kafka", "Apache Kafka", "Apache Kafka broker.", "9092/tcp", nil},
	{"nats", "NATS", "NATS messaging client port.", "4222/tcp", nil},
	{"zookeeper", "Apache ZooKeeper", "Apache ZooKeeper client port.", "2181/tcp", nil},
	{"etcd", "etcd", "etcd key-value store, client (2379) and peer (2380) traffic.", "2379:2380/tcp", nil},

	// Directory and file sharing
	{"ldap", "LDAP", "Lightweight Directory Access Protocol, plain or with STARTTLS.", "389/tcp", nil},
	{"ldaps", "LDAP over TLS", "LDAP over implicit TLS.", "636/tcp", nil},
	{"ftp", "FTP", "File Transfer Protocol control connection (passive data ports need their own rule).", "21/tcp", nil},
	{"samba", "Samba (SMB/CIFS)", "Windows file and printer sharing: SMB (139, 445/tcp) and NetBIOS name and datagram services (137, 138/udp).", "139,445/tcp|137,138/udp", []string{"smb", "cifs"}},
	{"nfs", "NFS", "Network File System version 4 (version 3 also needs rpcbind and mountd).", "2049/tcp", nil},

	// Infrastructure and monitoring
	{"kubernetes-api", "Kubernetes API server", "Kubernetes control plane API server.", "6443/tcp", []string{"k8s-api"}},
	{"docker-api", "Docker Engine API", "Docker daemon remote API, plain (2375, unauthenticated: never expose) and TLS (2376).", "2375,2376/tcp", nil},
	{"prometheus", "Prometheus", "Prometheus server web UI and API.", "9090/tcp", nil},
	{"node-exporter", "Prometheus node exporter", "Prometheus node exporter metrics endpoint.", "9100/tcp", []string{"node_exporter"}},
	{"grafana", "Grafana", "Grafana dashboards web UI.", "3000/tcp", nil},
	{"snmp", "SNMP", "Simple Network Management Protocol agent.", "161/udp", nil},
	{"syslog", "Syslog", "Remote syslog reception over UDP.", "514/udp", nil},
	{"bgp", "BGP", "Border Gateway Protocol sessions.", "179/tcp", nil},

	// VPN and telephony
	{"wireguard", "WireGuard", "WireGuard VPN, default listen port.", "51820/udp", nil},
	{"openvpn", "OpenVPN", "OpenVPN, default port over UDP.", "1194/udp", nil},
	{"ipsec", "IPsec (IKE)", "IPsec key exchange (500) and NAT traversal (4500); ESP itself is IP protocol 50, not a port.", "500,4500/udp", nil},
	{"sip", "SIP", "Session Initiation Protocol signalling for VoIP (media RTP ports need their own rule).", "5060", nil},
}

// Builtin returns the catalogue of builtin profiles. Every call returns the
// same immutable catalogue.
func Builtin() *Catalogue { return builtin() }

var builtin = sync.OnceValue(func() *Catalogue {
	c, err := buildBuiltin(builtinDefs)
	if err != nil {
		panic("appprofile: " + err.Error())
	}
	return c
})

func buildBuiltin(defs []builtinDef) (*Catalogue, error) {
	c := &Catalogue{profiles: map[string]Profile{}, aliases: map[string]string{}}
	taken := func(key string) bool {
		_, p := c.profiles[key]
		_, a := c.aliases[key]
		return p || a
	}
	for _, d := range defs {
		if msg := checkName(d.name); msg != "" || asciiLower(d.name) != d.name {
			return nil, fmt.Errorf("builtin %q: bad name %s", d.name, msg)
		}
		if taken(d.name) {
			return nil, fmt.Errorf("builtin %q: name already taken", d.name)
		}
		ports, msg := parsePorts(d.ports)
		if msg != "" {
			return nil, fmt.Errorf("builtin %q: %s", d.name, msg)
		}
		if checkText(d.title) != "" || checkText(d.desc) != "" || d.title == "" || d.desc == "" {
			return nil, fmt.Errorf("builtin %q: bad title or description", d.name)
		}
		c.profiles[d.name] = Profile{Name: d.name, Title: d.title, Description: d.desc, Ports: ports, Source: SourceBuiltin}
		for _, a := range d.aliases {
			if msg := checkName(a); msg != "" || asciiLower(a) != a || taken(a) {
				return nil, fmt.Errorf("builtin %q: bad or duplicate alias %q %s", d.name, a, msg)
			}
			c.aliases[a] = d.name
		}
	}
	// An alias defined before a profile of the same name would be shadowed.
	for a := range c.aliases {
		if _, ok := c.profiles[a]; ok {
			return nil, fmt.Errorf("alias %q is also a profile name", a)
		}
	}
	c.index()
	return c, nil
}
