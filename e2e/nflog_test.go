package e2e

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	nflog "github.com/florianl/go-nflog/v2"
)

// TestNFLOG: packets dropped by the default policy reach NFLOG group 100
// with a prefix that says direction, verdict and reason, in both families.
func TestNFLOG(t *testing.T) {
	b := newBed(t)
	b.writePolicy(sshlessHeader)
	b.mustMoat("up", "--force")

	f, err := os.Open("/run/netns/" + b.server.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	nf, err := nflog.Open(&nflog.Config{Group: 100, Copymode: nflog.CopyPacket, NetNS: int(f.Fd())})
	if err != nil {
		t.Fatalf("open nflog in the server namespace: %v", err)
	}
	defer nf.Close()
	type event struct {
		prefix string
		src    netip.Addr
	}
	events := make(chan event, 64)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = nf.RegisterWithErrorFunc(ctx, func(a nflog.Attribute) int {
		var ev event
		if a.Prefix != nil {
			ev.prefix = *a.Prefix
		}
		if a.Payload != nil {
			p := *a.Payload
			switch {
			case len(p) >= 20 && p[0]>>4 == 4:
				ev.src = netip.AddrFrom4([4]byte(p[12:16]))
			case len(p) >= 40 && p[0]>>4 == 6:
				ev.src = netip.AddrFrom16([16]byte(p[8:24]))
			}
		}
		select {
		case events <- ev:
		default:
		}
		return 0
	}, func(err error) int { return 0 })
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ dst, src string }{{serverWan4, inetV4}, {serverWan6, inetV6}} {
		tcpOpen(b.inet, c.dst, 8081, "-s", c.src)
		want := netip.MustParseAddr(c.src)
		timeout := time.After(5 * time.Second)
	wait:
		for {
			select {
			case ev := <-events:
				if ev.src != want {
					continue
				}
				if !strings.HasPrefix(ev.prefix, "moat:in:drop:default") {
					t.Errorf("NFLOG prefix %q, want moat:in:drop:default", ev.prefix)
				}
				break wait
			case <-timeout:
				t.Fatalf("no NFLOG event from %s", want)
			}
		}
	}
}
