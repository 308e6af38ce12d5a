#!/bin/sh
# tern's benchmark suite: runs tern and its reference (Postfix, Dovecot)
# side by side on 127.0.0.1 and prints a report plus a summary table.
#   sh bench/run.sh                      all: smtp_deliver pop3 imap relay login_load capacity milter http_load msgauth
#   sh bench/run.sh pop3 relay           only those
#   BENCH_MESSAGES=500 sh bench/run.sh   a quick run (see bench/README.md)
# Needs root (private Postfix/Dovecot instances, a `benchmail` user) and the
# packages scripts/setup.sh installs. Benchmarks are reports, never tests:
# the exit status is non-zero only when the suite itself could not run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: must run as root (private Postfix/Dovecot instances)" >&2
	exit 2
fi
for tool in $PY /usr/sbin/smtp-source /usr/sbin/smtp-sink /usr/sbin/postfix \
	/usr/sbin/dovecot /usr/bin/doveadm; do
	if [ ! -x "$tool" ]; then
		echo "bench: $tool missing; run 'sh scripts/setup.sh' (or make setup)" >&2
		exit 2
	fi
done

benches=${*:-smtp_deliver pop3 imap relay login_load capacity milter http_load msgauth}
for b in $benches; do
	case $b in
	smtp_deliver|pop3|imap|relay|login_load|capacity|milter|http_load|msgauth) ;;
	*) echo "bench: unknown benchmark '$b' (smtp_deliver, pop3, imap, relay, login_load, capacity, milter, http_load, msgauth)" >&2; exit 2 ;;
	esac
done

BENCH_RESULTS_DIR=$(mktemp -d /tmp/tern-bench-results-XXXXXX)
export BENCH_RESULTS_DIR
child=""
cleanup() {
	# each driver stops its own instances on SIGTERM (benchlib.Cleanup)
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null
		wait "$child" 2>/dev/null
	fi
	rm -rf "$BENCH_RESULTS_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

echo "tern benchmarks: $benches"
echo "machine: $($PY -c 'import sys; sys.path.insert(0, sys.argv[1]); import benchlib; print(benchlib.machine_info())' "$here")"
echo "tern: $($PY -c 'import sys; sys.path.insert(0, sys.argv[1]); import benchlib; print(benchlib.TERN_BIN)' "$here")"
start=$(date +%s)
for b in $benches; do
	$PY "$here/$b.py" &
	child=$!
	wait "$child" || echo "bench: $b exited with status $?" >&2
	child=""
done
$PY "$here/summary.py" "$BENCH_RESULTS_DIR" $benches
echo "total time: $(( $(date +%s) - start )) s"
