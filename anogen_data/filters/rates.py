"""Pass rates of the filter decisions: the one rule that ``filter_stats.json`` and ``stats.json`` share.

Kept apart from ``filters.runner`` (which loads the torch backbone) so the writers can import it cheaply.
"""

from __future__ import annotations

from collections.abc import Sequence


def failed_score(reason: str) -> str:
    """The score name a reason is about: a ``decide`` reason reads "<score name>: <value> <op> <limit>..."."""
    return reason.split(":")[0]


def pass_rates(rows: Sequence[dict]) -> dict:
    """Overall and per-score pass rates, and counts per reason's score name, of scores.jsonl rows
    ``{"id", "keep", "reasons", "scores"}`` (a missing "reasons" or "scores" counts as empty), as written
    to filter_stats.json and to stats.json's "filters".

    Returns:
        {"scored", "kept", "pass_rate", "per_filter": {score name: share of rows not failed by it},
        "dropped_by": {score name: rows it failed, names that failed none left out}}; rates are None
        when there is no row.
    """
    total = len(rows)
    names = sorted({name for row in rows for name in row.get("scores") or {}})
    failed = {name: sum(any(failed_score(r) == name for r in row.get("reasons") or ()) for row in rows)
              for name in names}
    kept = sum(bool(row["keep"]) for row in rows)
    return {
        "scored": total,
        "kept": kept,
        "pass_rate": round(kept / total, 6) if total else None,
        "per_filter": {name: round(1 - failed[name] / total, 6) if total else None for name in names},
        "dropped_by": {name: failed[name] for name in names if failed[name]},
    }
