package firewall

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/moat-sec/moat/internal/policy"
)

// benchSizes are the rule counts of the compile benchmarks; bench/fw-apply.sh
// measures the whole `moat up` for similar sizes.
var benchSizes = []int{10, 1000, 10000}

// benchPorts is the port cycle of bench/cmd/genrules.
var benchPorts = []uint16{80, 443, 8080, 5432, 6379, 9000, 3000}

// benchPolicy returns the policy bench/cmd/genrules writes for n rules, with
// the defaults of config.Defaults (all guards on, logging low, NFLOG group
// 100): rule i allows TCP from the (i+1)-th address of 10.0.0.0/8 to one
// port of benchPorts.
func benchPolicy(n int) *policy.Policy {
	p := &policy.Policy{
		Table:    "moat",
		Incoming: policy.Deny,
		Outgoing: policy.Allow,
		Routed:   policy.Deny,
		Guards: policy.Guards{
			Loopback: true, Established: true, Invalid: true, BadTCPFlags: true, ICMP: true,
			EchoRate: policy.Rate{Count: 5, Per: time.Second},
		},
		Logging: policy.Logging{
			Level:     policy.LogLow,
			Rate:      policy.Rate{Count: 3, Per: time.Minute},
			Group:     100,
			GroupRate: policy.Rate{Count: 100, Per: time.Second},
			Prefix:    "moat",
		},
		Limit:    policy.LimitDefaults{Rate: policy.Rate{Count: 6, Per: 30 * time.Second}, IPv6Bits: 64, TableSize: 65536},
		SSHPorts: []uint16{22},
		Rules:    make([]policy.Rule, n),
	}
	for i := range p.Rules {
		k := i + 1
		a := netip.AddrFrom4([4]byte{10, byte(k >> 16), byte(k >> 8), byte(k)})
		port := benchPorts[i%len(benchPorts)]
		p.Rules[i] = policy.Rule{
			Action:    policy.Allow,
			Direction: policy.In,
			Proto:     policy.ProtoTCP,
			From:      policy.Endpoint{Text: a.String(), Prefixes: []netip.Prefix{netip.PrefixFrom(a, 32)}},
			To:        policy.Endpoint{Text: "any", Ports: policy.Ports{{First: port, Last: port}}},
		}
	}
	return p
}

// BenchmarkCompile measures firewall.Compile: policy to nft model.
func BenchmarkCompile(b *testing.B) {
	for _, n := range benchSizes {
		b.Run("rules="+strconv.Itoa(n), func(b *testing.B) {
			p := benchPolicy(n)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Compile(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkText measures rendering the compiled table as an nft script (what
// `moat show` prints).
func BenchmarkText(b *testing.B) {
	for _, n := range benchSizes {
		b.Run("rules="+strconv.Itoa(n), func(b *testing.B) {
			tbl, err := Compile(benchPolicy(n))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(tbl.Text())))
			for b.Loop() {
				_ = tbl.Text()
			}
		})
	}
}
