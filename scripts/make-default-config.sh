#!/bin/sh
# SPDX-License-Identifier: MIT
# Creates a working default configuration on first use, inside the checkout only:
#   DIR/parley.conf, DIR/certs/localhost.{crt,key} (self-signed), DIR/data/, DIR/secrets/.
# An existing DIR/parley.conf is left alone.
set -eu
dir=${1:-run}
conf="$dir/parley.conf"
[ -f "$conf" ] && exit 0

umask 077
mkdir -p "$dir/certs" "$dir/data" "$dir/secrets"

if [ ! -f "$dir/certs/localhost.crt" ]; then
    # ECDSA P-256: every current client accepts it, and a handshake costs the server a
    # fraction of what an RSA signature does.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
        -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,DNS:*.localhost" \
        -keyout "$dir/certs/localhost.key" -out "$dir/certs/localhost.crt" 2>/dev/null
fi

# Secrets for XEP-0114 links: a third-party component (a gateway, a bot), and Parley's own
# c2s, sm and muc when they run as separate processes (parleyd c2s / sm / muc).
for name in gateway.localhost c2s-1.localhost localhost conference.localhost \
    parleyctl.localhost; do
    f="$dir/secrets/$name.secret"
    [ -f "$f" ] || openssl rand -hex 24 > "$f"
done

cat > "$conf" <<CONF
# Parley configuration, created by 'make run'. Every key is described in docs/config.md.

[log]
level = info

[router]
# Where XEP-0114 components connect. Loopback only: components are trusted peers.
listen = 127.0.0.1:5347
max_stanza_size = 1M
handshake_timeout = 10s

# A third-party component (a gateway, a bot) may connect as gateway.localhost with the
# secret in secrets/gateway.localhost.secret. Add one section per component.
[component "gateway.localhost"]
secret_file = secrets/gateway.localhost.secret

# parleyctl status logs in as this component: control = yes lets it ask the router and the
# components for their status (docs/config.md). Keep its secret file private.
[component "parleyctl.localhost"]
secret_file = secrets/parleyctl.localhost.secret
control = yes

# Parley's own components, used only when they run as separate processes.
[component "localhost"]
secret_file = secrets/localhost.secret

[component "c2s-1.localhost"]
secret_file = secrets/c2s-1.localhost.secret

[component "conference.localhost"]
secret_file = secrets/conference.localhost.secret

# Client connections: STARTTLS on 5222 (TLS required), direct TLS on 5223.
[c2s]
name = c2s-1.localhost
domain = localhost
listen = *:5222
listen_tls = *:5223
certificate = certs/localhost.crt
key = certs/localhost.key

# The session manager for localhost: rosters, presence, messages, offline storage.
[sm]
domain = localhost
offline_max = 100

# Multi-user chat (XEP-0045) at conference.localhost: rooms for the users of localhost.
[muc]
name = conference.localhost

[storage]
backend = sqlite
path = data/parley.db
CONF
echo "Created $conf (self-signed certificate in $dir/certs, data in $dir/data)."
