#!/usr/bin/python3
"""Runs every test layer and ends with one line `N passed, M failed`.

Layers: cmocka unit tests (normal build and ASan/UBSan build), a short
libFuzzer run of each harness over its corpus, and the pytest integration
suite against the real binary (normal build, then the sanitizer build).
"""
import os
import re
import subprocess
import sys
import glob

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(ROOT)
passed = failed = 0
failures = []


def count(name, ok_n, bad_n):
    global passed, failed
    passed += ok_n
    failed += bad_n
    if bad_n:
        failures.append(name)


def run_unit(build):
    for exe in sorted(glob.glob(f"{build}/tests/test_*")):
        if not os.access(exe, os.X_OK) or exe.endswith(".d"):
            continue
        p = subprocess.run([exe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       errors="replace")
        sys.stdout.write(p.stdout)
        ok = sum(int(m) for m in re.findall(r"\[  PASSED  \] (\d+) test", p.stdout))
        bad = sum(int(m) for m in re.findall(r"\[  FAILED  \] (\d+) test", p.stdout))
        if p.returncode != 0 and bad == 0:
            bad = 1
        count(f"{build}:{os.path.basename(exe)}", ok, bad)


def run_fuzz():
    secs = os.environ.get("FUZZ_SECONDS", "10")
    for exe in sorted(glob.glob("build-fuzz/fuzz_*")):
        name = os.path.basename(exe)
        corpus = f"tests/fuzz/corpus/{name}"
        os.makedirs(corpus, exist_ok=True)
        work = f"build-fuzz/work-{name}"
        os.makedirs(work, exist_ok=True)
        p = subprocess.run([exe, f"-max_total_time={secs}", "-print_final_stats=0",
                            f"-artifact_prefix=build-fuzz/{name}-", work, corpus],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           errors="replace")
        ok = p.returncode == 0
        print(f"fuzz {name}: {'ok' if ok else 'FAILED'}")
        if not ok:
            print(p.stdout[-4000:])
        count(f"fuzz:{name}", 1 if ok else 0, 0 if ok else 1)


def run_pytest(build):
    env = dict(os.environ, TERN_BIN=os.path.abspath(f"{build}/tern"))
    if build == "build-san":
        env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
        env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    p = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                        "tests/integration"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True,
                       errors="replace")
    sys.stdout.write(p.stdout)
    tail = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
    ok = int(m.group(1)) if (m := re.search(r"(\d+) passed", tail)) else 0
    bad = sum(int(x) for x in re.findall(r"(\d+) (?:failed|error)", tail))
    if p.returncode not in (0, 5) and bad == 0:
        bad = 1
    count(f"pytest:{build}", ok, bad)


def main():
    layers = sys.argv[1:] or ["unit", "fuzz", "integration", "san"]
    if "unit" in layers:
        run_unit("build")
    if "san" in layers:
        run_unit("build-san")
    if "fuzz" in layers:
        run_fuzz()
    if "integration" in layers:
        run_pytest("build")
    if "san" in layers:
        run_pytest("build-san")
    if failures:
        print("failing:", " ".join(failures))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
