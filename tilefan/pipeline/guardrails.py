"""Guardrails: what one job may cost, checked on the planned job before it is recorded.

A job over a limit is refused with a 400 (the CLI exits 2) whose message names the limit
and the setting that raises it, on both backends. The limits are settings (``Limits``,
from ``TILEFAN_MAX_TILES`` and ``TILEFAN_MAX_COST_USD``), per home or per stage.
"""

from __future__ import annotations

from tilefan.domain.plan import Plan, plan_unless_planned, tiles_total
from tilefan.domain.routing import RoutePolicy
from tilefan.domain.spec.parse import JobSpec, Limits
from tilefan.errors import InvalidSpecError
from tilefan.settings import list_policy


def check_guardrails(
    spec: JobSpec, limits: Limits, policy: RoutePolicy | None = None, planned: Plan | None = None,
) -> Plan:
    """Refuse a job with more tiles, or a higher estimated cost, than the limits allow;
    else its plan: ``planned`` when that is the spec's plan, else one cut here (under
    ``policy``, or the planner's defaults at the list prices)."""
    # The count comes first, from the shapes alone: a job of a billion tiles is refused
    # before anything tries to plan it.
    tiles = tiles_total(spec)
    if tiles > limits.max_tiles:
        raise InvalidSpecError("tile", f"the job has {tiles} tiles, over the limit of {limits.max_tiles} per job "
                                       "(setting TILEFAN_MAX_TILES); use a larger tile or raise the setting")
    the_plan = plan_unless_planned("guardrail", spec, policy or list_policy(), planned)
    cost = the_plan.cost
    if cost is not None and cost.total_usd > limits.max_cost_usd:
        raise InvalidSpecError("cost", f"the job's estimated cost ${cost.total_usd:.2f} is over the limit of "
                                       f"${limits.max_cost_usd:.2f} per job (setting TILEFAN_MAX_COST_USD)")
    return the_plan
