#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine (run as root): the apt packages the lab
# and the tests need, a .venv with Ryu 4.34 installed by its working recipe, and mud_ryu
# installed editable with its test tools. Re-running it does only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

APT_PACKAGES=(openvswitch-switch openvswitch-common mininet lldpd dnsmasq-base isc-dhcp-client
              udhcpc busybox tcpdump tshark iperf iputils-ping ethtool iproute2 util-linux
              curl netcat-openbsd openssl)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing apt packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # No services are started (the image's policy-rc.d); OVS is run by hand inside sandboxes.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp="$VENV/.mud_ryu-setup"
want=$(cat setup.cfg pyproject.toml setup.py scripts/setup.sh scripts/ryu-build-constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/ryu-manager" ]; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install 'pip>=23,<27'
# Ryu 4.34's setup.py needs setuptools < 66 (get_script_args); build it without isolation.
"${PIP[@]}" install -c scripts/ryu-build-constraints.txt 'setuptools<66' pbr wheel
if ! "$VENV/bin/python" -c 'import ryu' 2>/dev/null; then
  "${PIP[@]}" install --no-build-isolation -c scripts/ryu-build-constraints.txt ryu==4.34
fi
"${PIP[@]}" install -c scripts/ryu-build-constraints.txt -e '.[test]'
echo "$want" > "$stamp"
echo "setup: ready ($VENV)"
