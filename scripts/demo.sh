#!/usr/bin/env bash
# moat demo: a server, an admin host and "the internet", each in its own
# network namespace. Real sshd and nginx run on the server; moat applies a
# policy; nmap from the internet and ssh from the admin show the effect.
# Touches nothing outside the namespaces it creates, and removes them.
set -euo pipefail
MOAT=${1:-$(pwd)/bin/moat}
[ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates network namespaces)"; exit 1; }
for tool in ip nft nmap ssh sshd ssh-keygen nginx socat hydra sshpass; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "demo: needs $tool (apt-get install nftables nmap openssh-server openssh-client nginx-light socat)"; exit 1; }
done
SRV=moat-demo-srv ADM=moat-demo-adm NET=moat-demo-net
WORK=$(mktemp -d /tmp/moat-demo.XXXXXX)
chmod 755 "$WORK"

cleanup() {
  for ns in $SRV $ADM $NET; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
cleanup_quiet() { cleanup; WORK=$(mktemp -d /tmp/moat-demo.XXXXXX); chmod 755 "$WORK"; }
cleanup_quiet

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

step "Creating namespaces: $SRV (server), $ADM (admin, 198.51.100.10), $NET (internet, 203.0.113.66)"
for ns in $SRV $ADM $NET; do ip netns add "$ns"; in_ns "$ns" ip link set lo up; done
ip link add md-adm type veth peer name md-adm-p
ip link set md-adm netns $SRV name adm0; ip link set md-adm-p netns $ADM name eth0
ip link add md-net type veth peer name md-net-p
ip link set md-net netns $SRV name wan0; ip link set md-net-p netns $NET name eth0
in_ns $SRV ip addr add 198.51.100.1/24 dev adm0; in_ns $SRV ip addr add 2001:db8:a::1/64 dev adm0 nodad
in_ns $SRV ip addr add 203.0.113.1/24 dev wan0;  in_ns $SRV ip addr add 2001:db8:b::1/64 dev wan0 nodad
in_ns $ADM ip addr add 198.51.100.10/24 dev eth0; in_ns $ADM ip addr add 2001:db8:a::10/64 dev eth0 nodad
in_ns $NET ip addr add 203.0.113.66/24 dev eth0; in_ns $NET ip addr add 2001:db8:b::66/64 dev eth0 nodad
for pair in "$SRV adm0" "$SRV wan0" "$ADM eth0" "$NET eth0"; do set -- $pair; in_ns "$1" ip link set "$2" up; done

step "Starting OpenSSH, nginx, and two services that should not be public (PostgreSQL-like 5432, an app on 8080)"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/host"; ssh-keygen -q -t ed25519 -N '' -f "$WORK/admin"
cp "$WORK/admin.pub" "$WORK/authorized_keys"
cat >"$WORK/sshd_config" <<CFG
Port 22
ListenAddress 0.0.0.0
ListenAddress ::
HostKey $WORK/host
AuthorizedKeysFile $WORK/authorized_keys
PidFile none
UsePAM no
StrictModes no
PermitRootLogin prohibit-password
PasswordAuthentication yes
MaxStartups 50
CFG
mkdir -p /run/sshd
# sshd logs to stderr; give each line the syslog header rsyslog would write
# (printf only prints the line: log text is never interpreted).
( in_ns $SRV /usr/sbin/sshd -D -e -f "$WORK/sshd_config" 2>&1 | while IFS= read -r line; do
    printf '%s srv sshd[%d]: %s\n' "$(date '+%b %e %T')" "$$" "$line"
  done >>"$WORK/auth.log" ) &
mkdir -p "$WORK/www"; echo "hello from the moat demo" >"$WORK/www/index.html"
cat >"$WORK/nginx.conf" <<CFG
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events {}
http {
  access_log off;
  client_body_temp_path $WORK/nginx-tmp;
  server { listen 80; listen [::]:80; listen 443; listen [::]:443; root $WORK/www; }
}
CFG
in_ns $SRV nginx -c "$WORK/nginx.conf"
for port in 5432 8080; do
  setsid ip netns exec $SRV socat -lf /dev/null TCP6-LISTEN:$port,fork,reuseaddr,ipv6only=0 EXEC:cat >/dev/null 2>&1 &
done
# A stand-in SSH honeypot on 2222 (not open to anyone: moat redirects banned
# sources there).
setsid ip netns exec $SRV socat -lf /dev/null TCP6-LISTEN:2222,fork,reuseaddr,ipv6only=0 'EXEC:echo SSH-2.0-honeypot' >/dev/null 2>&1 &
sleep 1

SSH=(ssh -i "$WORK/admin" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o ConnectTimeout=3 -o LogLevel=ERROR)
M=("$MOAT" --config "$WORK/etc/moat.toml" --state-dir "$WORK/state" --run-dir "$WORK/run")
mkdir -p "$WORK/etc"
sed "s#/var/log/auth.log#$WORK/auth.log#" "$(dirname "$0")/../examples/server.toml" >"$WORK/etc/moat.toml"

step "Before moat: nmap from the internet finds everything"
in_ns $NET nmap -n -Pn -sS -p 22,80,443,5432,8080 203.0.113.1 | grep -E '^[0-9]+/'

step "The policy ($WORK/etc/moat.toml)"
grep -v '^#' "$WORK/etc/moat.toml" | sed '/^$/d'
step "moat check"
in_ns $SRV "${M[@]}" check
step "moat show (the nftables ruleset it compiles to; first lines)"
in_ns $SRV "${M[@]}" show | head -n 25; echo "    ..."

step "The admin applies it over SSH with a rollback timer, then confirms"
in_ns $ADM "${SSH[@]}" root@198.51.100.1 "$(printf '%q ' "${M[@]}") up --confirm 60s"
in_ns $ADM "${SSH[@]}" root@198.51.100.1 "$(printf '%q ' "${M[@]}") confirm"

step "The lockout guard: over SSH, a policy that would refuse the admin's next login is refused"
printf '[defaults]\nincoming = "deny"\n\n[[rule]]\naction = "allow"\napp = "www-full"\n' >"$WORK/etc/locked.toml"
echo "(a policy that opens only the web: $WORK/etc/locked.toml)"
in_ns $ADM "${SSH[@]}" root@198.51.100.1 "$(printf '%q ' "${M[@]}" | sed "s#$WORK/etc/moat.toml#$WORK/etc/locked.toml#") up" || echo "(exit code $?: refused, nothing changed)"

step "After moat: nmap from the internet (IPv4, then IPv6) finds only SSH (rate-limited) and the web"
in_ns $NET nmap -n -Pn -sS -p 22,80,443,5432,8080 203.0.113.1 | grep -E '^[0-9]+/'
in_ns $NET nmap -6 -n -Pn -sS -p 22,80,443,5432,8080 2001:db8:b::1 | grep -E '^[0-9]+/'
step "The internet gets the web page"
in_ns $NET curl -s --max-time 3 http://203.0.113.1/ 2>/dev/null || in_ns $NET sh -c 'printf "GET / HTTP/1.0\r\n\r\n" | nc -w 3 203.0.113.1 80 | tail -n 1'

step "The admin still gets in over SSH (IPv4 and IPv6)"
in_ns $ADM "${SSH[@]}" root@198.51.100.1 'echo "ssh over IPv4 works: $SSH_CONNECTION"'
in_ns $ADM "${SSH[@]}" root@2001:db8:a::1 'echo "ssh over IPv6 works: $SSH_CONNECTION"'

step "A stealth scan (nmap -sX) is dropped by the bad-flags guard"
in_ns $NET nmap -n -Pn -sX -p 22,80,5432 203.0.113.1 | grep -E '^[0-9]+/'

step "The ban engine: moat run follows sshd's log; hydra guesses passwords from the internet"
in_ns $SRV "${M[@]}" run >"$WORK/daemon.log" 2>&1 &
for _ in $(seq 50); do in_ns $SRV "${M[@]}" jails >/dev/null 2>&1 && break; sleep 0.1; done
printf '123456\npassword\nqwerty\nletmein\nadmin\nroot\ntoor\nchangeme\n' >"$WORK/words"
(cd "$WORK" && in_ns $NET timeout 20 hydra -I -l admin -P "$WORK/words" -t 4 ssh://203.0.113.1 >"$WORK/hydra.log" 2>&1 &)
for _ in $(seq 100); do in_ns $SRV "${M[@]}" bans | grep -q 203.0.113.66 && break; sleep 0.1; done
in_ns $SRV "${M[@]}" bans
echo "The attacker now reaches nothing, not even the web; port 22 leads it to the honeypot ([[redirect]]):"
in_ns $NET nmap -n -Pn -sS -p 22,80,443 203.0.113.1 | grep -E '^[0-9]+/'
printf '  ssh banner the attacker sees: '; in_ns $NET nc -n -w 2 203.0.113.1 22 </dev/null | head -n 1
printf '  ssh banner the admin sees:    '; in_ns $ADM nc -n -w 2 198.51.100.1 22 </dev/null | head -n 1

step "The admin mistypes their password 6 times: allowlisted, never banned"
for _ in 1 2 3 4 5 6; do in_ns $ADM sshpass -p wrong ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o PreferredAuthentications=password -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 -o ConnectTimeout=3 -o LogLevel=ERROR admin@198.51.100.1 true 2>/dev/null || true; done
in_ns $ADM "${SSH[@]}" root@198.51.100.1 'echo "the admin still gets in"'
grep -m1 "not banning an allowlisted" "$WORK/daemon.log" | sed 's/^/  daemon: /' || true

step "Scans: from a fresh address, the attacker scans the top 200 ports with nmap -sS -T4"
in_ns $NET ip addr add 203.0.113.67/24 dev eth0
in_ns $NET ip addr add 203.0.113.68/24 dev eth0
in_ns $NET nmap -n -Pn -sS -T4 -S 203.0.113.68 -e eth0 --top-ports 200 --max-retries 1 --host-timeout 30s 203.0.113.1 | grep -E '^[0-9]+/|Nmap done' || true
echo "It was blocked in the kernel after a few dropped probes (so SSH and the web vanished too):"
in_ns $SRV nft list set inet moat scan_v4 | grep -E 'elements' || true
in_ns $SRV "${M[@]}" scans

step "Traps: another address connects to trap port 2323 and is banned by the kernel on the handshake"
in_ns $NET nc -z -w 2 -s 203.0.113.67 203.0.113.1 2323 || true
sleep 0.3
in_ns $SRV "${M[@]}" bans

step "moat status verbose"
in_ns $SRV "${M[@]}" status verbose || true

step "Done; removing the namespaces"
