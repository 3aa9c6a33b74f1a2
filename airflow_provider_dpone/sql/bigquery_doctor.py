"""What ``dpone doctor`` asks BigQuery for each load, and what the answers mean: the IAM
permissions the BigQuery sink uses on a table (its target, its state table, its crash journal),
and the findings built from the API's own answers (``tables.testIamPermissions``, a dry-run
query job, ``datasets.get``). Pure: no I/O, no client.

A permission BigQuery did not answer for (an emulator without IAM, an anonymous connection)
is reported as not known, never as granted. ``testIamPermissions`` is documented as a tool for
permission-aware UIs that may "fail open": its yes is BigQuery's word, not a run's proof.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..contracts.doctor import Finding
from ..contracts.manifest import LoadSpec
from ..sql.targets import managed_columns

GET = "bigquery.tables.get"  # tables.get: the sink reads the target's resource every run
GET_DATA = "bigquery.tables.getData"  # SELECT: guards, counts, MERGE / anti-join reads
UPDATE_DATA = "bigquery.tables.updateData"  # DML: INSERT, MERGE, DELETE, TRUNCATE
UPDATE = "bigquery.tables.update"  # ALTER TABLE: added and widened columns, options
CREATE_TABLE = "bigquery.tables.create"  # on the dataset
DELETE_TABLE = "bigquery.tables.delete"  # on the table (the run's staging tables are dropped)
CREATE_DATASET = "bigquery.datasets.create"  # on the project
GET_DATASET = "bigquery.datasets.get"
CREATE_JOB = "bigquery.jobs.create"  # on the project: every query and load job

ORDER = (GET, GET_DATA, UPDATE_DATA, UPDATE, DELETE_TABLE)
# the state table: has_table (tables.get), select, MERGE upsert and reset's DELETE
STATE = frozenset({GET, GET_DATA, UPDATE_DATA})
JOURNAL = STATE  # the crash journal in the staging dataset: the same reads and MERGE
GRANT = "grant roles/bigquery.dataEditor on the {what} (or a role with {perms}) to the connection's identity"


@dataclass(frozen=True)
class TargetNeeds:
    """The permissions a load uses on its existing target: ``required`` every run; ``schema``
    only when a safe schema change is applied (ALTER TABLE)."""

    required: frozenset[str]
    schema: frozenset[str] = frozenset()

    @property
    def asked(self) -> list[str]:
        return sorted(self.required | self.schema, key=ORDER.index)


def target_needs(load: LoadSpec) -> TargetNeeds:
    """Every strategy reads the target's resource (tables.get), reads rows from it (the
    full-refresh guard's count, merge joins, the append's skip of keys already there, replace's
    in-range count) and writes it by DML in one transaction (TRUNCATE, INSERT, MERGE, DELETE),
    never drops or recreates it. A managed column (a soft-delete marker) is added by
    ``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` every run; safe schema evolution alters it when
    the source changed."""
    required = {GET, GET_DATA, UPDATE_DATA}
    if managed_columns(load):
        required.add(UPDATE)
    applies = load.schema_evolution.mode in ("safe", "strict")
    schema = frozenset({UPDATE} - required) if applies else frozenset()
    return TargetNeeds(frozenset(required), schema)


def _listed(perms: set[str] | frozenset[str]) -> str:
    return ", ".join(sorted(perms, key=lambda p: ORDER.index(p) if p in ORDER else len(ORDER)))


def iam_findings(
    subject: str,
    table: str,
    needs: TargetNeeds,
    granted: frozenset[str] | None,
    unknown_why: str = "",
) -> list[Finding]:
    """Findings from ``tables.testIamPermissions`` on an existing table: ``granted`` is the
    subset BigQuery answered (None: it gave no answer, ``unknown_why`` says why)."""
    if granted is None:
        return [
            Finding(
                "info",
                "privilege",
                subject,
                f"{_listed(needs.required | needs.schema)} on {table}: not known ({unknown_why})",
            )
        ]
    found: list[Finding] = []
    lacking = needs.required - granted
    if lacking:
        found.append(
            Finding(
                "fail",
                "privilege",
                subject,
                f"BigQuery answers that the connection lacks {_listed(lacking)} on {table}",
                fix=GRANT.format(what=f"table {table} or its dataset", perms=_listed(lacking)),
            )
        )
    else:
        found.append(
            Finding(
                "ok",
                "privilege",
                subject,
                f"{_listed(needs.required)} on {table} (tables.testIamPermissions)",
            )
        )
    if needs.schema - granted:
        found.append(
            Finding(
                "warn",
                "privilege",
                subject,
                f"no {_listed(needs.schema - granted)} on {table}: a safe schema change "
                "(ALTER TABLE) the source brings would fail",
                fix=GRANT.format(what=f"table {table} or its dataset", perms=_listed(needs.schema)),
            )
        )
    elif needs.schema:
        found.append(
            Finding(
                "ok", "privilege", subject, f"{_listed(needs.schema)} on {table} (for safe schema changes)"
            )
        )
    return found


@dataclass(frozen=True)
class Dataset:
    """A dataset as ``datasets.get`` answered: ``exists`` False for 404; ``denied`` holds
    BigQuery's message for a 403."""

    name: str  # project.dataset
    exists: bool
    location: str | None = None
    denied: str | None = None


def dataset_findings(subject: str, ds: Dataset, *, project: str, what: str, creates: bool) -> list[Finding]:
    """A dataset a load uses; ``creates``: the load creates tables in it (then a missing one is
    created too, which needs bigquery.datasets.create on the project)."""
    if ds.denied is not None:
        return [
            Finding(
                "fail",
                "privilege",
                subject,
                f"dataset {ds.name} ({what}) cannot be read: {ds.denied}",
                fix=f"grant roles/bigquery.dataViewer (at least {GET_DATASET}) on dataset {ds.name}",
            )
        ]
    if not ds.exists:
        if not creates:
            return [
                Finding(
                    "fail", "object", subject, f"dataset {ds.name} ({what}) does not exist", fix="create it"
                )
            ]
        return [
            Finding(
                "info",
                "privilege",
                subject,
                f"dataset {ds.name} ({what}) does not exist; the first run creates it, which needs "
                f"{CREATE_DATASET} on project {project}: not known (doctor cannot ask BigQuery a "
                "project's permissions)",
            )
        ]
    where = f" in {ds.location}" if ds.location else ""
    found = [Finding("ok", "object", subject, f"dataset {ds.name} ({what}) exists{where}")]
    if creates:
        found.append(
            Finding(
                "info",
                "privilege",
                subject,
                f"{CREATE_TABLE} and {DELETE_TABLE} in dataset {ds.name}: not known (BigQuery answers "
                "testIamPermissions for tables only; the run creates and drops tables there)",
            )
        )
    return found


def location_findings(subject: str, wanted: str | None, datasets: list[Dataset]) -> list[Finding]:
    """The datasets one load's jobs touch must share a location (a query cannot read across
    locations), and the connection's ``location`` (where its jobs run) when it names one."""
    places = {d.location.upper(): d for d in datasets if d.exists and d.location}
    if wanted and places and set(places) != {wanted.upper()}:
        elsewhere = ", ".join(f"{d.name} in {d.location}" for d in places.values())
        return [
            Finding(
                "fail",
                "setting",
                subject,
                f"the connection runs jobs in {wanted}, but {elsewhere}",
                fix="set the connection's extra 'location' to the datasets' location, or move the datasets",
            )
        ]
    if len(places) > 1:
        apart = ", ".join(f"{d.name} in {d.location}" for d in places.values())
        return [
            Finding(
                "fail",
                "setting",
                subject,
                f"the load's datasets are in different locations ({apart}); one query cannot read both",
                fix="use a staging dataset in the target's location (sink.staging.schema)",
            )
        ]
    return []


@dataclass(frozen=True)
class DryRun:
    """A dry-run query job's answer: ``error`` BigQuery's message (None: it planned);
    ``denied``: the error was a 403; ``checked``: BigQuery authorized an identity."""

    sql: str
    error: str | None = None
    denied: bool = False
    bytes: int | None = None
    checked: bool = True


def dry_run_findings(subject: str, run: DryRun, *, project: str, reads: str | None) -> list[Finding]:
    """jobs.create on the project (every query and load job the sink runs) and, when ``reads``
    names the target, that a SELECT of it plans."""
    what = f"a SELECT of {reads}" if reads else "a query"
    if run.error is not None:
        if run.denied:
            return [
                Finding(
                    "fail",
                    "privilege",
                    subject,
                    f"a dry run of {what} was refused: {run.error}",
                    fix=f"grant roles/bigquery.jobUser ({CREATE_JOB}) on project {project}, and read "
                    "access to the tables it names",
                )
            ]
        return [Finding("fail", "object", subject, f"a dry run of {what} does not plan: {run.error}")]
    size = f", {run.bytes:,} bytes to scan" if run.bytes is not None else ""
    if not run.checked:
        return [
            Finding("ok", "object", subject, f"{what} plans (dry run{size})"),
            Finding(
                "info",
                "privilege",
                subject,
                f"{CREATE_JOB} on project {project}: not known (the endpoint checks no identity)",
            ),
        ]
    return [
        Finding(
            "ok",
            "privilege",
            subject,
            f"{CREATE_JOB} on project {project}: a dry run of {what} was accepted{size}",
        )
    ]


def gcs_finding(subject: str, uri: str) -> Finding:
    """Load jobs read staged files from GCS as the BigQuery connection's identity."""
    bucket = uri.removeprefix("gs://").split("/", 1)[0]
    return Finding(
        "info",
        "privilege",
        subject,
        f"load jobs read the staged files under {uri} as this connection's identity: it needs "
        f"storage.objects.get on bucket {bucket}: not probed (doctor sends these credentials to "
        "BigQuery only)",
    )


# --- reaching BigQuery ------------------------------------------------------------------------

REFUSED = "refused"  # BigQuery or the token endpoint answered: the credentials are not accepted
NO_CREDENTIALS = "no_credentials"  # none found or the connection does not say how
UNREACHABLE = "unreachable"  # no answer: DNS, connection refused, timeout


def connect_findings(label: str, kind: str, message: str, seconds: float) -> list[Finding]:
    """The first call failed: unreachable, or reached and the credentials refused or absent
    (``message`` is already redacted)."""
    if kind == UNREACHABLE:
        return [
            Finding(
                "fail",
                "reachable",
                label,
                f"BigQuery did not answer: {message}",
                fix="check network access to bigquery.googleapis.com (or the emulator host)",
                seconds=seconds,
            )
        ]
    fix = (
        "give the connection a valid service account key (key_path or keyfile_dict), or refresh the "
        "application default credentials (gcloud auth application-default login)"
    )
    if kind == NO_CREDENTIALS:
        return [Finding("fail", "authenticated", label, message, fix=fix, seconds=seconds)]
    return [
        Finding("ok", "reachable", label, "Google answered", seconds=seconds),
        Finding("fail", "authenticated", label, f"the credentials were refused: {message}", fix=fix),
    ]
