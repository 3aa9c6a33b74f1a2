"""Connector certification as data (seed 002): the levels, what each level requires, the
evidence a connector declares for each requirement, and the verdict on a claimed level.

Pure: no I/O. Whether a piece of evidence exists (a test function, a docs section, a recorded
live run) is looked up by the caller and handed in as :class:`Found`; this module decides
what that evidence earns. A level is earned only when every requirement of it and of the levels
below is met; a claim above what is earned is refused, naming each unmet requirement.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Level(str, Enum):
    """Seed 002's levels, lowest first. Compares equal to its value (``"experimental"``)."""

    EXPERIMENTAL = "experimental"
    BETA = "beta"
    PRODUCTION = "production-certified"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        return list(Level).index(self)


class Kind(str, Enum):
    """What a piece of evidence is."""

    TEST = "test"  # tests/<path>.py::<test function> (or ::<Class>::<method>)
    DOCS = "docs"  # docs/<page>.md#<heading text>
    LIVE = "live"  # the connector's live profile, with its latest recorded run
    NOT_APPLICABLE = "n/a"  # "n/a: <reason>"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Requirement:
    key: str
    level: Level
    text: str  # seed 002's wording
    needs: frozenset[Kind]  # every kind listed must be among the evidence that resolves
    may_not_apply: bool = False  # the seed's "where applicable" / "when practical"


def _req(key: str, level: Level, text: str, *needs: Kind, may_not_apply: bool = False) -> Requirement:
    return Requirement(key, level, text, frozenset(needs), may_not_apply)


E, B, P = Level.EXPERIMENTAL, Level.BETA, Level.PRODUCTION
T, D, L = Kind.TEST, Kind.DOCS, Kind.LIVE
REQUIREMENTS: tuple[Requirement, ...] = (
    _req("import", E, "Importable without optional dependency leakage.", T),
    _req("extras_docs", E, "Public docs mention required extras.", D),
    _req("config_examples", E, "Basic configuration examples exist.", D),
    _req("offline_tests", E, "Offline construction tests exist for requests, SQL, or client options.", T),
    _req("credentials", B, "Credential loading tests with fake providers.", T, may_not_apply=True),
    _req("retry_docs", B, "Retry/rate-limit behavior documented.", D),
    _req("type_mapping", B, "Data type mapping tests.", T),
    _req("incremental", B, "Incremental or pagination tests where applicable.", T, may_not_apply=True),
    _req("local_integration", B, "Local integration test when a disposable service is practical.", T, may_not_apply=True),
    _req("live_profile", P, "Live integration test profile behind integration_live.", L),
    _req("idempotent_rerun", P, "Idempotent rerun behavior documented and tested.", D, T),
    _req("checkpoint_recovery", P, "Checkpoint recovery tested.", T),
    _req("schema_drift_docs", P, "Schema drift behavior documented.", D),
    _req("failure_taxonomy_docs", P, "Failure taxonomy documented.", D),
    _req("observability", P, "Observability fields verified.", T),
    _req("compat_policy_docs", P, "Backward compatibility policy documented.", D),
)  # fmt: skip
BY_KEY: dict[str, Requirement] = {r.key: r for r in REQUIREMENTS}
LIVE_MARKER = "integration_live"


@dataclass(frozen=True)
class LiveProfile:
    """Tests against a real service, run by ``dpone certify --live``. ``env`` names the
    variables the tests read (never their values); ``marker`` is the pytest marker they carry
    (``integration`` for a disposable local service, which does not meet the live requirement)."""

    env: tuple[str, ...]
    tests: tuple[str, ...]
    marker: str = LIVE_MARKER
    drivers: tuple[str, ...] = ()  # distributions whose versions a run records
    note: str = ""  # how to provide the service, for the docs


@dataclass(frozen=True)
class Certification:
    """A connector's claimed level and, per requirement key, its evidence: ``tests/...py::name``,
    ``docs/...md#Heading``, ``live`` (the profile below) or ``n/a: reason``."""

    level: Level
    evidence: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    live: LiveProfile | None = None

    def __str__(self) -> str:
        return self.level.value


@dataclass(frozen=True)
class Evidence:
    kind: Kind
    ref: str  # the declared text


def parse_evidence(text: str) -> Evidence | None:
    """The evidence ``text`` declares, or None when it is none of the forms."""
    text = text.strip()
    if text == "live":
        return Evidence(Kind.LIVE, text)
    if text.lower().startswith("n/a:") and text[4:].strip():
        return Evidence(Kind.NOT_APPLICABLE, text)
    if TEST_ID.fullmatch(text):
        return Evidence(Kind.TEST, text)
    if DOCS_ID.fullmatch(text):
        return Evidence(Kind.DOCS, text)
    return None


# A file under tests/ or docs/ (folders and names of letters, digits, ``_`` and ``-``: never
# ``..``), then the test function (``::name`` or ``::Class::name``) or the heading.
TEST_ID = re.compile(r"tests/(?:[\w-]+/)*[\w-]+\.py(?:::\w+){1,2}")
DOCS_ID = re.compile(r"docs/(?:[\w-]+/)*[\w-]+\.md#.+")


