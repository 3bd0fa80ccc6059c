#!/usr/bin/env bash
# A real Kubernetes cluster for tests: the control plane (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler) in one network namespace and any
# number of nodes (containerd + runc + CNI, kubelet, kube-proxy), each in a
# network namespace AND a mount namespace of its own, all built from the same
# Debian source as tests/k8s/apiserver.sh (v1.20.2) or installed from Debian
# packages (containerd, runc, containernetworking-plugins).
#
# The caller (tests/src/lab/real_cluster.rs) makes the network namespaces and the
# segment joining them; this script starts and stops processes. Every file is
# under STATE_DIR; every process is recorded in STATE_DIR/pids and stopped by
# PID; nothing on the machine outside STATE_DIR is written, except what a node's
# own mount namespace holds (gone with it).
#
# Usage:
#   node.sh control-plane STATE_DIR NETNS ADDRESS
#       etcd + kube-apiserver (dual-stack Services) listening on ADDRESS, then
#       kube-controller-manager and kube-scheduler; writes STATE_DIR/kubeconfig
#       (admin, for nsenter into NETNS) and STATE_DIR/node-kubeconfig (ADDRESS)
#   node.sh node STATE_DIR NAME NETNS NODE_IP POD_CIDR PAUSE_ARCHIVE
#       containerd (the pause image imported), kubelet and kube-proxy of node NAME
#   node.sh import STATE_DIR NAME ARCHIVE     ctr images import into NAME's containerd
#   node.sh ctr STATE_DIR NAME ARGS...        ctr -n k8s.io against NAME's containerd
#   node.sh in-node STATE_DIR NAME CMD...     CMD in NAME's network and mount namespaces
#   node.sh kubectl STATE_DIR ARGS...         kubectl as admin, inside the control plane's netns
#   node.sh stop STATE_DIR                    stop everything recorded, containers included
#
# Why each node has its own mount namespace: the DaemonSet's pin directory is a
# hostPath (/sys/fs/bpf/responder), and two nodes on one machine must not share
# it. There, /sys/fs/bpf is a fresh bpffs made a shared mount (containerd wants
# a HostToContainer source shared or slave), /run and /var/log are tmpfs (shim
# sockets, pod network namespaces, iptables' lock and /var/log/pods stay the
# node's).
#
# Facts of this machine the configuration follows: cgroup v1 and no systemd as
# PID 1 (the kubelet uses the cgroupfs driver and runs without QoS cgroups,
# cgroupsPerQOS: false, the setup known to work here; runc then puts each
# container at /k8s.io/<id>); root lacks CAP_SYS_RESOURCE (containerd's
# restrict_oom_score_adj); swap may be on (failSwapOn: false).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SELF="$HERE/$(basename "$0")"
BIN_DIR=$(bash "$HERE/apiserver.sh" bin-dir)
CNI_BIN_DIR=${CNI_BIN_DIR:-/usr/lib/cni}
SERVICE_CIDRS=198.51.100.0/24,2001:db8:ffff::/112
# Every wait is bounded; a step that does not finish names itself and its log.
START_TIMEOUT=${NODE_START_TIMEOUT:-120}

