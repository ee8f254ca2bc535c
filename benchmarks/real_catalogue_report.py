"""How the checker does on code people really write (``tests/catalogue/real/``, issue 13).

The cases reproduce, in our own code, patterns observed in public repositories (each names the file).
Grades every case once and prints the figures:

* correct accepted n/N: correct cases that pass;
* buggy caught n/N: buggy cases that fail;
* fitting messages n/N: of the buggy and variant cases that fail, those whose message names the
  mistake or the difference (the case's ``expect``, and not its ``reject``);
* variants handled n/N: variants that fail with a fitting message, or pass where the contract allows;

then every miss, grouped by mechanism (``catalogue/real/misses.py``): the case id, the first lines of
what the checker said, and why that is wrong. A miss that ``misses.py`` does not list is marked NEW
(and fails ``tests/test_real_catalogue.py``); a listed case that now fits is marked FIXED. Run:

    python benchmarks/real_catalogue_report.py [--lines 3] [--sources] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from catalogue.real import judge, load
from catalogue.real.misses import KNOWN_MISSES, MECHANISMS

from checks import check


def _ratio(n: int, total: int) -> str:
    return f"{n}/{total}" + (f" ({n / total:.0%})" if total else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=3, help="lines of each miss's checker message to show")
    parser.add_argument("--sources", action="store_true", help="also list where the patterns were observed")
    parser.add_argument("--json", help="write every case's result and verdict to this file")
    args = parser.parse_args(argv)

    cases = load()
    start = time.perf_counter()
    rows = []
    for case in cases:
        result = check(case.obj, exercise=case.exercise)
        verdict = judge(case, result.state, result.failures)
        rows.append((case, result, verdict))
    seconds = time.perf_counter() - start

    def of(label: str) -> list[tuple]:
        return [row for row in rows if row[0].label == label]

    correct, buggy, variant = of("correct"), of("buggy"), of("variant")
    failed = [row for row in buggy + variant if row[2].caught]
    print(f"{len(cases)} real cases from {len({c.repo for c in cases})} repositories, graded in {seconds:.1f} s")
    print(f"  correct accepted   {_ratio(sum(r[2].fits for r in correct), len(correct))}")
    print(f"  buggy caught       {_ratio(sum(r[2].caught for r in buggy), len(buggy))}")
    print(
        f"  fitting messages   {_ratio(sum(r[2].fitting_message for r in failed), len(failed))}"
        "  (buggy and variant cases that fail)"
    )
    print(f"  variants handled   {_ratio(sum(r[2].fits for r in variant), len(variant))}")
    print(f"  all fitting        {_ratio(sum(r[2].fits for r in rows), len(rows))}")

    groups: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        case, _, verdict = row
        if not verdict.fits:
            groups[KNOWN_MISSES.get(case.id, ("NEW", ""))[0]].append(row)
    fixed = [row for row in rows if row[2].fits and row[0].id in KNOWN_MISSES]

    print(f"\nMisses ({sum(len(g) for g in groups.values())}), by mechanism:")
    for mechanism in [m for m in MECHANISMS if m in groups] + (["NEW"] if "NEW" in groups else []):
        print(f"\n[{mechanism}] {MECHANISMS.get(mechanism, 'not in misses.py: a new miss')}")
        for case, result, verdict in groups[mechanism]:
            print(f"  {case.id}  ({case.label}; {result.state}; diagnoses {result.diagnoses or '-'})")
            said = "\n".join(result.failures).splitlines()[: args.lines] or ["(no message)"]
            for line in said:
                print(f"      says: {line[:160]}")
            print(f"      wrong: {verdict.why_not}")
    if fixed:
        print("\nFIXED (listed in misses.py, now fitting: remove them there):")
        for case, _, _ in fixed:
            print(f"  {case.id}")

    if args.sources:
        print("\nPatterns observed in:")
        seen = {}
        for case in cases:
            seen.setdefault((case.repo, case.commit), []).append(case.exercise)
        for (repo, commit), exercises in seen.items():
            print(f"  {repo} @ {commit}: {len(exercises)} case(s): {', '.join(exercises)}")

    if args.json:
        payload = [
            dict(
                id=c.id,
                exercise=c.exercise,
                label=c.label,
                repo=c.repo,
                path=c.path,
                commit=c.commit,
                pattern=c.pattern,
                state=r.state,
                diagnoses=r.diagnoses,
                failures=r.failures,
                fits=v.fits,
                fitting_message=v.fitting_message,
                why_not=v.why_not,
            )
            for c, r, v in rows
        ]
        Path(args.json).write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
