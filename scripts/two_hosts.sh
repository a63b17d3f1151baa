#!/usr/bin/env bash
# Two "machines" on this one: network namespaces host-1 (10.77.0.1) and
# host-2 (10.77.0.2), each with a hostname of its own, joined by a veth
# pair, and MPI started across them the way docs/DISTRIBUTED.md starts it
# on two machines: `mpiexec -f hosts -n N` with MPICH's ssh launcher, whose
# ssh is replaced (`-launcher-exec`) by a command that enters the host's
# namespaces. Ranks talk TCP over the veth link (UCX_TLS=tcp,self: no
# shared memory between "machines"); LINK_MBIT, when set, limits each
# direction of the link with `tc tbf`, as a network of that speed would.
#
#   scripts/two_hosts.sh [-n N] COMMAND...     (N ranks, default 2, placed
#                                               alternately on the two hosts)
# Runs COMMAND under mpiexec and returns its status; cleans up the
# namespaces on exit. Needs root (ip netns), iproute2 and mpich.
set -euo pipefail
ranks=2
if [ "${1:-}" = "-n" ]; then ranks=$2; shift 2; fi
[ $# -gt 0 ] || { echo "usage: scripts/two_hosts.sh [-n N] COMMAND..." >&2; exit 2; }
tag=rec$$
work=$(mktemp -d)
cleanup() {
    ip netns del "$tag-1" 2>/dev/null || true
    ip netns del "$tag-2" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$tag-1"
ip netns add "$tag-2"
ip link add "$tag-a" type veth peer name "$tag-b"
ip link set "$tag-a" netns "$tag-1"
ip link set "$tag-b" netns "$tag-2"
ip -n "$tag-1" addr add 10.77.0.1/24 dev "$tag-a"
ip -n "$tag-2" addr add 10.77.0.2/24 dev "$tag-b"
for n in 1 2; do
    dev=$([ $n = 1 ] && echo "$tag-a" || echo "$tag-b")
    ip -n "$tag-$n" link set lo up
    ip -n "$tag-$n" link set "$dev" up
    if [ -n "${LINK_MBIT:-}" ]; then
        ip netns exec "$tag-$n" tc qdisc add dev "$dev" root tbf rate "${LINK_MBIT}mbit" \
            burst 1mb latency 50ms
    fi
done

# ssh HOST COMMAND, as MPICH's launcher calls it (after options such as -x).
cat >"$work/ssh" <<SH
#!/bin/sh
while [ \$# -gt 0 ] && [ "\${1#-}" != "\$1" ]; do shift; done
host=\$1; shift
exec ip netns exec "$tag-\${host##*.}" unshare -u sh -c "hostname host-\${host##*.}; \$*"
SH
chmod +x "$work/ssh"
per_host=$(( (ranks + 1) / 2 ))
printf '10.77.0.1:%s\n10.77.0.2:%s\n' "$per_host" "$per_host" >"$work/hosts"

# mpiexec itself runs on host 1, as on a login to the first machine.
export UCX_TLS=${UCX_TLS:-tcp,self}
ip netns exec "$tag-1" unshare -u sh -c 'hostname host-1; exec "$@"' _ \
    mpiexec -f "$work/hosts" -n "$ranks" -launcher ssh -launcher-exec "$work/ssh" "$@"
