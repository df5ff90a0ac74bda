"""The size fit: smaller tiles when that keeps a job on Lambda for no more money.

A user who names no tile size gets the spec's default tiles, unless some of them would go
to spot and cutting them smaller keeps every tile on a Lambda at no higher cost
(``fit_to_lambda``). Pure, like the plan it cuts trial tilings with (``plan.plan``); the
submission keeps the plan the fit judged (``fitted_plan``), so the job is planned once.
"""

from __future__ import annotations

from dataclasses import replace

from tilefan.domain.plan import Plan, output_shape, plan
from tilefan.domain.routing import AUTO, LAMBDA, RoutePolicy
from tilefan.domain.spec.parse import AtomsSpec, JobSpec
from tilefan.domain.tiling import num_tiles

# Smallest tile edges fit_to_lambda goes down to, and the most tiles it will make.
MATRIX_EDGE_FLOOR = 64
GRID_EDGE_FLOOR = 8
FIT_MAX_TILES = 10_000


def fit_to_lambda(spec: JobSpec, policy: RoutePolicy) -> JobSpec:
    """The spec with smaller tiles when that keeps every tile on Lambda for no more money.

    When the spec's tiles send some work to spot and its route is ``auto``, halve the
    longest tile edge until every tile fits a Lambda (or the edges reach a floor, or the
    tile count FIT_MAX_TILES). The largest such tiling is the cheapest on Lambda (smaller
    tiles only add per-tile overhead and re-read more input), so compare that one with the
    spot plan's estimate and keep whichever is cheaper; a tie goes to Lambda, which has no
    boot time and no interruptions.

    One tile of 42 TFLOP of atoms work: about 840 s on a Lambda (the C kernel on its six
    vCPUs), so it routes to spot, where the kernel on 16 vCPUs takes about 307 s plus the
    worker's boot and idle time. At 25 cents an hour of spot (and Lambda's $0.0000166667 a
    GB-second) that is cheaper than two 425 s Lambdas, so the tile stays; at $5 an hour it is
    not, and the tiles shrink until they fit:

    >>> from tilefan.domain.routing import Prices
    >>> from tilefan.domain.spec.parse import RandomAtoms
    >>> atoms = RandomAtoms(count=16_000_000, seed=1)
    >>> big = AtomsSpec((64, 64, 64), (0.0,) * 3, 1.0, 0.0, "float64", atoms, None, (64, 64, 64), False)
    >>> cheap = RoutePolicy(prices=replace(Prices.unpriced(), lambda_gb_s=0.0000166667, spot_hour=0.25))
    >>> dear = RoutePolicy(prices=replace(cheap.prices, spot_hour=5.0))
    >>> plan("j", big, cheap).tiles_per_route()
    {'lambda': 0, 'spot': 1}
    >>> fit_to_lambda(big, cheap).tile
    (64, 64, 64)
    >>> fit_to_lambda(big, dear).tile
    (32, 64, 64)
    >>> fit_to_lambda(replace(big, route="spot"), dear).tile
    (64, 64, 64)
    """
    if spec.route != AUTO:
        return spec  # nothing to choose: no need to plan
    return fitted_plan(spec, policy)[0]


def fitted_plan(spec: JobSpec, policy: RoutePolicy, job_id: str = "fit") -> tuple[JobSpec, Plan]:
    """``fit_to_lambda``'s choice and its plan, each tiling tried planned once: the plan
    returned is the one the fit judged, for the submission to hand on rather than cut again."""
    base = plan(job_id, spec, policy)
    if spec.route != AUTO or all(t.route == LAMBDA for t in base.tiles):
        return spec, base
    shape = output_shape(spec)
    floor = GRID_EDGE_FLOOR if isinstance(spec, AtomsSpec) else MATRIX_EDGE_FLOOR
    tile = tuple(min(t, n) for t, n in zip(spec.tile, shape, strict=True))
    while True:
        smaller = _halve_longest(tile, floor)
        if smaller is None or num_tiles(shape, smaller) > FIT_MAX_TILES:
            return spec, base
        tile = smaller
        candidate = _with_tile(spec, tile)
        trial = plan(job_id, candidate, policy)
        if all(t.route == LAMBDA for t in trial.tiles):
            assert trial.cost is not None and base.cost is not None
            return (candidate, trial) if trial.cost.total_usd <= base.cost.total_usd else (spec, base)


def _halve_longest(tile: tuple[int, ...], floor: int) -> tuple[int, ...] | None:
    """
    >>> _halve_longest((64, 64, 256), 8)
    (64, 64, 128)
    >>> _halve_longest((100, 300), 64)
    (100, 150)
    >>> _halve_longest((8, 8), 8) is None
    True
    """
    longest = max(range(len(tile)), key=lambda axis: tile[axis])
    if tile[longest] <= floor:
        return None
    out = list(tile)
    out[longest] = max(floor, -(-tile[longest] // 2))
    return tuple(out)


def _with_tile(spec: JobSpec, tile: tuple[int, ...]) -> JobSpec:
    if isinstance(spec, AtomsSpec):
        return replace(spec, tile=(tile[0], tile[1], tile[2]))
    return replace(spec, tile=(tile[0], tile[1]))

