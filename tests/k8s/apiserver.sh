#!/usr/bin/env bash
# Run a REAL kube-apiserver (Kubernetes v1.20.2, built from Debian bookworm's
# `kubernetes` source package) + etcd on 127.0.0.1 for integration tests.
# Works offline apart from the Debian mirror (apt) used by `build`.
#
# Usage:
#   tests/k8s/apiserver.sh build                 # build/cache kube-apiserver + kubectl (idempotent)
#   tests/k8s/apiserver.sh start STATE_DIR       # certs, etcd, kube-apiserver; writes STATE_DIR/kubeconfig
#   tests/k8s/apiserver.sh stop STATE_DIR        # kill the recorded PIDs (idempotent)
#   tests/k8s/apiserver.sh status STATE_DIR      # exit 0 if /readyz answers ok
#   tests/k8s/apiserver.sh kubectl STATE_DIR ARGS...   # kubectl with KUBECONFIG=STATE_DIR/kubeconfig
#   tests/k8s/apiserver.sh curl STATE_DIR PATH [CURL ARGS...]
#                                                # curl https://127.0.0.1:PORT/PATH with admin client cert
#   tests/k8s/apiserver.sh patch-status STATE_DIR NAMESPACE/SERVICE JSON
#                                                # merge-patch a Service's /status subresource
#   tests/k8s/apiserver.sh kill-apiserver STATE_DIR
#                                                # SIGKILL kube-apiserver only; etcd and its data stay
#   tests/k8s/apiserver.sh start-apiserver STATE_DIR
#                                                # start kube-apiserver again, same port/etcd/certs
#   tests/k8s/apiserver.sh etcd-delete STATE_DIR KEY
#                                                # delete KEY in etcd behind the server's back (e.g.
#                                                # /registry/services/specs/NS/NAME); prints the count
#   tests/k8s/apiserver.sh bin-dir               # print the directory holding kube-apiserver/kubectl
#   tests/k8s/apiserver.sh kubectl-path          # print the kubectl path
#
# Environment:
#   RESPONDER_CACHE   cache root (default $HOME/.cache/responder); binaries in $RESPONDER_CACHE/kube/
#   KUBE_BUILD_DIR    build work dir (default $RESPONDER_CACHE/kube-build; removed after a
#                     successful build unless KUBE_KEEP_BUILD=1)
#   KUBE_START_TIMEOUT  seconds to wait for readiness in `start` (default 60)
#   SERVICE_CLUSTER_IP_RANGE, SERVICE_NODE_PORT_RANGE
#                     `start`: the defaults (198.51.100.0/24, 30000-32767) hold a few hundred
#                     Services; a benchmark creating thousands widens them
#   KUBE_FEATURE_GATES  `start`: --feature-gates of kube-apiserver (default none), e.g.
#                     IPv6DualStack=true with a dual-stack SERVICE_CLUSTER_IP_RANGE
#                     (198.51.100.0/24,2001:db8:ffff::/112) so ipFamilyPolicy/ipFamilies are real
#   KUBE_BIND_ADDRESS, KUBE_ADVERTISE_ADDRESS, KUBE_ENDPOINT_RECONCILER
#                     `start`: where kube-apiserver listens and what the `kubernetes`
#                     Service points at (defaults 127.0.0.1, 127.0.0.1, none); a cluster
#                     with real nodes (tests/k8s/node.sh) serves pods on a segment
#                     address with the `lease` reconciler
#
# Files in STATE_DIR after `start` (etcd data is wiped on every start):
#   kubeconfig  admin kubeconfig, embedded certs, user CN=responder-admin O=system:masters,
#               context namespace "default"
#   pids        "<name> <pid>" lines of the processes started (etcd, kube-apiserver)
#   env         shell-sourceable: KUBECONFIG, K8S_API_URL, K8S_API_PORT, ETCD_URL, KUBECTL
#   pki/        ca.crt ca.key server.* admin.* sa.key sa.pub (RSA 2048, X.509 v3 with EKU/SANs)
#   etcd.log apiserver.log
#
# Notes on v1.20:
# - kubectl 1.20 has no `patch --subresource`. Patch Service status with
#     apiserver.sh patch-status STATE_DIR NS/NAME '{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.1"}]}}}'
#   (= curl -X PATCH -H 'Content-Type: application/merge-patch+json' .../services/NAME/status with the
#   admin cert), or `kubectl replace --raw /api/v1/namespaces/NS/services/NAME/status -f full-object.json`
#   (PUT), or through `kubectl proxy`.
# - kubectl 1.20 embeds kustomize v2.0.3 (`apply -k` with resources:/namespace:/patchesStrategicMerge:).
# - discovery.k8s.io/v1 (EndpointSlice) is not served (only v1beta1); events.k8s.io/v1,
#   coordination.k8s.io/v1 are. Fields newer than 1.20 (Lease strategy/preferredHolder,
#   LoadBalancerIngress ipMode; ingress ports needs the off-by-default MixedProtocolLBService gate)
#   are silently dropped. Watch with resourceVersionMatch
#   (kube-runtime `streaming_lists()`) is rejected (422).
# - No kube-controller-manager runs: no ServiceAccount tokens (the default/default ServiceAccount is
#   created by `start`; other namespaces have none), no garbage collection, no namespace
#   finalization (deleted namespaces stay Terminating), no endpoints controller, no node lifecycle.
#   The `kubernetes` Service has no Endpoints (--endpoint-reconciler-type=none).
set -euo pipefail

