#!/usr/bin/env python3
"""scan-block-analyse.py: the analysis half of bench/scan-block.sh.

One run: reads the server-side pcap (tcpdump -w on the server's veth, so
each packet is stamped before netfilter sees it), scanwatch's output (when
the attacker's address appeared in scan_v4), nmap's output and the
counters of chain in_default and bans (nft -j), prints a report and writes
it as JSON. --summary FILES...: a table over runs, with medians.
"""
import argparse
import json
import re
import statistics
import struct
import sys


def read_pcap(path):
    """Yields (ts, src, dst, sport, dport, flags) for IPv4 TCP over Ethernet."""
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    if magic == 0xA1B2C3D4:
        e, nano = "<", False
    elif magic == 0xA1B23C4D:
        e, nano = "<", True
    elif magic == 0xD4C3B2A1:
        e, nano = ">", False
    else:
        sys.exit(f"{path}: not a pcap file")
    linktype = struct.unpack(e + "I", data[20:24])[0]
    if linktype != 1:
        sys.exit(f"{path}: link type {linktype}, want Ethernet")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(e + "IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ts = sec + frac / (1e9 if nano else 1e6)
        if len(pkt) < 14 + 20 or struct.unpack(">H", pkt[12:14])[0] != 0x0800:
            continue
        ip = pkt[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6 or len(ip) < ihl + 14:
            continue
        src = ".".join(str(b) for b in ip[12:16])
        dst = ".".join(str(b) for b in ip[16:20])
        sport, dport = struct.unpack(">HH", ip[ihl:ihl + 4])
        flags = ip[ihl + 13]
        yield ts, src, dst, sport, dport, flags


def counter(nftjson, comment):
    """Packets of the counter of the rule(s) with this comment (summed over rules that end in drop or only count)."""
    total = {}
    for obj in json.load(open(nftjson))["nftables"]:
        rule = obj.get("rule")
        if not rule or rule.get("comment") != comment:
            continue
        for x in rule["expr"]:
            if "counter" in x:
                total[rule["handle"]] = x["counter"]["packets"]
    return total


def analyse(a):
    open_ports = {int(p) for p in a.open.split()}
    pk = list(read_pcap(a.pcap))
    syn = [(ts, dp) for ts, s, d, sp, dp, fl in pk if s == a.attacker and d == a.server and fl & 0x17 == 0x02]
    synack = {}
    for ts, s, d, sp, dp, fl in pk:
        if s == a.server and d == a.attacker and fl & 0x12 == 0x12:
            synack.setdefault(sp, []).append(ts)
    if not syn:
        sys.exit("no probes in the pcap")
    t0 = syn[0][0]

    # Counters. in_default: the scan-block rule (one per family, v4 first)
    # and the rules commented "moat default in": two log rules (no
    # counter) and the final `counter drop`.
    sb = counter(a.in_default, "moat guard in scan-block")
    dflt = counter(a.in_default, "moat default in")
    scan_block_pkts = sum(sb.values())
    default_pkts = sum(dflt.values())
    blocked = sum(counter(a.bans, "moat scan-block scan_v4").values())
    trapped = sum(counter(a.bans, "moat ban ban_v4").values())

    # With one block (scan-block rule hit once), the packet that made the kernel add the source is the default_pkts-th
    # probe to a closed port (every dropped probe before the block reached
    # the default drop, that one included; none after, until the block
    # expires). Its pcap time is the block moment.
    closed = [(ts, dp) for ts, dp in syn if dp not in open_ports]
    block_ts, block_by = None, "scan_v4"
    if scan_block_pkts == 1 and 0 < default_pkts <= len(closed):
        block_ts = closed[default_pkts - 1][0]
    elif scan_block_pkts == 0 and trapped > 0:
        # The trap banned it (ban_v4): on the first packet after a SYN to
        # a trap port that conntrack calls established, nmap's RST to the
        # trap's SYN-ACK. Every probe before it reached the default drop.
        block_by = "ban_v4 (trap)"
        traps = {int(p) for p in (a.traps or "").split()}
        rst = [ts for ts, s_, d, sp, dp, fl in pk if s_ == a.attacker and dp in traps and not fl & 0x02]
        block_ts = rst[0] if rst else None
    # else: the block expired and came back during the scan (the counters
    # cover every episode): no per-block figures.

    w = open(a.watch).read().split()
    watch = None
    if "found" in w:
        i = w.index("found")
        watch = (int(w[i + 1]) / 1e9, int(w[i + 2]) / 1e9, int(w[i + 3]))

    before = [(ts, dp) for ts, dp in syn if block_ts is not None and ts <= block_ts]
    open_before = sorted({dp for ts, dp in before if dp in open_ports})
    answered = sorted(p for p in open_ports if p in synack)
    # The first SYN to an open port that got no SYN-ACK (an upper bound
    # of the block moment seen from the wire).
    first_unanswered = None
    for ts, dp in syn:
        if dp in open_ports and not any(t >= ts for t in synack.get(dp, [])):
            first_unanswered = (ts, dp)
            break

    nmap = open(a.nmap).read()
    reported = sorted(int(m) for m in re.findall(r"^(\d+)/tcp\s+open", nmap, re.M))
    order = []
    for ts, dp in syn:
        if dp not in order:
            order.append(dp)
    pos = {p: (order.index(p) + 1 if p in order else None) for p in sorted(open_ports)}
    scans = []
    try:
        scans = json.load(open(a.scans)) or []
    except Exception:
        pass
    scan = next((s for s in scans if s.get("src") == a.attacker), None)

    r = {
        "run": a.run,
        "probes_total": len(syn),
        "distinct_ports_probed": len(order),
        "default_drop_before_block": default_pkts,
        "scan_block_rule_hits": scan_block_pkts,
        "dropped_by_scan_v4": blocked,
        "dropped_by_ban_v4": trapped,
        "nmap_host_timeout": "due to host timeout" in nmap,
        "probes_before_block": len(before),
        "block_after_ms": None if block_ts is None else (block_ts - t0) * 1e3,
        "block_by": block_by,
        "blocks": scan_block_pkts,
        "synacks_ms": {str(p): [round((t - t0) * 1e3, 3) for t in ts] for p, ts in sorted(synack.items())},
        "watch_after_ms": None if watch is None else [(watch[0] - t0) * 1e3, (watch[1] - t0) * 1e3],
        "watch_polls": None if watch is None else watch[2],
        "first_unanswered_open_syn": None if first_unanswered is None else
        {"port": first_unanswered[1], "after_ms": (first_unanswered[0] - t0) * 1e3},
        "open_probed_before_block": open_before,
        "open_answered_synack": answered,
        "nmap_reported_open": reported,
        "open_port_position_in_nmap_order": pos,
        "first_ports": order[:30],
        "scan_duration_s": syn[-1][0] - t0,
        "detector": None if scan is None else {k: scan.get(k) for k in ("types", "danger", "port_count", "packets", "os_guess", "action")},
    }
    json.dump(r, open(a.json, "w"), indent=1)
    f = lambda v: "n/a" if v is None else f"{v:.2f}"
    print(f"probes (SYN) sent: {r['probes_total']} to {r['distinct_ports_probed']} ports, over {r['scan_duration_s']:.1f} s")
    print(f"reached the default drop before the block: {default_pkts} (scan-block rule hits {scan_block_pkts}); "
          f"dropped afterwards by scan_v4: {blocked}, by ban_v4 (trap): {trapped}")
    if block_ts is None:
        print(f"the block expired and came back during the scan ({scan_block_pkts} blocks): the counters cover them all; "
              f"first block seen by scanwatch between {f(r['watch_after_ms'][0]) if watch else 'n/a'} and "
              f"{f(r['watch_after_ms'][1]) if watch else 'n/a'} ms after the first probe")
    elif block_by != "scan_v4":
        print(f"blocked by the trap (ban_v4, 1h) {f(r['block_after_ms'])} ms after the first probe: nmap's RST to a trap port's SYN-ACK")
    else:
        print(f"block {f(r['block_after_ms'])} ms after the first probe (pcap time of the {default_pkts}th dropped probe); "
              f"scanwatch saw it between {f(r['watch_after_ms'][0]) if watch else 'n/a'} and "
              f"{f(r['watch_after_ms'][1]) if watch else 'n/a'} ms ({r['watch_polls']} polls)")
    if block_ts is not None:
        print(f"probes before the block (all ports): {len(before)}; open ports among them: {open_before}")
    print("SYN-ACKs (port: ms after the first probe): " + (", ".join(f"{p}: {v}" for p, v in r["synacks_ms"].items()) or "none"))
    if first_unanswered:
        print(f"first SYN to an open port without SYN-ACK: port {first_unanswered[1]}, {(first_unanswered[0] - t0) * 1e3:.2f} ms")
    print(f"nmap reported open: {reported}" + (" (nmap gave up: host timeout, it reports no ports)" if r["nmap_host_timeout"] else ""))
    print(f"position of the open ports in nmap's probe order: {pos}")
    print(f"nmap's first 30 ports: {order[:30]}")
    if scan:
        print(f"daemon's detector: {r['detector']}")


def summary(files):
    rs = [json.load(open(p)) for p in files]
    print("\n| run | dropped probes before block | all probes before block | block after first probe (ms) | scanwatch saw it (ms) | open ports probed before block | open ports that sent a SYN-ACK | nmap reported open |")
    print("|---:|---:|---:|---:|---:|---|---|---|")
    f = lambda v: "n/a" if v is None else f"{v:.2f}"
    for r in rs:
        w = r["watch_after_ms"] or [None, None]
        rep = ", ".join(map(str, r["nmap_reported_open"])) or "none"
        if r.get("nmap_host_timeout"):
            rep += " (host timeout)"
        one = r.get("blocks") == 1 or r.get("block_by", "scan_v4") != "scan_v4"
        dd = r["default_drop_before_block"] if one else f"({r['default_drop_before_block']} over {r.get('blocks')} blocks)"
        pb = r["probes_before_block"] if one else "n/a"
        print(f"| {r['run']} | {dd} | {pb} | {f(r['block_after_ms'])} | "
              f"{f(w[0])}-{f(w[1])} | {', '.join(map(str, r['open_probed_before_block'])) or '-'} | "
              f"{', '.join(map(str, r['open_answered_synack'])) or '-'} | {rep} |")
    def med(get):  # over runs with one block
        v = [get(r) for r in rs if get(r) is not None and (r.get("blocks") == 1 or r.get("block_by", "scan_v4") != "scan_v4")]
        return statistics.median(v) if v else None
    print(f"| median | {med(lambda r: r['default_drop_before_block'])} | {med(lambda r: r['probes_before_block'])} | "
          f"{f(med(lambda r: r['block_after_ms']))} | {f(med(lambda r: (r['watch_after_ms'] or [None, None])[1]))} (first hit) | | "
          f"{med(lambda r: len(r['open_answered_synack']))} ports | {med(lambda r: len(r['nmap_reported_open']))} ports |")
    # A port that sent nmap a SYN-ACK is one nmap knows is open, whether
    # or not it printed it (it prints nothing when it hits --host-timeout).
    bad = [r["run"] for r in rs if set(r["open_answered_synack"]) & {3306, 5432, 8080}]
    print(f"goal <=10 dropped probes: {'met' if all(0 < r['default_drop_before_block'] <= 10 and r.get('blocks', 1) <= 1 for r in rs) else 'NOT met (or not measured)'}; "
          f"<=100 ms: {'met' if all(r['block_after_ms'] is not None and r['block_after_ms'] <= 100 for r in rs) else 'NOT met'}; "
          f"3306/5432/8080 never answered nmap: {'met' if not bad else 'NOT met (runs ' + ', '.join(map(str, bad)) + ')'}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--summary", nargs="*")
    for k in ("run", "pcap", "watch", "nmap", "in-default", "bans", "scans", "attacker", "server", "open", "traps", "json"):
        ap.add_argument("--" + k)
    a = ap.parse_args()
    if a.summary is not None:
        summary(a.summary)
    else:
        analyse(a)


if __name__ == "__main__":
    main()
