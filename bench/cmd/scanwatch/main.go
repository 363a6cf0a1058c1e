// Command scanwatch waits for one address to appear in a set of table inet
// moat, by single-key netlink GETs (NFT_MSG_GETSETELEM of one key, what
// `nft get element` does) in a loop, and prints when it did, as wall-clock
// Unix nanoseconds so that it can be set beside a pcap's timestamps:
//
//	ready <unix-ns>                       (polling has started)
//	found <last-miss-sent-ns> <first-hit-received-ns> <polls>
//
// The element was added between the two times of "found". It runs in the
// network namespace of the table (`ip netns exec NS scanwatch ...`), and is
// used by bench/scan-block.sh.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

func main() {
	addr := flag.String("addr", "", "IPv4 address to wait for")
	table := flag.String("table", "moat", "inet table")
	setName := flag.String("set", "scan_v4", "set")
	poll := flag.Duration("poll", 200*time.Microsecond, "pause between lookups (0: none)")
	timeout := flag.Duration("timeout", 120*time.Second, "give up after")
	flag.Parse()
	a, err := netip.ParseAddr(*addr)
	if err != nil || !a.Is4() {
		fmt.Fprintln(os.Stderr, "scanwatch: -addr: an IPv4 address")
		os.Exit(2)
	}
	c, err := nftables.New(nftables.AsLasting())
	if err != nil {
		fmt.Fprintln(os.Stderr, "scanwatch:", err)
		os.Exit(1)
	}
	defer c.CloseLasting()
	set := &nftables.Set{
		Table:      &nftables.Table{Name: *table, Family: nftables.TableFamilyINet},
		Name:       *setName,
		KeyType:    nftables.TypeIPAddr,
		HasTimeout: true,
	}
	key := a.As4()
	elem := []nftables.SetElement{{Key: key[:]}}
	has := func() bool {
		got, err := c.FindSetElements(set, elem)
		switch {
		case err == nil:
			return len(got) > 0
		case errors.Is(err, unix.ENOENT):
			return false
		}
		fmt.Fprintln(os.Stderr, "scanwatch:", err)
		os.Exit(1)
		return false
	}
	if has() {
		fmt.Fprintln(os.Stderr, "scanwatch: already in the set")
		os.Exit(1)
	}
	fmt.Printf("ready %d\n", time.Now().UnixNano())
	deadline := time.Now().Add(*timeout)
	var polls int
	for {
		sent := time.Now()
		ok := has()
		polls++
		if ok {
			fmt.Printf("found %d %d %d\n", lastMiss.UnixNano(), time.Now().UnixNano(), polls)
			return
		}
		lastMiss = sent
		if sent.After(deadline) {
			fmt.Println("timeout")
			os.Exit(1)
		}
		if *poll > 0 {
			time.Sleep(*poll)
		}
	}
}

var lastMiss time.Time