KUBE_VERSION_PKG="1.20.5+really1.20.2-1.1+deb12u1"
KUBE_GIT_VERSION="v1.20.2"
KUBE_GIT_COMMIT="faecb196815e248d3ecfb03c680a4507229c2a56"
GO=/usr/lib/go-1.19/bin/go
REFLECT2_SRC=/usr/share/gocode/src/github.com/modern-go/reflect2

CACHE_ROOT="${RESPONDER_CACHE:-$HOME/.cache/responder}"
BIN_DIR="$CACHE_ROOT/kube"
APISERVER="$BIN_DIR/kube-apiserver"
KUBECTL="$BIN_DIR/kubectl"
ETCD="${ETCD:-/usr/bin/etcd}"

log() { echo "apiserver.sh: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2; }

# ---------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------
# Everything a real node needs comes from one source build, sharing one Go
# cache: the control plane, the kubelet and kube-proxy (tests/k8s/node.sh).
KUBE_BINARIES=(kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy)

binaries_ok() {
    local b
    for b in "${KUBE_BINARIES[@]}"; do
        [[ -x "$BIN_DIR/$b" ]] || return 1
    done
    "$APISERVER" --version >/dev/null 2>&1 || return 1
    "$KUBECTL" version --client >/dev/null 2>&1 || return 1
}

ensure_packages() {
    local pkgs=(dpkg-dev golang-1.19 golang-github-modern-go-reflect2-dev etcd-server rsync openssl curl)
    local missing=() p
    for p in "${pkgs[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            missing+=("$p")
        fi
    done
    if ((${#missing[@]})); then
        log "installing: ${missing[*]}"
        [[ $(id -u) == 0 ]] || die "need root to apt-get install ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
}

# Fetch the kubernetes source package with a private apt configuration (deb-src entries
# derived from the system's deb entries), so /etc/apt and /var/lib/apt are not modified.
fetch_source() {
    local work="$1" aptdir="$1/apt"
    mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial"
    : >"$aptdir/src.sources"
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -e $f ]] || continue
        # only Debian entries (skip third-party repos that are unreachable)
        if grep -qE '^URIs:.*debian' "$f"; then
            sed -E 's/^Types:.*$/Types: deb-src/' "$f" >>"$aptdir/src.sources"
            echo >>"$aptdir/src.sources"
        fi
    done
    local oneline=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -e $f ]] || continue
        while read -r line; do oneline+=("$line"); done < <(grep -E '^deb[[:space:]].*debian' "$f" | sed -E 's/^deb([[:space:]])/deb-src\1/')
    done
    if ((${#oneline[@]})); then
        printf '%s\n' "${oneline[@]}" >"$aptdir/src.list"
    fi
    if [[ ! -s "$aptdir/src.sources" && ! -s "$aptdir/src.list" ]]; then
        # Only the sources this machine is configured with are used: no mirror is guessed.
        die "no Debian 'deb' entry in /etc/apt/sources.list or /etc/apt/sources.list.d/ to derive a deb-src entry from; add the Debian archive this machine uses, then run '$0 build' again"
    fi
    # A private sources.list.d with only our files.
    mkdir -p "$aptdir/sources.list.d"
    [[ -s "$aptdir/src.sources" ]] && cp "$aptdir/src.sources" "$aptdir/sources.list.d/src.sources"
    [[ -s "$aptdir/src.list" ]] && cp "$aptdir/src.list" "$aptdir/sources.list.d/src.list"
    local aptopts=(
        -o "Dir::Etc::SourceList=/dev/null"
        -o "Dir::Etc::SourceParts=$aptdir/sources.list.d"
        -o "Dir::State::Lists=$aptdir/lists"
        -o "Dir::Cache::Archives=$aptdir/archives"
        -o "Dir::Cache::pkgcache="
        -o "Dir::Cache::srcpkgcache="
        -o "APT::Get::List-Cleanup=0"
        -o "APT::Sandbox::User=root"
    )
    apt-get "${aptopts[@]}" update
    mkdir -p "$work/src"
    (cd "$work/src" && apt-get "${aptopts[@]}" source "kubernetes=$KUBE_VERSION_PKG")
}

cmd_build() {
    if binaries_ok; then
        log "cached binaries OK"
        echo "$BIN_DIR"
        return 0
    fi
    ensure_packages
    [[ -x $GO ]] || die "$GO missing"
    [[ -d $REFLECT2_SRC ]] || die "$REFLECT2_SRC missing"

    local work="${KUBE_BUILD_DIR:-$CACHE_ROOT/kube-build}"
    mkdir -p "$work" "$BIN_DIR"
    local buildlog="$work/build.log"
    : >"$buildlog"
    log "building ${KUBE_BINARIES[*]} $KUBE_GIT_VERSION in $work (log: $buildlog; takes several minutes)"
    local t0=$SECONDS

    # NB: not `if ! ( ... )` -- errexit is ignored inside a subshell used as a condition.
    local rc=0
    set +e
    (
        set -euo pipefail
        exec >>"$buildlog" 2>&1
        local srcdir
        srcdir=$(ls -d "$work"/src/kubernetes-*/ 2>/dev/null | head -n1 || true)
        srcdir=${srcdir%/}
        if [[ -z $srcdir || ! -f $srcdir/go.mod ]]; then
            rm -rf "$work/src"
            fetch_source "$work"
            srcdir=$(ls -d "$work"/src/kubernetes-*/ | head -n1)
            srcdir=${srcdir%/}
        fi
        cd "$srcdir"
        # reflect2 1.0.1 (vendored) crashes with Go >= 1.18; use Debian's fixed 1.0.2.
        local v=vendor/github.com/modern-go/reflect2
        find "$v" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) -delete
        find "$REFLECT2_SRC" -maxdepth 1 -type f \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
            -exec cp {} "$v/" \;
        # Kubernetes 1.20 builds in GOPATH mode (hack/lib/init.sh sets GO111MODULE=off; module
        # mode fails with "updates to go.mod needed"), using the vendor/ tree.
        export GOPATH="$work/gopath" GOCACHE="$work/gocache" HOME="$work"
        export GO111MODULE=off GOFLAGS=-mod=vendor GOPROXY=off CGO_ENABLED=0 GOTOOLCHAIN=local
        export PATH="/usr/lib/go-1.19/bin:$PATH"
        mkdir -p "$GOPATH/src/k8s.io"
        ln -sfn "$srcdir" "$GOPATH/src/k8s.io/kubernetes"
        cd "$GOPATH/src/k8s.io/kubernetes"
        local vpkg=k8s.io/kubernetes/vendor/k8s.io/component-base/version
        local cpkg=k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version
        local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
        local ld="-s -w"
        local p
        for p in $vpkg $cpkg; do
            ld+=" -X $p.gitVersion=$KUBE_GIT_VERSION -X $p.gitMajor=1 -X $p.gitMinor=20"
            ld+=" -X $p.gitCommit=$KUBE_GIT_COMMIT -X $p.gitTreeState=clean -X $p.buildDate=$date"
        done
        "$GO" version
        # pkg/generated/openapi/zz_generated.openapi.go is not in the source tarball (the
        # Makefile generates it); generate it the way Makefile.generated_files does.
        if [[ ! -s pkg/generated/openapi/zz_generated.openapi.go ]]; then
            "$GO" build -o "$work/out/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
            local dirs
            dirs=$(find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print \
                | sed 's|^\./staging/src|vendor|; s|^\./||' \
                | xargs grep -l '^// *+k8s:' | xargs grep -l '+k8s:openapi-gen=' \
                | grep -v -e '^vendor/k8s.io/code-generator/' -e '^vendor/k8s.io/sample-apiserver/' \
                | xargs -n1 dirname | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd,)
            "$work/out/openapi-gen" --logtostderr -i "$dirs" \
                -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
                -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt \
                -r "$work/openapi-violations.report"
        fi
        local b
        for b in "${KUBE_BINARIES[@]}"; do
            [[ -x $work/out/$b ]] && continue
            "$GO" build -trimpath -ldflags "$ld" -o "$work/out/$b" "./cmd/$b"
        done
    )
    rc=$?
    set -e
    if ((rc != 0)); then
        log "build FAILED after $((SECONDS - t0))s; tail of $buildlog:"
        tail -n 40 "$buildlog" >&2
        exit 1
    fi
    local b
    for b in "${KUBE_BINARIES[@]}"; do
        install -m 0755 "$work/out/$b" "$BIN_DIR/$b.tmp" && mv -f "$BIN_DIR/$b.tmp" "$BIN_DIR/$b"
    done
    binaries_ok || die "built binaries do not run; see $buildlog"
    log "built in $((SECONDS - t0))s: $("$APISERVER" --version)"
    if [[ ${KUBE_KEEP_BUILD:-0} != 1 ]]; then
        cp "$buildlog" "$BIN_DIR/build.log"
        chmod -R u+w "$work" 2>/dev/null || true
        rm -rf "$work"
    fi
    echo "$BIN_DIR"
}

# ---------------------------------------------------------------------------
# start / stop
# ---------------------------------------------------------------------------
free_port() {
    # Ask the kernel for a free port (python3), else probe random ports with ss.
    local p
    if p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' 2>/dev/null) && [[ $p =~ ^[0-9]+$ ]]; then
        echo "$p"; return
    fi
    local i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 30000))
        if ! ss -Htan "( sport = :$p )" 2>/dev/null | grep -q .; then echo "$p"; return; fi
    done
    die "no free port found"
}