log() { echo "node.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

record() { echo "$1 $2" >>"$STATE/pids"; }

recorded_pid() { awk -v n="$2" '$1 == n {print $2}' "$1/pids" 2>/dev/null | tail -n1; }

alive() { [[ -n ${1:-} && -d /proc/$1 ]] && [[ $(awk '/^State:/{print $2}' "/proc/$1/status" 2>/dev/null) != Z ]]; }

# fail STEP LOG: the step that failed and the tail of its log.
fail() {
    log "ERROR: $1 (log: $2)"
    [[ -f $2 ]] && tail -n 25 "$2" | sed 's/^/    /' >&2
    exit 1
}

# wait_until STEP LOG PID CMD...: CMD succeeds within START_TIMEOUT while PID lives.
wait_until() {
    local step=$1 logf=$2 pid=$3
    shift 3
    local deadline=$((SECONDS + START_TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        [[ -z $pid ]] || alive "$pid" || fail "$step: the process exited" "$logf"
        ((SECONDS < deadline)) || fail "$step: not done after ${START_TIMEOUT}s" "$logf"
        sleep 0.5
    done
}

require() {
    local b
    for b in "$@"; do
        command -v "$b" >/dev/null 2>&1 || [[ -x $b ]] || die "$b is missing (cargo xtask setup installs it)"
    done
}

kubeconfig_for() { # FILE SERVER
    local pki="$STATE/cp/pki"
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: $2
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 <"$pki/admin.crt")
    client-key-data: $(base64 -w0 <"$pki/admin.key")
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
EOF
    chmod 600 "$1"
}

cmd_control_plane() {
    local netns=$2 address=$3
    mkdir -p "$STATE/cp"
    require "$BIN_DIR/kube-controller-manager" "$BIN_DIR/kube-scheduler"
    echo "netns $netns" >"$STATE/cp/netns"
    # The API server serves pods (through the `kubernetes` Service) on the
    # segment: it advertises that address, and Endpoints follow it.
    if ! KUBE_BIND_ADDRESS=0.0.0.0 KUBE_ADVERTISE_ADDRESS=$address KUBE_ENDPOINT_RECONCILER=lease \
        SERVICE_CLUSTER_IP_RANGE=$SERVICE_CIDRS KUBE_FEATURE_GATES=IPv6DualStack=true \
        KUBE_START_TIMEOUT=$START_TIMEOUT \
        nsenter --net="/run/netns/$netns" -- bash "$HERE/apiserver.sh" start "$STATE/cp" >&2; then
        die "control plane: etcd or kube-apiserver did not start (logs: $STATE/cp/etcd.log, $STATE/cp/apiserver.log)"
    fi
    # shellcheck disable=SC1091
    source "$STATE/cp/env"
    cp "$STATE/cp/kubeconfig" "$STATE/kubeconfig"
    kubeconfig_for "$STATE/node-kubeconfig" "https://$address:$K8S_API_PORT"
    local pki="$STATE/cp/pki"

    setsid nsenter --net="/run/netns/$netns" -- "$BIN_DIR/kube-controller-manager" \
        --kubeconfig "$STATE/kubeconfig" \
        --authentication-kubeconfig "$STATE/kubeconfig" \
        --authorization-kubeconfig "$STATE/kubeconfig" \
        --bind-address 127.0.0.1 --port 0 \
        --leader-elect=false \
        --use-service-account-credentials \
        --service-account-private-key-file "$pki/sa.key" \
        --root-ca-file "$pki/ca.crt" \
        --service-cluster-ip-range "$SERVICE_CIDRS" \
        --feature-gates IPv6DualStack=true \
        --controllers '*' \
        --profiling=false --v 1 \
        </dev/null >"$STATE/kube-controller-manager.log" 2>&1 &
    record kube-controller-manager $!
    setsid nsenter --net="/run/netns/$netns" -- "$BIN_DIR/kube-scheduler" \
        --kubeconfig "$STATE/kubeconfig" \
        --authentication-kubeconfig "$STATE/kubeconfig" \
        --authorization-kubeconfig "$STATE/kubeconfig" \
        --bind-address 127.0.0.1 --port 0 \
        --leader-elect=false --profiling=false --v 1 \
        </dev/null >"$STATE/kube-scheduler.log" 2>&1 &
    record kube-scheduler $!
    # The controller manager is up once it issues ServiceAccount tokens.
    wait_until "kube-controller-manager: the default ServiceAccount's token" \
        "$STATE/kube-controller-manager.log" "$(recorded_pid "$STATE" kube-controller-manager)" \
        bash -c "$(printf '%q ' bash "$SELF" kubectl "$STATE") -n default get serviceaccount default -o jsonpath='{.secrets[0].name}' | grep -q ."
    log "control plane ready: https://$address:$K8S_API_PORT"
}

node_dir() { echo "$STATE/nodes/$1"; }

# The node's own mount namespace: held by a sleeping process, entered by
# everything the node runs.
start_holder() {
    local name=$1 netns=$2 dir
    dir=$(node_dir "$name")
    mkdir -p "$dir/varlog" "$dir/run"
    # --propagation slave: the machine's mounts stay visible, nothing made
    # here propagates back. /run and /var/log become the node's own.
    setsid nsenter --net="/run/netns/$netns" -- unshare --mount --propagation slave -- bash -c '
        set -e
        # Not stacked on the machine'"'"'s bpffs: containerd judges a mount
        # point by the first mount it finds there.
        if mountpoint -q /sys/fs/bpf; then umount /sys/fs/bpf; fi
        mount -t bpf bpf /sys/fs/bpf
        mount --make-shared /sys/fs/bpf
        mount --bind "$1" /run
        mount --bind "$2" /var/log
        exec sleep infinity' holder "$dir/run" "$dir/varlog" \
        </dev/null >"$dir/holder.log" 2>&1 &
    record "holder-$name" $!
    local pid=$!
    wait_until "node $name: mount namespace" "$dir/holder.log" "$pid" \
        bash -c "[[ \$(readlink /proc/$pid/ns/mnt) != \$(readlink /proc/self/ns/mnt) ]] && grep -q ' /sys/fs/bpf bpf ' /proc/$pid/mounts && grep -q ' /var/log ' /proc/$pid/mounts"
}

holder_pid() { recorded_pid "$STATE" "holder-$1"; }

in_node() { # NAME CMD...
    local name=$1 pid
    shift
    pid=$(holder_pid "$name")
    alive "$pid" || die "node $name is not running (no mount namespace holder)"
    nsenter -t "$pid" --net --mount -- "$@"
}

# spawn_in_node NAME LOG CMD...: CMD in the background inside the node,
# recorded as "<CMD's name>-NAME" by its own PID (nsenter and setsid exec).
spawn_in_node() {
    local name=$1 logf=$2 pid
    shift 2
    pid=$(holder_pid "$name")
    alive "$pid" || die "node $name is not running (no mount namespace holder)"
    (exec nsenter -t "$pid" --net --mount -- setsid "$@" </dev/null >"$logf" 2>&1) &
    record "$(basename "$1")-$name" $!
}

ctr_of() { # NAME ARGS...
    local name=$1
    shift
    in_node "$name" ctr --address "$(node_dir "$name")/containerd.sock" --namespace k8s.io "$@"
}

# image_name ARCHIVE: the reference an image archive carries (its index's
# io.containerd.image.name), so the sandbox image is whatever was packed.
image_name() {
    tar -xOf "$1" index.json | grep -o '"io.containerd.image.name":"[^"]*"' | head -n1 | cut -d'"' -f4
}

write_containerd_config() {
    local name=$1 pause_image=$2 dir
    dir=$(node_dir "$name")
    mkdir -p "$dir/containerd/root" "$dir/containerd/state" "$dir/cni/net.d" "$dir/cni/ipam"
    cat >"$dir/containerd.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
plugin_dir = "$dir/containerd/plugins"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # Root here lacks CAP_SYS_RESOURCE: lowering a container's OOM score would fail.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN_DIR"
    conf_dir = "$dir/cni/net.d"
EOF
}

write_cni_config() {
    local name=$1 pod_cidr=$2 dir
    dir=$(node_dir "$name")
    # The bridge plugin for the pods that are not on the host network (the
    # address controller): they reach the API server through the `kubernetes`
    # Service, which kube-proxy translates, and leave masqueraded.
    cat >"$dir/cni/net.d/10-responder-test.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "responder-test",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{"subnet": "$pod_cidr"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

write_kubelet_config() {
    local name=$1 dir
    dir=$(node_dir "$name")
    cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 without systemd as PID 1: cgroupfs, and no QoS cgroup tree.
cgroupDriver: cgroupfs
cgroupsPerQOS: false
enforceNodeAllocatable: []
failSwapOn: false
# The API server reaches the kubelet (logs, exec) without a client
# certificate of its own: only this machine's test segment can.
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization: {mode: AlwaysAllow}
address: 0.0.0.0
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
serializeImagePulls: false
registryPullQPS: 0
# The disks of a test machine are not a reason to evict.
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
volumePluginDir: $dir/kubelet/volume-plugins
resolvConf: /etc/resolv.conf
EOF
}

cmd_node() {
    local name=$1 netns=$2 node_ip=$3 pod_cidr=$4 pause=$5 dir
    require containerd runc ctr "$CNI_BIN_DIR/bridge" "$CNI_BIN_DIR/host-local" "$CNI_BIN_DIR/portmap" \
        "$BIN_DIR/kubelet" "$BIN_DIR/kube-proxy" iptables
    [[ -f $STATE/node-kubeconfig ]] || die "node $name: start the control plane first"
    [[ -f $pause ]] || die "node $name: no pause image archive at $pause"
    dir=$(node_dir "$name")
    mkdir -p "$dir/kubelet"
    if ! compgen -G '/sys/fs/cgroup/*/k8s.io' >/dev/null; then
        touch "$STATE/made-cgroup-parent"
    fi
    start_holder "$name" "$netns"
    local pause_image
    pause_image=$(image_name "$pause")
    [[ -n $pause_image ]] || die "node $name: $pause names no image (io.containerd.image.name in its index.json)"
    write_containerd_config "$name" "$pause_image"
    write_cni_config "$name" "$pod_cidr"
    write_kubelet_config "$name"

    spawn_in_node "$name" "$dir/containerd.log" containerd --config "$dir/containerd.toml"
    wait_until "node $name: containerd" "$dir/containerd.log" "$(recorded_pid "$STATE" "containerd-$name")" \
        ctr_of "$name" version
    ctr_of "$name" images import "$pause" >>"$dir/containerd.log" 2>&1 ||
        fail "node $name: importing the pause image $pause" "$dir/containerd.log"

    spawn_in_node "$name" "$dir/kubelet.log" "$BIN_DIR/kubelet" \
        --config "$dir/kubelet.yaml" \
        --kubeconfig "$STATE/node-kubeconfig" \
        --container-runtime remote \
        --container-runtime-endpoint "unix://$dir/containerd.sock" \
        --runtime-request-timeout 2m \
        --root-dir "$dir/kubelet" \
        --cert-dir "$dir/kubelet/pki" \
        --hostname-override "$name" \
        --node-ip "$node_ip" \
        --pod-infra-container-image "$pause_image" \
        --v 1

    spawn_in_node "$name" "$dir/kube-proxy.log" "$BIN_DIR/kube-proxy" \
        --kubeconfig "$STATE/node-kubeconfig" \
        --hostname-override "$name" \
        --proxy-mode iptables \
        --cluster-cidr "$pod_cidr" \
        --metrics-bind-address 127.0.0.1:10249 \
        --healthz-bind-address 127.0.0.1:10256 \
        --conntrack-max-per-core 0 \
        --v 1

    wait_until "node $name: kubelet registers the Node and reports Ready" "$dir/kubelet.log" \
        "$(recorded_pid "$STATE" "kubelet-$name")" \
        bash -c "$(printf '%q ' bash "$SELF" kubectl "$STATE") get node $name -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
    log "node $name Ready ($node_ip)"
}

cmd_kubectl() {
    local netns
    netns=$(awk '$1 == "netns" {print $2}' "$STATE/cp/netns" 2>/dev/null) || true
    [[ -n $netns ]] || die "no control plane in $STATE"
    KUBECONFIG="$STATE/kubeconfig" exec nsenter --net="/run/netns/$netns" -- "$BIN_DIR/kubectl" --request-timeout 30s "$@"
}

# stop_pid NAME PID: SIGTERM, then SIGKILL after 10 s.
stop_pid() {
    local name=$1 pid=$2 i
    alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        alive "$pid" || return 0
        sleep 0.1
    done
    log "$name (pid $pid) ignored SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}

# Containers outlive containerd by design (their shims are separate
# processes): stop every task through containerd, then kill whatever is left
# in this node's containers' cgroups, then the shims that serve this node.
stop_containers() {
    local name=$1 dir sock pid id shims
    dir=$(node_dir "$name")
    sock="$dir/containerd.sock"
    shims=$(pgrep -f -- "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true)
    {
        if alive "$(recorded_pid "$STATE" "containerd-$name")"; then
            ctr_of "$name" containers ls -q 2>/dev/null || true
        fi
        for pid in $shims; do
            tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -A1 -x -- -id | tail -n1
        done
    } | sort -u >"$dir/containers"
    if alive "$(recorded_pid "$STATE" "containerd-$name")"; then
        for id in $(ctr_of "$name" tasks ls -q 2>/dev/null); do
            ctr_of "$name" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
        done
        sleep 0.5
        for id in $(ctr_of "$name" tasks ls -q 2>/dev/null); do
            ctr_of "$name" tasks delete -f "$id" >/dev/null 2>&1 || true
        done
    fi
    for id in $(cat "$dir/containers"); do
        for pid in $(cat "/sys/fs/cgroup/pids/k8s.io/$id/cgroup.procs" "/sys/fs/cgroup/k8s.io/$id/cgroup.procs" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
    done
    for pid in $shims; do
        kill -KILL "$pid" 2>/dev/null || true
    done
}

# runc puts every container's cgroup at /k8s.io/<container ID> in each
# controller (the kubelet, without QoS cgroups, names no parent). Each node
# removes its own containers' cgroups; the shared parent goes only if this
# cluster made it (node.sh node records that).
remove_cgroups() {
    local name=$1 id controller
    for id in $(cat "$(node_dir "$name")/containers" 2>/dev/null); do
        for controller in /sys/fs/cgroup/*/; do
            [[ -d ${controller}k8s.io/$id ]] || continue
            find "${controller}k8s.io/$id" -depth -type d -exec rmdir {} \; 2>/dev/null || true
        done
    done
}

remove_cgroup_parent() {
    [[ -f $STATE/made-cgroup-parent ]] || return 0
    local controller
    for controller in /sys/fs/cgroup/*/; do
        rmdir "${controller}k8s.io" 2>/dev/null || true
    done
}

cmd_stop() {
    [[ -d $STATE ]] || return 0
    local name
    for name in $(awk '$1 ~ /^kubelet-/ {sub(/^kubelet-/, "", $1); print $1}' "$STATE/pids" 2>/dev/null); do
        stop_pid "kubelet-$name" "$(recorded_pid "$STATE" "kubelet-$name")"
        stop_pid "kube-proxy-$name" "$(recorded_pid "$STATE" "kube-proxy-$name")"
        stop_containers "$name"
        stop_pid "containerd-$name" "$(recorded_pid "$STATE" "containerd-$name")"
        remove_cgroups "$name"
    done
    local entry pid
    for entry in $(awk '$1 ~ /^(holder-|kube-controller-manager|kube-scheduler)/ {print $1 ":" $2}' "$STATE/pids" 2>/dev/null); do
        name=${entry%%:*}; pid=${entry##*:}
        stop_pid "$name" "$pid"
    done
    [[ -d $STATE/cp ]] && bash "$HERE/apiserver.sh" stop "$STATE/cp" || true
    remove_cgroup_parent
    rm -f "$STATE/pids"
}

main() {
    local cmd=${1:-}
    shift || true
    case $cmd in
        control-plane) STATE=${1:?STATE_DIR}; mkdir -p "$STATE"; STATE=$(cd "$STATE" && pwd); cmd_control_plane "$@" ;;
        node) STATE=${1:?STATE_DIR}; STATE=$(cd "$STATE" && pwd); shift; cmd_node "$@" ;;
        import) STATE=${1:?}; ctr_of "${2:?NAME}" images import "${3:?ARCHIVE}" ;;
        ctr) STATE=${1:?}; local n=${2:?NAME}; shift 2; ctr_of "$n" "$@" ;;
        in-node) STATE=${1:?}; local n=${2:?NAME}; shift 2; in_node "$n" "$@" ;;
        kubectl) STATE=${1:?}; shift; cmd_kubectl "$@" ;;
        stop) STATE=${1:?}; cmd_stop ;;
        -h | --help | help | "") sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
        *) die "unknown command $cmd" ;;
    esac
}

main "$@"; exit