@dataclass(frozen=True)
class Found:
    """What the caller found for one piece of evidence: whether it holds, why (or why not),
    and for a docs section its text (requirements may check what it says)."""

    ok: bool
    detail: str
    text: str = ""


@dataclass(frozen=True)
class Verdict:
    requirement: Requirement
    met: bool
    reason: str  # why not, or what meets it
    evidence: tuple[tuple[Evidence | str, Found], ...]  # a str: a declaration that parses as nothing


@dataclass(frozen=True)
class Assessment:
    connector: str
    claimed: Level
    earned: Level | None  # None: not even experimental
    verdicts: tuple[Verdict, ...]
    next_step: str

    @property
    def unearned(self) -> tuple[Verdict, ...]:
        """The unmet requirements of the claimed level and those below it."""
        return tuple(v for v in self.verdicts if not v.met and v.requirement.level.rank <= self.claimed.rank)

    @property
    def ok(self) -> bool:
        return not self.unearned


def _mentions_extra(text: str, extra: str) -> bool:
    """A page names the pip extra: ``airflow-provider-dpone[x]`` or "the `x` extra"."""
    return f"[{extra}]" in text or re.search(rf"`{re.escape(extra)}`\s+extra", text) is not None


def _has_example(text: str, connector: str) -> bool:
    """A page shows a configuration of ``connector``: a code block naming it."""
    pattern = rf"connector:\s*{re.escape(connector)}\b|\"connector\":\s*\"{re.escape(connector)}\""
    return "```" in text and re.search(pattern, text) is not None


@dataclass(frozen=True)
class Context:
    """What the requirement rules need to know about the connector."""

    connector: str
    extra: str  # its pip extra
    live: LiveProfile | None


def judge(
    req: Requirement, declared: tuple[str, ...], find: Callable[[Evidence], Found], ctx: Context
) -> Verdict:
    """Whether ``declared`` meets ``req``. Every declared item must hold (a stale reference is a
    failure, not something the others cover), and together they must show every kind ``req``
    needs. A passed live run also counts as a test."""
    if not declared:
        return Verdict(req, False, "no evidence declared", ())
    pairs: list[tuple[Evidence | str, Found]] = []
    problems: list[str] = []
    kinds: set[Kind] = set()
    for text in declared:
        ev = parse_evidence(text)
        if ev is None:
            found = Found(False, "not a test id, docs section, 'live' or 'n/a: reason'")
            pairs.append((text, found))
            problems.append(f"{text}: {found.detail}")
            continue
        found = _check(req, ev, find, ctx)
        pairs.append((ev, found))
        if found.ok:
            kinds.add(ev.kind)
            if ev.kind is Kind.LIVE:
                kinds.add(Kind.TEST)
        else:
            problems.append(f"{ev.ref}: {found.detail}")
    if problems:
        return Verdict(req, False, "; ".join(problems), tuple(pairs))
    if Kind.NOT_APPLICABLE in kinds:
        if len(declared) > 1:
            return Verdict(req, False, "declared not applicable and evidenced at once", tuple(pairs))
        return Verdict(req, True, "not applicable", tuple(pairs))
    missing = sorted(k.value for k in req.needs - kinds)
    if missing:
        return Verdict(req, False, f"needs {' and '.join(missing)} evidence", tuple(pairs))
    return Verdict(req, True, "met", tuple(pairs))


def _check(req: Requirement, ev: Evidence, find: Callable[[Evidence], Found], ctx: Context) -> Found:
    """``ev`` as found, with the requirement-specific rules on top."""
    if ev.kind is Kind.NOT_APPLICABLE:
        if not req.may_not_apply:
            return Found(False, "this requirement applies to every connector")
        return Found(True, ev.ref[4:].strip())
    if ev.kind is Kind.LIVE:
        if ctx.live is None:
            return Found(False, "the connector declares no live profile")
        if req.key == "live_profile" and ctx.live.marker != LIVE_MARKER:
            return Found(
                False, f"its tests are marked {ctx.live.marker}, not {LIVE_MARKER} (a local service)"
            )
    found = find(ev)
    if found.ok and req.key == "extras_docs" and not _mentions_extra(found.text, ctx.extra):
        return Found(False, f"the section does not name the '{ctx.extra}' extra")
    if found.ok and req.key == "config_examples" and not _has_example(found.text, ctx.connector):
        return Found(False, f"the section has no code block with 'connector: {ctx.connector}'")
    return found


def assess(
    connector: str, cert: Certification, find: Callable[[Evidence], Found], *, extra: str
) -> Assessment:
    """The verdict on every requirement, the highest level earned and the next step."""
    ctx = Context(connector, extra, cert.live)
    verdicts = tuple(judge(r, tuple(cert.evidence.get(r.key, ())), find, ctx) for r in REQUIREMENTS)
    earned: Level | None = None
    for level in Level:
        if all(v.met for v in verdicts if v.requirement.level.rank <= level.rank):
            earned = level
    return Assessment(connector, cert.level, earned, verdicts, _next_step(cert.level, earned, verdicts))


