package nft

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// everyExprType lists one value of each Expr implementation; the test below
// fails when a type is added to the model without a JSON form.
var everyExprType = []Expr{&IfName{}, &NfProto{}, &L4Proto{}, &Addr{}, &Port{}, &CtState{}, &TCPFlags{}, &ICMPType{}, &Limit{}, &Meter{}, &CtCount{}, &Counter{}, &Log{}, &Verdict{}, &CtMark{}, &CtMarkSet{}, &CtStatus{}, &FibLocal{}, &RPFilter{}, &DNAT{}}

func TestJSONRoundTrip(t *testing.T) {
	tbl := allTable()
	// Values a valid table would not hold still round-trip.
	tbl.Chains = append(tbl.Chains, &Chain{Name: "odd", Hook: HookInput, Priority: -300, Policy: VerdictReject, Rules: []*Rule{
		{Exprs: []Expr{&Meter{Set: "meter4"}, &Limit{Unit: 3 * time.Second}, &TCPFlags{Value: 0xff}, &CtState{}, &ICMPType{Types: []uint8{}}}},
		{Comment: "no expressions"},
	}})
	tbl.Sets[0].Timeout = -time.Nanosecond

	seen := map[reflect.Type]bool{}
	for _, c := range tbl.Chains {
		for _, r := range c.Rules {
			for _, x := range r.Exprs {
				seen[reflect.TypeOf(x)] = true
				if m, ok := x.(*Meter); ok && m.Stmt != nil {
					seen[reflect.TypeOf(m.Stmt)] = true
				}
			}
		}
	}
	for _, x := range everyExprType {
		if !seen[reflect.TypeOf(x)] {
			t.Errorf("the fixture has no %T", x)
		}
	}

	data, err := json.Marshal(tbl)
	if err != nil {
		t.Fatal(err)
	}
	var got Table
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	// The same table, built again.
	want := allTable()
	want.Chains = append(want.Chains, &Chain{Name: "odd", Hook: HookInput, Priority: -300, Policy: VerdictReject, Rules: []*Rule{
		{Exprs: []Expr{&Meter{Set: "meter4"}, &Limit{Unit: 3 * time.Second}, &TCPFlags{Value: 0xff}, &CtState{}, &ICMPType{Types: []uint8{}}}},
		{Comment: "no expressions"},
	}})
	want.Sets[0].Timeout = -time.Nanosecond
	if diff := cmp.Diff(want, &got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	again, err := json.Marshal(&got)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(data) {
		t.Errorf("second encoding differs:\n%s\n%s", data, again)
	}
	// The saved ruleset is read by people too.
	for _, want := range []string{`{"type":"addr","dir":"src","set":"ban4"}`, `"states":["established","related"]`, `"types":[128,135,128]`, `"unit":"1m0s"`, `"ports":["22","8000-8080","65000-65535"]`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("JSON lacks %s", want)
		}
	}
}

func TestJSONStrict(t *testing.T) {
	for _, tc := range []struct{ name, in, err string }{
		{"unknown field", `{"name":"t","extra":1}`, "unknown field"},
		{"unknown expression", `{"name":"t","chains":[{"name":"c","rules":[{"exprs":[{"type":"nat"}]}]}]}`, `unknown expression type "nat"`},
		{"field of another type", `{"name":"t","chains":[{"name":"c","rules":[{"exprs":[{"type":"counter","rate":1}]}]}]}`, "unknown field"},
		{"null expression", `{"name":"t","chains":[{"name":"c","rules":[{"exprs":[null]}]}]}`, "unknown expression type"},
		{"bad hook", `{"name":"t","chains":[{"name":"c","hook":"postrouting"}]}`, `unknown hook "postrouting"`},
		{"bad key type", `{"name":"t","sets":[{"name":"s","type":"ether_addr"}]}`, "unknown key type"},
		{"bad port", `{"name":"t","sets":[{"name":"s","type":"inet_service","ports":["70000"]}]}`, "out of range"},
		{"bad state", `{"name":"t","chains":[{"name":"c","rules":[{"exprs":[{"type":"ct_state","states":["new","old"]}]}]}]}`, `unknown flag "old"`},
		{"bad icmp type", `{"name":"t","chains":[{"name":"c","rules":[{"exprs":[{"type":"icmp_type","types":[256]}]}]}]}`, "out of range"},
		{"bad prefix", `{"name":"t","sets":[{"name":"s","type":"ipv4_addr","prefixes":["10.0.0.0/33"]}]}`, "10.0.0.0/33"},
	} {
		var tbl Table
		err := json.Unmarshal([]byte(tc.in), &tbl)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, err, tc.err)
		}
	}
}

func TestJSONMarshalRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		tbl  *Table
	}{
		{"nil expression", &Table{Name: "t", Chains: []*Chain{{Name: "c", Rules: []*Rule{{Exprs: []Expr{nil}}}}}}},
		{"typed nil expression", &Table{Name: "t", Chains: []*Chain{{Name: "c", Rules: []*Rule{{Exprs: []Expr{(*Addr)(nil)}}}}}}},
		{"unknown hook", &Table{Name: "t", Chains: []*Chain{{Name: "c", Hook: 9}}}},
		{"unknown ct state", &Table{Name: "t", Chains: []*Chain{{Name: "c", Rules: []*Rule{{Exprs: []Expr{&CtState{States: 16}}}}}}}},
		{"nil set", &Table{Name: "t", Sets: []*Set{nil}}},
	} {
		if _, err := json.Marshal(tc.tbl); err == nil {
			t.Errorf("%s: Marshal succeeded", tc.name)
		}
	}
}
