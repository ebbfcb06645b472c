#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, starts the services it
# talks to if they are down, then installs the npm workspace (which also builds it).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mosquitto >/dev/null || missing+=(mosquitto)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
/usr/bin/python3 -c 'import paho.mqtt.client' 2>/dev/null || missing+=(python3-paho-mqtt)
# Headless browser for the status page / report tests; promtool checks the exported alert rules.
command -v chromium >/dev/null || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
# The cluster tests (issue 15) start their own nats-servers (3, routed, JetStream) on free ports.
[ -x /usr/sbin/nats-server ] || missing+=(nats-server)
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! port_open 5432 && command -v pg_ctlcluster >/dev/null; then
  echo "setup: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! port_open 4222 && [ -x /usr/sbin/nats-server ]; then
  echo "setup: starting NATS"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log || true
fi

# `npm install`, not `npm ci`: npm 11 with omit-lockfile-registry-resolved (set on these machines)
# drops other platforms' optional packages (biome) from the lock file, and `npm ci` then refuses it.
npm install --no-audit --no-fund
