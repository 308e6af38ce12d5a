#!/bin/sh
# Installs the Debian packages that tern's build, tests and benchmarks need.
# Does nothing when every package is already installed.
set -eu
PKGS="build-essential pkg-config clang libclang-rt-14-dev
libevent-dev libssl-dev libc-ares-dev libcrypt-dev libinih-dev libcmocka-dev
python3-pytest python3-aiosmtpd swaks curl msmtp mpop fetchmail dnsmasq-base
openssl postfix dovecot-core dovecot-pop3d dovecot-imapd procps strace bind9utils libpsl-dev publicsuffix rspamd
libnet-ssleay-perl libio-socket-ssl-perl libdigest-hmac-perl libauthen-sasl-perl
python3-prometheus-client pebble libjansson-dev python3-dkim opendkim python3-spf python3-dnspython
isync mutt"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
        || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "setup: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# postfix asks questions at install time; answer them up front.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# A Debian postfix/dovecot install starts system daemons; tests run their own
# private instances, so stop the system ones (they would hold port 25/110).
for s in postfix dovecot; do
    if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop "$s" 2>/dev/null || true; fi
    $SUDO service "$s" stop >/dev/null 2>&1 || true
done
exit 0
