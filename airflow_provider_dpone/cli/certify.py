"""``dpone certify`` (also ``dpone connectors certify``): the connector certification matrix.

Each connector declares a level and its evidence (``ConnectorInfo.certified``); this checks the
evidence against a repository checkout (tests/, docs/, the recorded live runs), computes the
highest level it earns and the next step, and exits 1 when a connector claims more than it
earns. ``--live`` first runs the live profiles and records their results. Output: human, JSON,
or the Markdown of docs/certification.md.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from ..contracts.certification import (
    REQUIREMENTS,
    Assessment,
    Evidence,
    Kind,
    Level,
    Verdict,
    assess,
    describe_run,
    unknown_keys,
)
from ..contracts.connectors import CONNECTORS, ConnectorInfo
from ..contracts.errors import BadInputError
from ..contracts.strategies import IncrementalMode
from .evidence import RESULTS, Finder, find_root, latest_run, load_results
from .output import EXIT_FAILED, EXIT_OK, out

REGENERATE = "dpone certify --format markdown --output docs/certification.md"


def connector_type(info: ConnectorInfo) -> str:
    """What the connector is, for the matrix: source / sink / state / CDC."""
    if info.objects == "resource":
        return "API source"
    parts = ["source"] if info.source_modes else []
    parts += ["sink"] if info.sink_strategies else []
    parts += ["state"] if info.hosts_state else []
    change = {IncrementalMode.CDC, IncrementalMode.CHANGE_TRACKING} & set(info.source_modes)
    parts += ["CDC"] if change else []
    parts += ["offsets"] if IncrementalMode.OFFSETS in info.source_modes else []
    return "/".join(parts)


def _evidence_json(item: Evidence | str, ok: bool, detail: str) -> dict[str, Any]:
    kind, ref = (item.kind.value, item.ref) if isinstance(item, Evidence) else ("invalid", item)
    return {"kind": kind, "ref": ref, "ok": ok, "detail": detail}


def _verdict_json(v: Verdict) -> dict[str, Any]:
    r = v.requirement
    return {
        "requirement": r.key,
        "level": r.level.value,
        "text": r.text,
        "met": v.met,
        "reason": v.reason,
        "evidence": [_evidence_json(item, f.ok, f.detail) for item, f in v.evidence],
    }


def entry(name: str, a: Assessment, runs: list[dict[str, Any]]) -> dict[str, Any]:
    info = CONNECTORS[name]
    live = info.certified.live
    return {
        "connector": name,
        "type": connector_type(info),
        "claimed": a.claimed.value,
        "earned": a.earned.value if a.earned else None,
        "ok": a.ok,
        "next_step": a.next_step,
        "unmet": [_verdict_json(v) for v in a.unearned],
        "requirements": [_verdict_json(v) for v in a.verdicts],
        "live_profile": None
        if live is None
        else {"env": list(live.env), "tests": list(live.tests), "marker": live.marker, "note": live.note},
        "live_latest": latest_run(runs, name),
    }


def certify(root: Path, runs: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """The matrix of ``names``; a declaration naming an unknown requirement is bad input."""
    out = []
    for name in names:
        info = CONNECTORS[name]
        bad = unknown_keys(info.certified)
        if bad:
            known = ", ".join(r.key for r in REQUIREMENTS)
            raise BadInputError(
                f"connector '{name}': unknown requirement(s) {bad} in its certification; known: {known}"
            )
        a = assess(name, info.certified, Finder(root, runs, name, info.certified.live), extra=info.extra)
        out.append(entry(name, a, runs))
    return out


def _progress(e: dict[str, Any]) -> str:
    per = []
    for level in Level:
        reqs = [r for r in e["requirements"] if r["level"] == level.value]
        per.append(f"{level} {sum(r['met'] for r in reqs)}/{len(reqs)}")
    return ", ".join(per)


def _live_cell(e: dict[str, Any]) -> str:
    if e["live_profile"] is None:
        return "no live profile"
    run = e["live_latest"]
    return "live: never run" if run is None else f"live: {run['result']} {run.get('date', '?')}"


def _level_cell(e: dict[str, Any]) -> str:
    if e["ok"]:
        return e["claimed"]
    return f"**{e['claimed']} claimed, {e['earned'] or 'nothing'} earned**"


def _slug(heading: str) -> str:
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", heading.strip().lower()))


def _md_ref(ev: dict[str, Any]) -> str:
    if ev["kind"] == Kind.DOCS.value:
        page, _, heading = ev["ref"].partition("#")
        target = str(Path(page).relative_to("docs")) if page.startswith("docs/") else f"../{page}"
        return f"[{ev['ref']}]({target}#{_slug(heading)})"
    if ev["kind"] == Kind.NOT_APPLICABLE.value:
        return ev["ref"]
    return f"`{ev['ref']}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


HEADER = f"""# Connector certification

