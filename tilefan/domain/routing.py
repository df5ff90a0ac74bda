"""Where a tile runs: a Lambda, or (too big for one) an EC2 spot worker, and what a plan costs.

The ceilings are Lambda's documented limits (10,240 MB of memory, 900 s a run) less
safety margins, since an estimate that is slightly low must not turn into an out-of-memory
kill or a timeout. Run times are estimated from work and bytes at configured rates; the
rates and prices are assumptions a deployment can tune (``tilefan.settings.route_policy``),
not measurements of the machine that happens to plan. The policy carries its ``Prices`` as a
value: the domain knows what is charged for, never what it costs (the list prices are
configuration, ``tilefan.settings.LIST_PRICES``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import Any

from tilefan.domain.transfer import function_io_mb_s, io_streams

AUTO = "auto"
LAMBDA = "lambda"
SPOT = "spot"
ROUTES = (AUTO, LAMBDA, SPOT)

# State transitions a tile costs in Step Functions (Choice + Task, and the Map's own
# bookkeeping), and those a job costs whatever its size (Plan, Choices, Reduce, ...).
TRANSITIONS_PER_TILE = 3
TRANSITIONS_PER_JOB = 8

# A stored matrix's column panel lies scattered along whole rows of its .npy object, so the
# S3 blob store reads whole rows, in chunks of about this many bytes, and keeps only the
# panel's columns: a tile's memory holds the panel and one chunk, and its reads cost every
# byte of the rows (what the planner charges, ``stored_read_bytes``).
PANEL_READ_CHUNK_BYTES = 64 << 20


# The tile Lambda as deployed (.chalice/config.json), and the S3 rate of its 16 concurrent
# ranged requests (tilefan.domain.transfer: a modelled 60 MB/s a stream, 300 MB/s in all).
LAMBDA_MEMORY_MB = 10_240
LAMBDA_IO_MB_S = function_io_mb_s(io_streams(LAMBDA_MEMORY_MB))


def stored_read_bytes(rows: int, cols: int, width: int, itemsize: int) -> int:
    """Bytes read from a stored ``? × width`` matrix for a ``rows × cols`` block: whole rows
    unless the block spans the full width.

    >>> stored_read_bytes(65_536, 2_048, 65_536, 4) / 1e9  # a B column panel of a 65,536² matmul
    17.179869184
    >>> stored_read_bytes(10, 100, 100, 8)
    8000
    """
    return rows * width * itemsize if cols < width else rows * cols * itemsize


@dataclass(frozen=True)
class Prices:
    """What AWS charges for each thing a plan uses, in USD, and where the figures come from.

    The shape only: the figures are configuration (list prices for a region and a date, a
    spot price a deployment sets), handed in by whoever builds the ``RoutePolicy``.
    """

    as_of: str  # where the figures come from, printed beside every prediction
    lambda_gb_s: float  # Lambda duration, per GB-second
    lambda_request: float  # per invocation
    sfn_transition: float  # Step Functions Standard, per state transition
    dynamo_write_unit: float  # on-demand write request unit
    dynamo_read_unit: float  # on-demand read request unit
    s3_put: float  # PUT-class request (PUT, COPY, POST, LIST)
    s3_get: float  # GET and every other request
    spot_hour: float  # one spot worker instance, per hour

    @classmethod
    def unpriced(cls) -> Prices:
        """Nothing charged: for examples and tests where only routes and times matter.

        >>> Prices.unpriced().spot_hour, Prices.unpriced().as_of
        (0.0, 'unpriced')
        """
        return cls("unpriced", **{f.name: 0.0 for f in fields(cls) if f.name != "as_of"})


@dataclass(frozen=True)
class RoutePolicy:
    """Where tiles may run (``choose_route``), the rates that model their run times there, and
    what AWS charges."""

    # The tile Lambda as deployed (.chalice/config.json) and the margins kept under it.
    lambda_memory_mb: int = LAMBDA_MEMORY_MB
    lambda_timeout_s: int = 900
    memory_margin: float = 0.7
    time_margin: float = 0.5
    # GEMM on a full-size Lambda (about six vCPUs) uses them all through OpenBLAS:
    # PyWren-era measurements put one vCPU at 14–20 GFLOP/s.
    lambda_gflops: float = 60.0
    # The atoms kernel is the C kernel the package ships, in its AVX2 build (assumed: every
    # Lambda x86 CPU runs AVX2, not every one AVX-512), run by one thread per CPU the
    # process may use, over slabs of the tile. Per vCPU: that build measured 1.89–1.90 G
    # pairs/s in float64 and 5.6–8.3 in float32 on one Zen 5 thread here (10 flops a pair;
    # docs/cost-model.md); a Lambda vCPU is a hyperthread of an older, lower-clocked server
    # core, so the plan takes half the slower measurement: 0.95 and 2.8 G pairs/s. Each vCPU
    # past the first adds ``atoms_thread_efficiency`` of one (``parallel_speedup``): 0.9,
    # from 1.88× measured on 2 cores in float64 and 1.74–1.9× in float32.
    atoms_vcpu_gflops: float = 9.5  # float64
    atoms_f32_vcpu_gflops: float = 28.0
    atoms_thread_efficiency: float = 0.9
    lambda_io_mb_s: float = LAMBDA_IO_MB_S  # S3 read/write per function
    lambda_overhead_s: float = 1.0  # start, import NumPy, one round trip per tile
    plan_memory_mb: int = 3008  # the plan function as deployed; it stages a stored B's panels
    # A spot worker (the launch template's default c7i.4xlarge: 16 vCPUs, 32 GiB) runs the
    # atoms kernel on every vCPU, at the per-vCPU rates above.
    spot_gflops: float = 250.0
    spot_vcpus: int = 16
    spot_io_mb_s: float = 200.0
    # Boot, package install, and the idle period before a worker stops itself.
    spot_overhead_s: float = 420.0
    spot_max_workers: int = 4
    prices: Prices = field(kw_only=True)  # what AWS charges: handed in, the domain holds no figures

    @property
    def lambda_memory_budget(self) -> float:
        """Bytes a Lambda tile may be estimated to need."""
        return self.memory_margin * self.lambda_memory_mb * (1 << 20)

    @property
    def lambda_time_budget(self) -> float:
        """Seconds a Lambda tile may be estimated to take."""
        return self.time_margin * self.lambda_timeout_s

    def atoms_gflops(self, vcpus: float, precision: str = "float64") -> float:
        """The atoms kernel's rate on ``vcpus`` CPUs: the per-vCPU rate × the speed-up.

        >>> p = RoutePolicy(prices=Prices.unpriced())
        >>> round(p.atoms_gflops(lambda_vcpus(10_240)), 1), round(p.atoms_gflops(1.0, "float32"), 1)
        (50.4, 28.0)
        """
        per_vcpu = self.atoms_f32_vcpu_gflops if precision == "float32" else self.atoms_vcpu_gflops
        return per_vcpu * parallel_speedup(vcpus, self.atoms_thread_efficiency)


# Lambda gives a function CPU in proportion to its memory: 1,769 MB is one vCPU, and the
# 10,240 MB top has six.
LAMBDA_MB_PER_VCPU = 1769
LAMBDA_MAX_VCPUS = 6


def lambda_vcpus(memory_mb: int) -> float:
    """The vCPUs a Lambda function of ``memory_mb`` computes with (a share below one).

    >>> lambda_vcpus(1769), round(lambda_vcpus(10_240), 2), round(lambda_vcpus(884), 2)
    (1.0, 5.79, 0.5)
    """
    return min(LAMBDA_MAX_VCPUS, memory_mb / LAMBDA_MB_PER_VCPU)


def parallel_speedup(vcpus: float, efficiency: float) -> float:
    """How much faster ``vcpus`` run the atoms kernel than one: each past the first adds
    ``efficiency`` of one; a share of one vCPU runs at that share.

    >>> parallel_speedup(2, 0.9), parallel_speedup(6, 0.9), parallel_speedup(0.5, 0.9)
    (1.9, 5.5, 0.5)
    """
    return vcpus if vcpus <= 1 else 1 + efficiency * (vcpus - 1)


def seconds(flops: int, io_bytes: int, gflops: float, io_mb_s: float) -> float:
    """Estimated run time of ``flops`` of work plus ``io_bytes`` of transfer.

    >>> seconds(60 * 10**9, 60 * 10**6, 60.0, 60.0)
    2.0
    """
    return flops / (gflops * 1e9) + io_bytes / (io_mb_s * 1e6)


def lambda_seconds(
    flops: int, io_bytes: int, policy: RoutePolicy, *, atoms: bool = False, precision: str = "float64",
) -> float:
    """Estimated run time of a Lambda tile: atoms work at the kernel's rate in ``precision``
    (float64 unless the plan says float32), other work at the GEMM rate.

    >>> p = RoutePolicy(prices=Prices.unpriced())
    >>> lambda_seconds(10**11, 0, p, atoms=True) > lambda_seconds(10**11, 0, p, atoms=True, precision="float32")
    True
    """
    vcpus = lambda_vcpus(policy.lambda_memory_mb)
    gflops = policy.atoms_gflops(vcpus, precision) if atoms else policy.lambda_gflops
    return policy.lambda_overhead_s + seconds(flops, io_bytes, gflops, policy.lambda_io_mb_s)


def spot_seconds(
    flops: int, io_bytes: int, policy: RoutePolicy, *, atoms: bool = False, precision: str = "float64",
) -> float:
    """Estimated run time of a tile on a spot worker: atoms work on its every vCPU.

    >>> round(spot_seconds(10**13, 0, RoutePolicy(prices=Prices.unpriced()), atoms=True), 1)  # 9.5 × 14.5 GFLOP/s
    72.6
    """
    gflops = policy.atoms_gflops(policy.spot_vcpus, precision) if atoms else policy.spot_gflops
    return seconds(flops, io_bytes, gflops, policy.spot_io_mb_s)


def fits_lambda(mem_bytes: int, est_seconds: float, policy: RoutePolicy) -> bool:
    return mem_bytes <= policy.lambda_memory_budget and est_seconds <= policy.lambda_time_budget


def choose_route(
    mem_bytes: int, flops: int, policy: RoutePolicy, *, io_bytes: int = 0, atoms: bool = False,
    precision: str = "float64", force: str = AUTO,
) -> str:
    """``lambda`` when the tile fits a Lambda with the margins kept, else ``spot``;
    ``force`` (a job's route override) wins whatever the estimates say.

    >>> p = RoutePolicy(prices=Prices.unpriced())
    >>> choose_route(1 << 30, 10**12, p)
    'lambda'
    >>> choose_route(9 << 30, 10**9, p)
    'spot'
    >>> choose_route(1 << 20, 10**13, p, atoms=True)  # 199 s on a Lambda's six vCPUs
    'lambda'
    >>> choose_route(1 << 20, 10**14, p, atoms=True)
    'spot'
    >>> choose_route(9 << 30, 10**9, p, force="lambda")
    'lambda'
    """
    if force in (LAMBDA, SPOT):
        return force
    est = lambda_seconds(flops, io_bytes, policy, atoms=atoms, precision=precision)
    return LAMBDA if fits_lambda(mem_bytes, est, policy) else SPOT


# --------------------------------------------------------------------------- cost


@dataclass(frozen=True)
class TileCost:
    """What one planned tile needs, in the units the cost model charges."""

    route: str
    lambda_s: float
    spot_s: float


@dataclass(frozen=True)
class CostEstimate:
    """A plan's tiles by route and what they cost on AWS."""

    lambda_tiles: int
    spot_tiles: int
    lambda_gb_s: float
    spot_workers: int
    spot_instance_s: float
    transitions: int
    lambda_usd: float
    spot_usd: float
    steps_usd: float

    @property
    def total_usd(self) -> float:
        return self.lambda_usd + self.spot_usd + self.steps_usd

    def to_dict(self) -> dict[str, Any]:
        return {
            "lambda_tiles": self.lambda_tiles, "spot_tiles": self.spot_tiles,
            "lambda_gb_s": round(self.lambda_gb_s, 3), "spot_workers": self.spot_workers,
            "spot_instance_s": round(self.spot_instance_s, 3), "transitions": self.transitions,
            "lambda_usd": round(self.lambda_usd, 6), "spot_usd": round(self.spot_usd, 6),
            "steps_usd": round(self.steps_usd, 6), "total_usd": round(self.total_usd, 6),
        }


def estimate_cost(tiles: Iterable[TileCost], policy: RoutePolicy, plan_s: float = 0.0) -> CostEstimate:
    """The AWS bill of a plan, roughly: Lambda GB-seconds at the tile function's memory
    (and ``plan_s`` of work in the plan function, staging B's panels, at its memory),
    spot instance time (tile time on the workers, plus boot and idle time per worker),
    and Step Functions transitions.

    >>> from dataclasses import replace
    >>> policy = RoutePolicy(spot_max_workers=2, spot_overhead_s=100.0,
    ...                      prices=replace(Prices.unpriced(), spot_hour=3.6))
    >>> est = estimate_cost([TileCost("lambda", 10.0, 2.0)] * 3 + [TileCost("spot", 900.0, 50.0)] * 4, policy)
    >>> est.lambda_gb_s, est.spot_workers, est.spot_instance_s, est.transitions
    (300.0, 2, 400.0, 29)
    >>> round(est.spot_usd, 6)
    0.4
    """
    lambda_s = spot_s = 0.0
    n_lambda = n_spot = 0
    for tile in tiles:
        if tile.route == SPOT:
            n_spot += 1
            spot_s += tile.spot_s
        else:
            n_lambda += 1
            lambda_s += tile.lambda_s
    gb_s = lambda_s * policy.lambda_memory_mb / 1024 + plan_s * policy.plan_memory_mb / 1024
    workers = min(n_spot, policy.spot_max_workers)
    instance_s = spot_s + workers * policy.spot_overhead_s
    transitions = TRANSITIONS_PER_JOB + TRANSITIONS_PER_TILE * (n_lambda + n_spot)
    return CostEstimate(
        lambda_tiles=n_lambda, spot_tiles=n_spot, lambda_gb_s=gb_s, spot_workers=workers,
        spot_instance_s=instance_s, transitions=transitions,
        lambda_usd=gb_s * policy.prices.lambda_gb_s,
        spot_usd=instance_s * policy.prices.spot_hour / 3600,
        steps_usd=transitions * policy.prices.sfn_transition,
    )
