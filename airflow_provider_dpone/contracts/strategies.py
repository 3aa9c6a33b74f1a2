"""Load strategies and incremental modes named in manifest contract v1."""

from __future__ import annotations

from enum import Enum


class Strategy(str, Enum):
    FULL_REFRESH = "full_refresh"
    INCREMENTAL_APPEND = "incremental_append"
    INCREMENTAL_MERGE = "incremental_merge"
    REPLACE = "replace"
    PARTITION_REPLACE = "partition_replace"
    SNAPSHOT_DIFF = "snapshot_diff"
    SCD2 = "scd2"
    CDC_APPLY = "cdc_apply"


class IncrementalMode(str, Enum):
    CURSOR = "cursor"
    XMIN = "xmin"
    CDC = "cdc"
    OFFSETS = "offsets"
    CHANGE_TRACKING = "change_tracking"


# Modes that read a change feed (inserts, updates and deletes of a table): applied by cdc_apply.
CHANGE_MODES = frozenset({IncrementalMode.CDC, IncrementalMode.CHANGE_TRACKING})
# The column of a change batch saying what happened to the row: I insert, U update, D delete,
# S a row of a full snapshot (the first read). Staged, never written to the target.
CHANGE_OP = "_dpone_op"
# A change batch's order, where a key may change more than once in it (PostgreSQL's logical
# decoding, Debezium topics): the last change of a key has the highest. Staged, never a target's.
CHANGE_SEQ = "_dpone_seq"


STRATEGIES_NEEDING_UNIQUE_KEY = frozenset(
    {Strategy.INCREMENTAL_MERGE, Strategy.SNAPSHOT_DIFF, Strategy.SCD2, Strategy.CDC_APPLY}
)

# Keyed strategies that may delete target rows missing from the source (reconciliation).
RECONCILING_STRATEGIES = frozenset({Strategy.INCREMENTAL_MERGE, Strategy.SNAPSHOT_DIFF, Strategy.SCD2})

# Columns an scd2 target carries besides the source's (managed by the sink).
SCD2_COLUMNS = {
    "valid_from": "valid_from",
    "valid_to": "valid_to",
    "is_current": "is_current",
    "row_hash": "row_hash",
}