<!-- Generated by `{REGENERATE}`; do not edit. A test regenerates it and compares. -->

Seed 002's levels are **earned**, not asserted. Each connector declares the level it claims and,
for every requirement, its evidence in `airflow_provider_dpone/contracts/certifications.py`
(`CERTIFIED`, and `saas_certification()` for the SaaS sources), which `ConnectorInfo.certified` in
`contracts/connectors.py` points to. The forms of evidence:

- a test, `tests/<path>.py::<test>` (or `::<Class>::<test>`; a path under `tests/`, never `..`):
  a test pytest collects (a `test*` function, or a `test*` method of a `Test*` class) that can run:
  one marked `skip`, `skipif` with no condition or an always-true one, `xfail` with no condition
  or `run=False`, or calling `pytest.skip()` outside any `if`, does not count. A conditional skip
  (a service, a variable or a platform that is missing) counts: the test runs where it is there;
- a docs section, `docs/<page>.md#<heading>`: the heading must exist and have text under it (a
  docs page naming the pip extra must name it: `airflow-provider-dpone[<extra>]`; a configuration
  example must be a code block with `connector: <name>`);
- `live`: the connector's live profile; its tests must exist, be able to run and carry the
  profile's marker, and its latest recorded run must have **passed**: every test of the profile
  passed, the run's marker and test list being the profile's own (a run of other tests, a
  *partial* run where some skipped, or a *skipped* one is not a pass);
- `n/a: <reason>`: only where seed 002 says "where applicable" or "when practical" (and for
  credentials of a public API).

A level is earned when every requirement of it and of the levels below is met. `dpone certify`
exits 1 naming the connector, its claim and each unmet requirement when a claim is not earned,
and 2 when no repository checkout is found (`--root PATH`) or the live results file is not
one `--live` wrote. *Next step* is the first unmet
requirement of the level above the one earned.

```bash
dpone certify                        # the matrix; exit 1 on an unearned claim
dpone certify --format json          # for machines (also: dpone connectors certify)
{REGENERATE}
dpone certify --live                 # run the live profiles, record them, then the matrix
dpone certify --live --connector cbr --results /tmp/live.json
```

