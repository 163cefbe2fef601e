#!/bin/sh
# Installs Debian's headless Chromium, its WebDriver and the NSS tools
# (certutil, pk12util) for the browser tests of tests/browser/, when they
# are missing and we are root on Debian: best effort.  The tests put a
# user's certificate into the browser's NSS database and choose it by a
# managed policy under /etc/chromium/policies/managed/.
missing=
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -x /usr/bin/chromedriver ] || command -v chromedriver >/dev/null 2>&1 \
    || missing="$missing chromium-driver"
{ command -v certutil >/dev/null 2>&1 && command -v pk12util >/dev/null 2>&1; } \
    || missing="$missing libnss3-tools"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "not installed:$missing (apt-get install$missing, as root):" \
         "the browser tests are skipped (they fail when CI is set)"
    exit 0
fi
(apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends $missing) >/dev/null 2>&1 \
    || echo "could not install$missing: the browser tests are skipped" \
            "(they fail when CI is set)"
exit 0
