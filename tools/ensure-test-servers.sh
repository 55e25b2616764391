#!/bin/sh
# Install the servers the test-suite runs privately on loopback: Dovecot (IMAP), PostgreSQL 15,
# Postfix (the MTA that deploy/mta.md is proven against), and the headless browser the dashboard's
# screenshots are taken with (Debian's chromium).
# Nothing is started or enabled as a system service; the tests start their own instances in temp dirs.
# Without root (or apt) we only report; the tests then skip loudly, except under CI=true where they fail.
set -eu
missing=""
# dovecot-core alone has no IMAP server: look for the imap binary that dovecot-imapd ships (Debian layout).
{ command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ]; } && [ -x /usr/lib/dovecot/imap ] \
    || missing="$missing dovecot-imapd"
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
# Postfix replaces whatever MTA owns /usr/sbin/sendmail: never swap out another one (Exim, ...).
if [ ! -x /usr/sbin/postfix ]; then
    if [ -e /usr/sbin/sendmail ]; then
        echo "warning: another MTA is installed; not replacing it with postfix (its tests will skip)" >&2
    else
        missing="$missing postfix"
    fi
fi
{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } || missing="$missing chromium"
[ -n "$missing" ] || exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: missing test servers:$missing (not root, not installing; their tests will skip)" >&2
    exit 0
fi
echo "installing test servers:$missing ..." >&2
# policy-rc.d keeps Debian from starting the packages' system services.
policy=/usr/sbin/policy-rc.d
created_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix asks how to configure the system's mail; "No configuration" writes no /etc/postfix/main.cf
# (the tests give every private Postfix its own config directory).
if command -v debconf-set-selections >/dev/null 2>&1; then
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
fi
# shellcheck disable=SC2086
apt-get install -y -q $missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; }
[ "$created_policy" = 1 ] && rm -f "$policy"
exit 0
