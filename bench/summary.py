#!/usr/bin/python3
"""Prints the final summary table of a bench/run.sh run from the JSON rows
the benchmarks left in the results directory (argv[1]), in the order of
the benchmark names that follow it."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as b  # noqa: E402

REFERENCE = {"smtp_deliver": "Postfix", "pop3": "Dovecot", "imap": "Dovecot", "relay": "Postfix", "login_load": "idle", "capacity": "target",
             "milter": "Postfix", "mxchecks": "off", "http_load": "alone"}
# bench/msgauth.py's rows: inbound checks on against off; signing against Postfix + OpenDKIM
REFERENCE.update({"msgauth_in": "chk off", "msgauth_sign": "Pfx+ODK"})


def main():
    out, names = sys.argv[1], sys.argv[2:]
    rows, notes = [], []
    for name in names:
        try:
            with open(os.path.join(out, name + ".json")) as f:
                res = json.load(f)
            rows += res["rows"]
            notes += [f"{name}: {n}" for n in res["notes"]]
        except (OSError, ValueError, KeyError):
            notes.append(f"{name}: no results (the benchmark failed; see above)")
    print("\n== summary: ratio = tern / reference (/s: higher is better for tern;"
          " ms, CPU, RSS: lower is)")
    head = f"{'benchmark':12} {'ref':7} {'case':17} {'metric':26} " \
           f"{'reference':>10} {'tern':>10} {'ratio':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        ref, tern = r["reference"], r["tern"]
        spec = r.get("spec", ".2f")
        print(f"{r['bench']:12} {REFERENCE.get(r['bench'], '-'):7} {r['case']:17} "
              f"{r['metric']:26} {b.fmt(ref, spec):>10} {b.fmt(tern, spec):>10} "
              f"{b.fmt(r['ratio'], '.2f'):>7}")
    if notes:
        print("notes:")
        for n in notes:
            print("  " + n)


if __name__ == "__main__":
    main()