`--live` runs each profile's tests with pytest (`-m <marker>`, this interpreter, in the checkout)
and appends a record per connector to `{RESULTS}` (or `--results FILE`): UTC date, dpone, Python
and driver versions, the marker, each test's outcome, passed / failed / skipped counts with the
reasons (every skipped test named), and the variables that were unset (names only). A profile
*passed* when every one of its tests passed, is *partial* when the others skipped, *skipped* when
all did, and *failed* when one failed or was not run; a failed run makes the command exit 1. A
record `--live` could not have written (a missing field, a date that is not UTC, `passed`
contradicting its own counts) makes the results file bad input: exit 2, naming each such record.
Tests read their credentials from the variables listed below and skip, naming them, when they
are unset. The GitHub workflow `.github/workflows/connector-certification.yml`
runs the offline matrix and the live profiles nightly and on demand, with the repository's secrets
mapped to these variables.
"""


def markdown(matrix: list[dict[str, Any]]) -> str:
    lines = [
        HEADER,
        "## Matrix",
        "",
        "| Connector | Type | Level | Evidence | Next step |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in matrix:
        evidence = f"{_progress(e)}; {_live_cell(e)}"
        lines.append(
            f"| {e['connector']} | {e['type']} | {_level_cell(e)} | {evidence} | {_cell(e['next_step'])} |"
        )
    lines += [
        "",
        "## Live profiles",
        "",
        "| Connector | Marker | Variables | Tests | Latest run |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in matrix:
        p = e["live_profile"]
        if p is None:
            continue
        run = e["live_latest"]
        env = ", ".join(f"`{n}`" for n in p["env"])
        tests = "<br>".join(f"`{t}`" for t in p["tests"])
        latest = _cell(describe_run(run)) if run else "never run"
        lines.append(
            f"| {e['connector']} | `{p['marker']}` | {env} ({_cell(p['note'])}) | {tests} | {latest} |"
        )
    lines += ["", "## Evidence per connector"]
    for e in matrix:
        lines += [
            "",
            f"### {e['connector']}",
            "",
            f"Claims **{e['claimed']}**, earns **{e['earned'] or 'nothing'}**.",
            "",
        ]
        lines += ["| Requirement | Level | Met | Evidence |", "| --- | --- | --- | --- |"]
        for r in e["requirements"]:
            refs = "<br>".join(_md_ref(ev) for ev in r["evidence"]) or "none declared"
            met = "yes" if r["met"] else f"no: {r['reason']}"
            lines.append(f"| {_cell(r['text'])} | {r['level']} | {_cell(met)} | {refs} |")
    return "\n".join(lines) + "\n"


def human(matrix: list[dict[str, Any]], root: Path, results: Path) -> str:
    lines = [f"checkout {root}; live results {results}"]
    for e in matrix:
        status = "ok  " if e["ok"] else "FAIL"
        earned = e["earned"] or "nothing"
        lines.append(
            f"{status}  {e['connector']:<18} claims {e['claimed']:<12} earns {earned:<20} {_live_cell(e)}"
        )
        for r in e["unmet"]:
            lines.append(f"        unmet ({r['level']}) {r['text'].rstrip('.')}: {r['reason']}")
        lines.append(f"        next: {e['next_step']}")
    bad = [e["connector"] for e in matrix if not e["ok"]]
    lines.append(
        f"unearned claims: {', '.join(bad)}" if bad else f"{len(matrix)} connector(s): every claim is earned"
    )
    return "\n".join(lines)


def _selected(names: list[str] | None) -> list[str]:
    unknown = sorted(set(names or ()) - set(CONNECTORS))
    if unknown:
        raise BadInputError(f"--connector: unknown {unknown}; known: {', '.join(CONNECTORS)}")
    return [n for n in CONNECTORS if not names or n in names]


def cmd_certify(args: argparse.Namespace) -> int:
    if getattr(args, "action", "certify") != "certify":
        raise BadInputError(f"connectors {args.action}: only 'certify' exists")
    root = find_root(args.root)
    results = Path(args.results) if args.results else root / RESULTS
    runs = load_results(results)
    names = _selected(args.connector)
    live_failed: list[str] = []
    if args.live:
        from .live import record, run_profile

        new = []
        for name in names:
            profile = CONNECTORS[name].certified.live
            if profile is not None:
                print(f"live: {name}: pytest -m {profile.marker} {' '.join(profile.tests)}", file=sys.stderr)
                run = run_profile(root, name, profile, timeout=args.timeout)
                print(f"live: {name}: {describe_run(run)}", file=sys.stderr)
                new.append(run)
        runs = record(results, runs, new)
        live_failed = [r["connector"] for r in new if r["result"] == "failed"]
    matrix = certify(root, runs, names)
    data = {"results_file": str(results), "connectors": matrix, "live_failed": live_failed}
    if args.format == "json":
        text = json.dumps(data, indent=2, default=str) + "\n"
    elif args.format == "markdown":
        text = markdown(matrix)
    else:
        text = human(matrix, root, results) + "\n"
        text += f"live runs failed: {', '.join(live_failed)}\n" if live_failed else ""
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        out(text, end="")
    return EXIT_FAILED if live_failed or not all(e["ok"] for e in matrix) else EXIT_OK


def _options(p: argparse.ArgumentParser) -> None:
    for action in p._actions:  # the shared --format, plus the Markdown of docs/certification.md
        if action.dest == "format":
            action.choices = ["human", "json", "markdown"]
            action.help = "human (default), json, or markdown (docs/certification.md)"
    p.add_argument("--root", help="the repository checkout (default: the one holding the package)")
    p.add_argument("--results", help=f"the live results file (default: <root>/{RESULTS})")
    p.add_argument("--output", help="write the output to this file instead of stdout")
    p.add_argument("--live", action="store_true", help="run the live profiles first and record the results")
    p.add_argument("--connector", action="append", help="only this connector (repeatable)")
    p.add_argument("--timeout", type=float, default=3600.0, help="--live: seconds per profile (3600)")
    p.set_defaults(func=cmd_certify)


def add_parser(add: Any) -> None:
    _options(add("certify", "check each connector's certification evidence; the matrix (seed 002)"))
    c = add("connectors", "connector catalogue commands: certify")
    c.add_argument("action", choices=["certify"])
    _options(c)
