#!/usr/bin/env python3
"""trap-latency-analyse.py TRAPLAT_JSON PCAP SERVER PORT

The wire-level half of bench/trap-latency.sh. The pcap was taken on the
server's veth (tcpdump --time-stamp-precision=nano), so each packet is
stamped as it reaches the server, just before netfilter sees it; the kernel
trap rule bans on the packet that completes the handshake (the client's
ACK), in that packet's input path. traplat's T0/T1 (connect() called and
returned, wall clock) are on the same clock. Per trap connection:

  ACK at server - connect() returned   (when the ban is made, relative to
                                        the attacker's completed handshake)
  ACK at server - SYN at server        (the handshake as the server saw it)
  connect() returned - SYN-ACK sent    (the attacker's wake-up)
"""
import json
import statistics
import struct
import sys


def read_pcap(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = struct.unpack("<I", data[:4])[0]
    nano = {0xA1B2C3D4: False, 0xA1B23C4D: True}.get(magic)
    if nano is None:
        sys.exit(f"{path}: not a little-endian pcap")
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack("<IIII", data[off:off + 16])
        pkt = data[off + 16:off + 16 + incl]
        off += 16 + incl
        ns = sec * 10**9 + (frac if nano else frac * 1000)
        if len(pkt) < 34 or struct.unpack(">H", pkt[12:14])[0] != 0x0800:
            continue
        ip = pkt[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != 6:
            continue
        src = ".".join(map(str, ip[12:16]))
        dst = ".".join(map(str, ip[16:20]))
        sport, dport = struct.unpack(">HH", ip[ihl:ihl + 4])
        yield ns, src, dst, sport, dport, ip[ihl + 13]


def q(v, p):
    v = sorted(v)
    i = int(p * len(v) + 0.999999) - 1
    return v[max(0, min(i, len(v) - 1))]


def line(name, v):
    print(f"  {name:<44} n={len(v):<4d} p50 {q(v, .5):8.1f}  p90 {q(v, .9):8.1f}  p99 {q(v, .99):8.1f}  "
          f"max {max(v):8.1f}  min {min(v):8.1f}  mean {statistics.fmean(v):8.1f} µs")


def main():
    res_path, pcap, server, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    res = json.load(open(res_path))
    syn, synack, ack = {}, {}, {}
    for ns, s, d, sp, dp, fl in read_pcap(pcap):
        if d == server and dp == port:
            if fl & 0x17 == 0x02:
                syn.setdefault(s, ns)
            elif fl & 0x17 == 0x10:
                ack.setdefault(s, ns)
        elif s == server and sp == port and fl & 0x12 == 0x12:
            synack.setdefault(d, ns)
    a_ret, a_syn, wake, before = [], [], [], 0
    missing = 0
    for smp in res["Samples"]:
        src = smp["Src"]
        if src not in syn or src not in ack or src not in synack:
            missing += 1
            continue
        d = (ack[src] - smp["T1"]) / 1e3
        a_ret.append(d)
        before += d < 0
        a_syn.append((ack[src] - syn[src]) / 1e3)
        wake.append((smp["T1"] - synack[src]) / 1e3)
    print(f"wire level (pcap on the server's veth): {len(a_ret)} connections, {missing} without SYN, SYN-ACK and ACK in the pcap")
    line("connect() returned -> ACK at the server (ban)", a_ret)
    print(f"  the ACK reached the server before connect() returned: {before} of {len(a_ret)}")
    line("SYN at the server -> ACK at the server", a_syn)
    line("SYN-ACK sent -> connect() returned", wake)


if __name__ == "__main__":
    main()
