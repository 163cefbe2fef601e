#!/bin/sh
# Installs Debian's redis-server for the tests of the shared store in Redis
# (tests/redisproc.py starts its own servers on free ports of 127.0.0.1),
# when it is missing and we are root on Debian: best effort.  The package's
# own service is not started (policy-rc.d says no while installing).
command -v redis-server >/dev/null 2>&1 && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "redis-server is not installed (apt-get install redis-server, as root):" \
         "the Redis store tests are skipped (they fail when CI is set)"
    exit 0
fi
policy=/usr/sbin/policy-rc.d
ours=
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && ours=1
fi
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends redis-server) >/dev/null 2>&1 \
    || echo "could not install redis-server: the Redis store tests are skipped" \
            "(they fail when CI is set)"
[ -n "$ours" ] && rm -f "$policy"
exit 0