gen_certs() {
    local pki="$1"
    mkdir -p "$pki"
    chmod 700 "$pki"
    local o=(-sha256 -days 3650)
    if [[ ! -s $pki/ca.crt ]]; then
        openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
        openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=responder-test-ca" "${o[@]}" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
            -addext "subjectKeyIdentifier=hash" \
            -out "$pki/ca.crt"
    fi
    # $1=name $2=subject $3=extfile contents
    issue() {
        local name="$1" subj="$2" ext="$3"
        [[ -s $pki/$name.crt ]] && return 0
        openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
        openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr"
        printf '%s\n' "$ext" >"$pki/$name.ext"
        openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
            "${o[@]}" -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
        rm -f "$pki/$name.csr"
    }
    issue server "/CN=kube-apiserver" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:198.51.100.1,IP:2001:db8:ffff::1${KUBE_ADVERTISE_ADDRESS:+,IP:$KUBE_ADVERTISE_ADDRESS}"
    issue admin "/O=system:masters/CN=responder-admin" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid"
    if [[ ! -s $pki/sa.key ]]; then
        openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
        openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
    fi
    chmod 600 "$pki"/*.key
}

b64() { base64 -w0 <"$1"; }

write_kubeconfig() {
    local state="$1" port="$2" pki="$1/pki"
    cat >"$state/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: responder-test
  cluster:
    server: https://127.0.0.1:$port
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: responder-admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: responder-test
  context:
    cluster: responder-test
    user: responder-admin
    namespace: default
current-context: responder-test
preferences: {}
EOF
    chmod 600 "$state/kubeconfig.tmp"
    mv -f "$state/kubeconfig.tmp" "$state/kubeconfig"
}

# pid_alive PID NAME: PID exists and its cmdline starts with a binary called NAME
pid_alive() {
    local pid="$1" name="$2" exe
    [[ -r /proc/$pid/cmdline ]] || return 1
    local argv
    mapfile -t argv < <(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null)
    exe=${argv[0]:-}
    # Just launched: setsid has not exec'd the program yet.
    [[ $(basename -- "$exe") == setsid ]] && exe=${argv[1]:-}
    [[ $(basename -- "$exe") == "$name" ]] || return 1
    # zombie counts as dead
    [[ $(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null) != Z ]]
}

api_curl() {
    local state="$1"; shift
    local pki="$state/pki"
    curl -sS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"
}

fail_start() {
    local state="$1" msg="$2"
    # A free port picked by free_port() may be taken by someone else before etcd or
    # kube-apiserver binds it (parallel test runs): retry with new ports.
    local attempt=${_APISERVER_SH_ATTEMPT:-1}
    if ((attempt < 3)) && grep -qi 'address already in use' "$state/etcd.log" "$state/apiserver.log" 2>/dev/null; then
        log "port collision ($msg); retrying (attempt $((attempt + 1)))"
        cmd_stop "$state" >/dev/null 2>&1 || true
        _APISERVER_SH_ATTEMPT=$((attempt + 1)) exec "$0" start "$state"
    fi
    log "ERROR: $msg"
    local f
    for f in "$state/etcd.log" "$state/apiserver.log"; do
        [[ -f $f ]] || continue
        log "---- tail of $f ----"
        tail -n 30 "$f" >&2
    done
    cmd_stop "$state" >/dev/null 2>&1 || true
    exit 1
}

# launch_apiserver STATE ETCD_CLIENT_PORT API_PORT: start kube-apiserver in the background
# (appending to its log), record its PID in STATE/pids and in LAUNCHED_PID.
launch_apiserver() {
    local state="$1" etcd_client="$2" api_port="$3" pki="$1/pki"
    setsid "$APISERVER" \
        --etcd-servers "http://127.0.0.1:$etcd_client" \
        --bind-address "${KUBE_BIND_ADDRESS:-127.0.0.1}" \
        --advertise-address "${KUBE_ADVERTISE_ADDRESS:-127.0.0.1}" \
        --secure-port "$api_port" \
        --insecure-port 0 \
        --cert-dir "$pki" \
        --tls-cert-file "$pki/server.crt" \
        --tls-private-key-file "$pki/server.key" \
        --client-ca-file "$pki/ca.crt" \
        --authorization-mode RBAC \
        --service-cluster-ip-range "${SERVICE_CLUSTER_IP_RANGE:-198.51.100.0/24}" \
        --service-node-port-range "${SERVICE_NODE_PORT_RANGE:-30000-32767}" \
        ${KUBE_FEATURE_GATES:+--feature-gates "$KUBE_FEATURE_GATES"} \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$pki/sa.pub" \
        --service-account-signing-key-file "$pki/sa.key" \
        --endpoint-reconciler-type "${KUBE_ENDPOINT_RECONCILER:-none}" \
        --kubelet-preferred-address-types InternalIP \
        --enable-priority-and-fairness=false \
        --allow-privileged=true \
        --profiling=false \
        --v 1 \
        </dev/null >>"$state/apiserver.log" 2>&1 &
    echo "kube-apiserver $!" >>"$state/pids"
    LAUNCHED_PID=$!
}

cmd_start() {
    local state="${1:?usage: start STATE_DIR}"
    binaries_ok || die "binaries missing in $BIN_DIR; run '$0 build' first"
    [[ -x $ETCD ]] || die "$ETCD missing (apt-get install etcd-server)"
    mkdir -p "$state"
    state=$(cd "$state" && pwd)
    if [[ -f $state/pids ]]; then
        local name pid
        while read -r name pid; do
            if pid_alive "$pid" "$name"; then die "already running in $state ($name pid $pid); stop it first"; fi
        done <"$state/pids"
        rm -f "$state/pids"
    fi
    local timeout="${KUBE_START_TIMEOUT:-60}"

    gen_certs "$state/pki"
    local pki="$state/pki"

    local etcd_client etcd_peer api_port
    etcd_client=$(free_port); etcd_peer=$(free_port); api_port=$(free_port)
    while [[ $etcd_peer == "$etcd_client" ]]; do etcd_peer=$(free_port); done
    while [[ $api_port == "$etcd_client" || $api_port == "$etcd_peer" ]]; do api_port=$(free_port); done

    # Fresh etcd data on every start.
    rm -rf "$state/etcd"
    mkdir -p "$state/etcd"
    chmod 700 "$state/etcd"
    : >"$state/pids"

    setsid "$ETCD" \
        --name responder-test \
        --data-dir "$state/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_client" \
        --advertise-client-urls "http://127.0.0.1:$etcd_client" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-cluster "responder-test=http://127.0.0.1:$etcd_peer" \
        --initial-cluster-state new \
        --snapshot-count 10000 \
        --logger zap --log-outputs stderr --log-level warn \
        </dev/null >"$state/etcd.log" 2>&1 &
    echo "etcd $!" >>"$state/pids"
    local etcd_pid=$!

    # wait for etcd health
    local deadline=$((SECONDS + timeout))
    until curl -sf "http://127.0.0.1:$etcd_client/health" 2>/dev/null | grep -q '"health":"true"'; do
        pid_alive "$etcd_pid" etcd || fail_start "$state" "etcd exited"
        ((SECONDS < deadline)) || fail_start "$state" "etcd not healthy after ${timeout}s"
        sleep 0.2
    done

    : >"$state/apiserver.log"
    launch_apiserver "$state" "$etcd_client" "$api_port"
    local api_pid=$LAUNCHED_PID

    write_kubeconfig "$state" "$api_port"
    cat >"$state/env" <<EOF
export KUBECONFIG='$state/kubeconfig'
export K8S_API_URL='https://127.0.0.1:$api_port'
export K8S_API_PORT='$api_port'
export ETCD_URL='http://127.0.0.1:$etcd_client'
export KUBECTL='$KUBECTL'
EOF

    until [[ $(api_curl "$state" -m 5 "https://127.0.0.1:$api_port/readyz" 2>/dev/null || true) == ok ]]; do
        pid_alive "$api_pid" kube-apiserver || fail_start "$state" "kube-apiserver exited"
        pid_alive "$etcd_pid" etcd || fail_start "$state" "etcd exited"
        ((SECONDS < deadline)) || fail_start "$state" "kube-apiserver not ready after ${timeout}s"
        sleep 0.5
    done

    # The `default` namespace is created by the apiserver itself; the `default` ServiceAccount
    # normally comes from kube-controller-manager (not running), so create it here.
    local k=("$KUBECTL" --kubeconfig "$state/kubeconfig" --request-timeout 10s)
    until "${k[@]}" get namespace default >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail_start "$state" "namespace default not created after ${timeout}s"
        sleep 0.5
    done
    until "${k[@]}" -n default get serviceaccount default >/dev/null 2>&1; do
        "${k[@]}" -n default create serviceaccount default >/dev/null 2>&1 || true
        ((SECONDS < deadline)) || fail_start "$state" "could not create serviceaccount default/default"
        sleep 0.2
    done
    log "ready: https://127.0.0.1:$api_port (KUBECONFIG=$state/kubeconfig)"
}

# The pid recorded for NAME in STATE/pids (empty if none).
recorded_pid() {
    awk -v n="$2" '$1 == n {print $2}' "$1/pids" 2>/dev/null | tail -n1
}

# Kills only kube-apiserver, as a crash or a node reboot would: clients see
# connection refused, etcd keeps the cluster state for the restart.
cmd_kill_apiserver() {
    local state="${1:?usage: kill-apiserver STATE_DIR}" pid i
    pid=$(recorded_pid "$state" kube-apiserver)
    [[ -n $pid ]] && pid_alive "$pid" kube-apiserver || die "no running kube-apiserver recorded in $state"
    kill -KILL "$pid"
    for ((i = 0; i < 100; i++)); do
        pid_alive "$pid" kube-apiserver || break
        sleep 0.1
    done
    pid_alive "$pid" kube-apiserver && die "kube-apiserver (pid $pid) survived SIGKILL"
    grep -v "^kube-apiserver $pid\$" "$state/pids" >"$state/pids.tmp" || true
    mv -f "$state/pids.tmp" "$state/pids"
    log "killed kube-apiserver (pid $pid)"
}

cmd_start_apiserver() {
    local state="${1:?usage: start-apiserver STATE_DIR}" pid etcd_pid
    # shellcheck disable=SC1091
    source "$state/env"
    pid=$(recorded_pid "$state" kube-apiserver)
    [[ -n $pid ]] && pid_alive "$pid" kube-apiserver && die "kube-apiserver already running (pid $pid)"
    etcd_pid=$(recorded_pid "$state" etcd)
    [[ -n $etcd_pid ]] && pid_alive "$etcd_pid" etcd || die "etcd is not running in $state"
    launch_apiserver "$state" "${ETCD_URL##*:}" "$K8S_API_PORT"
    local api_pid=$LAUNCHED_PID timeout="${KUBE_START_TIMEOUT:-60}"
    local deadline=$((SECONDS + timeout))
    until [[ $(api_curl "$state" -m 5 "$K8S_API_URL/readyz" 2>/dev/null || true) == ok ]]; do
        pid_alive "$api_pid" kube-apiserver || { tail -n 30 "$state/apiserver.log" >&2; die "kube-apiserver exited"; }
        ((SECONDS < deadline)) || die "kube-apiserver not ready after ${timeout}s"
        sleep 0.5
    done
    log "restarted: $K8S_API_URL (pid $api_pid)"
}

# Through etcd's gRPC gateway (JSON, keys base64), so no etcdctl is needed.
cmd_etcd_delete() {
    local state="${1:?usage: etcd-delete STATE_DIR KEY}" key="${2:?usage: etcd-delete STATE_DIR KEY}" out
    # shellcheck disable=SC1091
    source "$state/env"
    out=$(curl -sS -f -m 10 -X POST "$ETCD_URL/v3/kv/deleterange" \
        --data "{\"key\":\"$(printf '%s' "$key" | base64 -w0)\"}") || die "etcd deleterange $key failed"
    local deleted
    deleted=$(sed -nE 's/.*"deleted":"?([0-9]+)"?.*/\1/p' <<<"$out")
    echo "${deleted:-0}"
}