def _next_step(claimed: Level, earned: Level | None, verdicts: tuple[Verdict, ...]) -> str:
    if earned is not None and claimed.rank < earned.rank:
        return f"the evidence supports {earned}: raise the claim"
    if earned is Level.PRODUCTION:
        return "keep the live profile green"
    target = Level.EXPERIMENTAL if earned is None else list(Level)[earned.rank + 1]
    first = next(v for v in verdicts if not v.met and v.requirement.level.rank <= target.rank)
    return f"for {target}: {first.requirement.text.rstrip('.')} ({first.reason})"


def unknown_keys(cert: Certification) -> list[str]:
    """Requirement keys a declaration names that seed 002 does not have (typos)."""
    return sorted(set(cert.evidence) - set(BY_KEY))


# A recorded live run (``dpone certify --live`` writes them; docs/certification.md shows one).
RESULTS = ("passed", "partial", "skipped", "failed")  # partial: some passed, the others skipped
OUTCOMES = ("passed", "failed", "skipped", "not run")  # of each test of the profile
UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_COUNTS = ("passed", "failed", "skipped")


def record_problems(run: Mapping[str, Any], now: dt.datetime) -> list[str]:
    """What makes ``run`` a record ``dpone certify --live`` never writes: a missing or malformed
    field, or a result its own counts contradict (``passed`` with a failed, skipped or unrun
    test, or with none passed). Empty when it is well formed."""
    problems: list[str] = []
    if not isinstance(run.get("connector"), str) or not run["connector"]:
        problems.append("no connector")
    if run.get("result") not in RESULTS:
        problems.append(f"result {run.get('result')!r} is not one of {', '.join(RESULTS)}")
    date = run.get("date")
    try:
        when = dt.datetime.strptime(date if isinstance(date, str) else "", UTC_FORMAT)
        if when.replace(tzinfo=dt.timezone.utc) > now + dt.timedelta(minutes=5):
            problems.append(f"date {date!r} is in the future")
    except ValueError:
        problems.append(f"date {date!r} is not a UTC time like 2026-01-31T12:00:00Z")
    if not isinstance(run.get("marker"), str) or not run["marker"]:
        problems.append("no marker")
    counts = run.get("tests")
    if not isinstance(counts, dict) or not all(
        type(counts.get(k)) is int and counts[k] >= 0 for k in _COUNTS
    ):
        problems.append("tests is not {passed, failed, skipped} counts")
        counts = None
    outcomes = run.get("outcomes")
    if (
        not isinstance(outcomes, dict)
        or not outcomes
        or not all(isinstance(k, str) and v in OUTCOMES for k, v in outcomes.items())
    ):
        problems.append(f"outcomes is not a test id -> {' / '.join(OUTCOMES)} mapping")
        outcomes = None
    if run.get("result") == "passed" and counts is not None and outcomes is not None:
        not_passed = sorted(k for k, v in outcomes.items() if v != "passed")
        if counts["passed"] == 0 or counts["failed"] or counts["skipped"] or not_passed:
            problems.append(
                f"result 'passed' contradicts its tests ({', '.join(f'{k} {counts[k]}' for k in _COUNTS)}"
                + (f"; not passed: {', '.join(not_passed)})" if not_passed else ")")
            )
    return problems


def describe_run(run: Mapping[str, Any]) -> str:
    """One line: result, date, versions, and why it did not pass."""
    versions = ", ".join(f"{k} {v}" for k, v in sorted((run.get("drivers") or {}).items()))
    head = f"{run['result']} {run.get('date', '?')} (dpone {run.get('dpone', '?')}, python {run.get('python', '?')}"
    head += f", {versions})" if versions else ")"
    why = run.get("reasons") or []
    return head + (": " + "; ".join(str(w) for w in why[:3]) if why and run["result"] != "passed" else "")


def judge_live_run(run: Mapping[str, Any] | None, profile: LiveProfile) -> Found:
    """Whether ``run`` (well formed: :func:`record_problems`) is a passed run of ``profile``:
    its marker and its tests exactly the profile's, every one passed. A run of other tests (the
    profile changed since) does not count."""
    if run is None:
        return Found(False, "no recorded live run (dpone certify --live)")
    when = f"latest run {run['result']} {run['date']}"
    if run["marker"] != profile.marker:
        return Found(
            False, f"{when} ran -m {run['marker']}, the profile is -m {profile.marker}: rerun --live"
        )
    ran, declared = set(run["outcomes"]), set(profile.tests)
    if ran != declared:
        diff = [f"{what}: {', '.join(sorted(s))}" for what, s in
                (("not in it", declared - ran), ("no longer declared", ran - declared)) if s]  # fmt: skip
        return Found(False, f"{when} ran other tests than the profile ({'; '.join(diff)}): rerun --live")
    return Found(run["result"] == "passed", "latest run " + describe_run(run))
