#!/usr/bin/env python3
"""File fingerprinting, side by side with what a user would write (one run, as ratios).

Generates a synthetic monorepo (deterministic content from a seeded RNG, fixed mtimes) in a temp
dir, then measures, median of N repeats:

  baseline    plain blake3 + ThreadPoolExecutor over files, reading each file
              (`blake3(data, max_threads=blake3.AUTO)` for large files) — b3sum-style hashing
  cold        core `digest_files(root, paths)`, no cache
  warm        core `digest_files` with a `StatCache` loaded from disk, nothing changed
  warm+1      same, after rewriting one 4 KiB file

Every variant must produce the same digests as the baseline (checked; exit 1 otherwise).
The page cache is warm for every variant (dropping caches needs privileges we do not assume),
so this measures hashing + syscall + Python overhead, not disk reads.

Run with the Pants venv (it has blake3):
  .bootstrap/venv/bin/python bench/fingerprint_bench.py [--files 20000] [--repeats 5] [--format=json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src" / "python"))

import blake3  # noqa: E402

from flytebuild.core.fingerprint import StatCache, digest_files  # noqa: E402

SMALL = 4 << 10
LARGE = 8 << 20
FIXED_MTIME_NS = 1_700_000_000 * 10**9  # well outside StatCache's racy window


# ---------------------------------------------------------------------------------------------
# The synthetic tree


def generate_tree(root: Path, n_files: int, n_large: int, seed: int) -> list:
    """`n_files` 4 KiB files over packages of 100 files (2 levels deep) plus `n_large` 8 MiB files.

    Content comes from one seeded RNG, so the tree (and every digest) is the same on every run.
    """
    rng = random.Random(seed)
    paths = []
    per_pkg = 100
    for i in range(n_files):
        pkg = i // per_pkg
        rel = f"src/group{pkg // 20:03d}/pkg{pkg:04d}/mod{i % per_pkg:03d}.py"
        paths.append((rel, SMALL))
    for j in range(n_large):
        paths.append((f"assets/blob{j:02d}.bin", LARGE))
    made_dirs = set()
    for rel, size in paths:
        full = root / rel
        if full.parent not in made_dirs:
            full.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(full.parent)
        full.write_bytes(rng.getrandbits(size * 8).to_bytes(size, "little"))
        os.utime(full, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
    return [rel for rel, _ in paths]


# ---------------------------------------------------------------------------------------------
# The user's alternative


def baseline_digest(root: str, rel_paths: list, threads: int) -> dict:
    """What a user would write: a thread pool over files, read each, blake3 it."""

    def one(rel: str):
        with open(os.path.join(root, rel), "rb") as f:
            data = f.read()
        if len(data) >= (1 << 20):
            return rel, blake3.blake3(data, max_threads=blake3.blake3.AUTO).hexdigest()
        return rel, blake3.blake3(data).hexdigest()

    if threads == 1:  # the even simpler user: a plain loop
        return dict(map(one, rel_paths))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(pool.map(one, rel_paths))


# ---------------------------------------------------------------------------------------------


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def summarize(name: str, desc: str, samples: list, n_files: int, n_bytes: int, base_s: float,
              extra: dict = None) -> dict:
    med = statistics.median(samples)
    row = {
        "name": name,
        "description": desc,
        "median_s": med,
        "min_s": min(samples),
        "max_s": max(samples),
        "samples_s": samples,
        "files_per_s": n_files / med,
        "mb_per_s": n_bytes / med / 1e6,
        "speedup_vs_baseline": base_s / med,
    }
    row.update(extra or {})
    return row


def run(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="fb-fpbench-"))
    try:
        tree = tmp / "tree"
        t_gen, rel_paths = timed(lambda: generate_tree(tree, args.files, args.large, args.seed))
        n_files = len(rel_paths)
        n_bytes = args.files * SMALL + args.large * LARGE
        root = str(tree)
        threads = args.threads or (os.cpu_count() or 1)
        cache_path = str(tmp / "statcache.json")
        mismatches = []

        def check(label, got: dict, want: dict):
            if got != want:
                bad = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
                mismatches.append({"variant": label, "paths": bad[:5], "count": len(bad)})

        # Touch every file once before timing anything, so every variant sees a warm page cache.
        baseline_digest(root, rel_paths, threads)

        # Interleave variants per repeat so drift (thermal, noisy neighbours) hits all alike.
        samples = {k: [] for k in ("baseline", "serial", "cold", "cold_t", "warm", "warm1")}
        hits = {"warm": None, "warm1": None}
        reference = None
        # Prime the on-disk cache (mtimes are fixed in the past, so every entry is persisted).
        prime = StatCache(cache_path)
        digest_files(root, rel_paths, cache=prime)
        touch_target = rel_paths[len(rel_paths) // 2]
        touch_rng = random.Random(args.seed + 1)
        original = (tree / touch_target).read_bytes()
        for rep in range(args.repeats):
            s, ref = timed(lambda: baseline_digest(root, rel_paths, threads))
            samples["baseline"].append(s)
            if reference is None:
                reference = ref
            check("baseline", ref, reference)

            s, got = timed(lambda: baseline_digest(root, rel_paths, 1))
            samples["serial"].append(s)
            check("baseline serial", got, reference)

            s, got = timed(lambda: digest_files(root, rel_paths))
            samples["cold"].append(s)
            check("cold", {d.path: d.digest for d in got}, reference)

            s, got = timed(lambda: digest_files(root, rel_paths, threads=threads))
            samples["cold_t"].append(s)
            check(f"cold threads={threads}", {d.path: d.digest for d in got}, reference)

            # Warm: a fresh process would load the cache from disk, so loading is timed too.
            def warm():
                cache = StatCache(cache_path)
                return cache, digest_files(root, rel_paths, cache=cache)

            s, (cache, got) = timed(warm)
            samples["warm"].append(s)
            hits["warm"] = (cache.hits, cache.misses)
            check("warm", {d.path: d.digest for d in got}, reference)

            # One file edited (new content, mtime now): exactly one miss, that file rehashed.
            new = touch_rng.getrandbits(SMALL * 8).to_bytes(SMALL, "little")
            (tree / touch_target).write_bytes(new)
            s, (cache, got) = timed(warm)
            samples["warm1"].append(s)
            hits["warm1"] = (cache.hits, cache.misses)
            want = dict(reference)
            want[touch_target] = blake3.blake3(new).hexdigest()
            check("warm+1", {d.path: d.digest for d in got}, want)
            # Restore the original bytes and mtime so the next repeat starts from the same tree
            # (and the on-disk cache entry for it is valid again).
            (tree / touch_target).write_bytes(original)
            os.utime(tree / touch_target, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
            # warm+1's save dropped the edited file (racy mtime): re-prime the on-disk cache.
            digest_files(root, rel_paths, cache=StatCache(cache_path))

        base = statistics.median(samples["baseline"])
        rows = [
            summarize("baseline", f"blake3 + ThreadPoolExecutor({threads}), read every file",
                      samples["baseline"], n_files, n_bytes, base),
            summarize("baseline_1t", "same, plain loop in one thread (for reference)",
                      samples["serial"], n_files, n_bytes, base),
            summarize("cold", "digest_files, no cache (threads=auto)",
                      samples["cold"], n_files, n_bytes, base),
            summarize(f"cold_t{threads}", f"digest_files, no cache, threads={threads}",
                      samples["cold_t"], n_files, n_bytes, base),
            summarize("warm", "digest_files + StatCache (loaded from disk), nothing changed",
                      samples["warm"], n_files, n_bytes, base,
                      {"cache_hits": hits["warm"][0], "cache_misses": hits["warm"][1]}),
            summarize("warm_touch1", "digest_files + StatCache, 1 file rewritten",
                      samples["warm1"], n_files, n_bytes, base,
                      {"cache_hits": hits["warm1"][0], "cache_misses": hits["warm1"][1]}),
        ]
        return {
            "benchmark": "fingerprint",
            "tree": {
                "small_files": args.files, "small_size": SMALL,
                "large_files": args.large, "large_size": LARGE,
                "total_files": n_files, "total_bytes": n_bytes, "seed": args.seed,
                "generate_s": t_gen,
                "statcache_bytes": os.path.getsize(cache_path),
            },
            "repeats": args.repeats,
            "threads": threads,
            "page_cache": "warm (caches not dropped; every file read once before timing)",
            "machine": {
                "cpus": os.cpu_count(), "python": platform.python_version(),
                "blake3": getattr(blake3, "__version__", "?"), "platform": platform.platform(),
            },
            "digests_identical": not mismatches,
            "mismatches": mismatches,
            "rows": rows,
        }
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def render_table(res: dict) -> str:
    t = res["tree"]
    lines = [
        f"File fingerprinting: {t['small_files']:,} x {t['small_size'] // 1024} KiB + "
        f"{t['large_files']} x {t['large_size'] >> 20} MiB = {t['total_files']:,} files, "
        f"{t['total_bytes'] / 1e6:.0f} MB; median of {res['repeats']}; {res['machine']['cpus']} CPUs; "
        f"page cache warm; Python {res['machine']['python']}, blake3 {res['machine']['blake3']}",
        "",
        "| variant | what | median s | files/s | MB/s | vs baseline |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        what = r["description"]
        if "cache_hits" in r:
            what += f" ({r['cache_hits']:,} hits / {r['cache_misses']} misses)"
        lines.append(
            f"| {r['name']} | {what} | {r['median_s']:.3f} | {r['files_per_s']:,.0f} | "
            f"{r['mb_per_s']:,.0f} | {r['speedup_vs_baseline']:.2f}x |"
        )
    lines.append("")
    lines.append(
        "Digests identical to the baseline: "
        + ("yes" if res["digests_identical"] else f"NO — {res['mismatches']}")
    )
    lines.append(
        "(warm rows include loading the StatCache JSON from disk "
        f"({t['statcache_bytes'] / 1e6:.1f} MB); MB/s on warm rows is bytes covered, not read)"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--files", type=int, default=20000, help="number of 4 KiB files")
    p.add_argument("--large", type=int, default=4, help="number of 8 MiB files")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="baseline pool size (0 = CPU count)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--format", choices=["table", "json"], default="table")
    args = p.parse_args(argv)
    res = run(args)
    print(json.dumps(res, indent=2) if args.format == "json" else render_table(res))
    return 0 if res["digests_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