cmd_stop() {
    local state="${1:?usage: stop STATE_DIR}"
    [[ -f $state/pids ]] || return 0
    local entries=() name pid
    while read -r name pid; do
        [[ -n ${pid:-} ]] && entries+=("$name:$pid")
    done <"$state/pids"
    # stop the apiserver before etcd (reverse order)
    local i
    for ((i = ${#entries[@]} - 1; i >= 0; i--)); do
        name=${entries[i]%%:*}; pid=${entries[i]##*:}
        pid_alive "$pid" "$name" && kill -TERM "$pid" 2>/dev/null || true
    done
    local deadline=$((SECONDS + 15)) alive
    while :; do
        alive=0
        for i in "${entries[@]}"; do
            pid_alive "${i##*:}" "${i%%:*}" && alive=1
        done
        ((alive)) || break
        if ((SECONDS >= deadline)); then
            for i in "${entries[@]}"; do
                if pid_alive "${i##*:}" "${i%%:*}"; then
                    log "killing ${i%%:*} (pid ${i##*:}) with SIGKILL"
                    kill -KILL "${i##*:}" 2>/dev/null || true
                fi
            done
            sleep 0.2
            break
        fi
        sleep 0.2
    done
    rm -f "$state/pids"
}

cmd_status() {
    local state="${1:?usage: status STATE_DIR}"
    [[ -f $state/env ]] || die "no env in $state"
    # shellcheck disable=SC1091
    source "$state/env"
    [[ $(api_curl "$state" -m 5 "$K8S_API_URL/readyz" 2>/dev/null || true) == ok ]]
}

cmd_curl() {
    local state="${1:?usage: curl STATE_DIR PATH [curl args]}" path="${2:?usage: curl STATE_DIR PATH [curl args]}"
    shift 2
    # shellcheck disable=SC1091
    source "$state/env"
    api_curl "$state" "$@" "$K8S_API_URL/${path#/}"
}

cmd_patch_status() {
    local state="${1:?}" target="${2:?usage: patch-status STATE_DIR NAMESPACE/NAME JSON}" json="${3:?JSON merge patch}"
    local ns=${target%%/*} name=${target#*/}
    [[ $ns != "$target" ]] || { ns=default; name=$target; }
    cmd_curl "$state" "/api/v1/namespaces/$ns/services/$name/status" \
        -f -X PATCH -H 'Content-Type: application/merge-patch+json' --data "$json"
    echo
}

main() {
    local cmd="${1:-}"
    shift || true
    case "$cmd" in
        build) cmd_build ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        kubectl)
            local state="${1:?usage: kubectl STATE_DIR ARGS...}"; shift
            binaries_ok || die "binaries missing; run '$0 build'"
            KUBECONFIG="$state/kubeconfig" exec "$KUBECTL" "$@" ;;
        curl) cmd_curl "$@" ;;
        patch-status) cmd_patch_status "$@" ;;
        kill-apiserver) cmd_kill_apiserver "$@" ;;
        start-apiserver) cmd_start_apiserver "$@" ;;
        etcd-delete) cmd_etcd_delete "$@" ;;
        bin-dir) echo "$BIN_DIR" ;;
        kubectl-path) echo "$KUBECTL" ;;
        -h | --help | help | "") usage ;;
        *) log "unknown command: $cmd"; usage ;;
    esac
}

# `exit` on the same line: bash reads scripts incrementally, so editing this file while it runs
# must not make it execute more code after main returns.
main "$@"; exit
