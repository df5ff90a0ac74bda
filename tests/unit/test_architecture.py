"""The package's shape, read from the source with ``ast``.

- Imports point one way: domain <- compute <- pipeline <- service <- runtimes and entrypoints;
  adapters implement the pipeline's ports; bootstrap wires.
- The domain is pure: nothing of ours but errors, and no library loading, threads,
  processes, databases, AWS or web framework; and it holds no figure a deployment
  configures (no prices, no HTTP request sizes: it is handed them as values).
- Each runtime stands alone; each door imports only the doors it hosts; a door reaches the
  adapters only through bootstrap (named exceptions aside).
- No import cycle between tilefan modules (counting imports inside functions and under
  ``TYPE_CHECKING``), one reader of the environment, a docstring on every module, a package
  for every folder, and no module too long to read.
- Doors run jobs only through the application core, and no port is asked at run time what
  it can do (its capabilities are declared on ``Ports``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "tilefan"
MAX_LINES = 400

# Layer -> layers it must never import. Doors (entrypoints) are checked below: they may import
# any inner layer, and the adapters only through bootstrap.
FORBIDDEN = {
    # Pure values and arithmetic; test_the_domain_is_pure narrows it to domain and errors.
    "domain": {"compute", "pipeline", "service", "runtimes", "adapters", "entrypoints", "bootstrap", "settings"},
    # How a tile uses the hardware: the kernels that load libraries, threads, the core budget.
    # Above the pure domain (it runs the domain's tiles), below the steps that call it.
    "compute": {"pipeline", "service", "runtimes", "adapters", "entrypoints", "bootstrap", "settings"},
    "pipeline": {"adapters", "service", "runtimes", "entrypoints", "bootstrap"},
    "adapters": {"service", "runtimes", "entrypoints", "bootstrap"},
    # The application core: bootstrap hands it the runner, so it never imports a runtime.
    "service": {"adapters", "runtimes", "entrypoints", "bootstrap"},
    "runtimes": {"adapters", "entrypoints", "bootstrap"},
    "settings": {"pipeline", "service", "runtimes", "adapters", "entrypoints", "bootstrap"},
    "bootstrap": {"entrypoints"},
}

# What a pure domain never imports: library loading, threads and processes, databases, AWS,
# web frameworks. (Reading the environment is bootstrap's alone: checked for every module.)
IMPURE = {"ctypes", "threading", "multiprocessing", "concurrent", "subprocess", "socket", "sqlite3", "boto3",
          "botocore", "chalice", "waitress"}

# Door -> the other doors it may import. The command line hosts ``tilefan serve`` (http) and
# ``--endpoint`` (the SDK's Client); report is what every door shows, and imports no door.
DOORS_MAY_IMPORT = {
    "entrypoints.cli": {"entrypoints.http", "entrypoints.sdk", "entrypoints.report"},
    "entrypoints.http": {"entrypoints.report"},
    "entrypoints.sdk": {"entrypoints.report"},
    "entrypoints.report": set(),
}

# A door reaches the adapters through bootstrap, except for these helpers, which work on the
# user's own files and values rather than implementing a port.
DOOR_ADAPTER_EXCEPTIONS = {
    "tilefan.adapters.maps": "field maps (.dx, .mrc) written to and checked on the user's own paths",
    "tilefan.adapters.embedded.chunked_files": "the Python API reads a user's Zarr or HDF5 array in place",
    "tilefan.adapters.records_codec": "the list cursor's pattern, in the OpenAPI document",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
PACKAGES = {module_name(p) for p in sorted(PACKAGE.rglob("__init__.py"))}


def group(module: str) -> str:
    """``tilefan.entrypoints.cli.run`` -> ``entrypoints.cli``; ``tilefan.domain.plan`` -> ``domain``."""
    parts = module.split(".")
    return ".".join(parts[1:3]) if len(parts) > 3 or (len(parts) == 3 and module in PACKAGES) else layer(module)


def layer(module: str) -> str:
    """``tilefan.domain.plan`` -> ``domain``; ``tilefan.bootstrap`` -> ``bootstrap``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def imported_modules(module: str) -> Iterator[str]:
    """Every tilefan module ``module`` imports, wherever the import statement is."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # ``from tilefan.pipeline import verify`` imports the submodule.
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                yield sub if sub in MODULES else source


# What only the application core (``tilefan.service.core``) and the composition root may
# use to run a job: a door that used them would run jobs its own way again.
CORE_ONLY_MODULES = ("tilefan.pipeline.submit",)
CORE_ONLY_NAMES = ("build_scheduler", "submit_job", "Scheduler")


def is_scheduler(module: str) -> bool:
    """``tilefan.runtimes.embedded.scheduler`` and its parts, wherever the runtimes' folders put them."""
    return module.startswith("tilefan.runtimes.embedded.") and module.rpartition(".")[2].startswith("scheduler")


def past_the_core(source: str) -> list[str]:
    """What a door's source uses that only the core and bootstrap may: the submit step, a
    scheduler module, or ``build_scheduler``/``submit_job``/``Scheduler`` by name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name in CORE_ONLY_MODULES or is_scheduler(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module in CORE_ONLY_MODULES or is_scheduler(node.module):
                found.append(node.module)
            found += [f"{node.module}.{a.name}" for a in node.names
                      if a.name in CORE_ONLY_NAMES or is_scheduler(f"{node.module}.{a.name}")]
        elif isinstance(node, ast.Attribute) and node.attr in CORE_ONLY_NAMES:
            found.append(node.attr)
    return found


def import_graph() -> dict[str, set[str]]:
    return {m: {i for i in imported_modules(m) if i in MODULES and i != m} for m in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_import_graph_is_read_from_the_source() -> None:
    # Guards the checks below against passing because they read nothing.
    graph = import_graph()
    assert "tilefan.pipeline.ports" in graph["tilefan.pipeline.tile"]
    assert "tilefan.runtimes.spot.worker" in graph["tilefan.bootstrap"]  # an import inside a function
    assert "tilefan.pipeline.verify" in graph["tilefan.pipeline.reduce"]  # ``from package import module``


def test_no_import_cycles_between_tilefan_modules() -> None:
    assert cycles(import_graph()) == []


def test_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_dependencies_point_one_way() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if layer(target) in FORBIDDEN.get(layer(module), set())
    )
    assert wrong == []


def test_doors_run_jobs_only_through_the_core() -> None:
    doors = [m for m in MODULES if m.startswith("tilefan.entrypoints")]
    assert "tilefan.entrypoints.cli.run" in doors and "tilefan.entrypoints.sdk.api" in doors
    wrong = {m: found for m in doors if (found := past_the_core(MODULES[m].read_text()))}
    assert wrong == {}


def test_the_core_rule_sees_each_way_past_the_core() -> None:
    # Guards the rule above against passing because it recognises nothing.
    source = """
import tilefan.pipeline.submit
from tilefan.bootstrap import build_scheduler, build_core
from tilefan.pipeline.submit import admit
from tilefan.runtimes.embedded import scheduler
from tilefan.runtimes.embedded.scheduler_steps import JobSteps
from tilefan import bootstrap
bootstrap.build_scheduler(config)
"""
    assert past_the_core(source) == [
        "tilefan.pipeline.submit", "tilefan.bootstrap.build_scheduler", "tilefan.pipeline.submit",
        "tilefan.runtimes.embedded.scheduler", "tilefan.runtimes.embedded.scheduler_steps", "build_scheduler"]
    assert past_the_core("from tilefan.bootstrap import build_core\ncore = build_core(one_shot=True)") == []


def test_the_domain_is_pure() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module in MODULES
        if layer(module) == "domain"
        for target in imported_modules(module)
        if target.split(".")[0] in IMPURE
        or (target.split(".")[0] == "tilefan" and layer(target) not in ("domain", "errors"))
    )
    assert wrong == []


def test_the_purity_check_sees_imports_of_the_standard_library() -> None:
    # Guards test_the_domain_is_pure against passing because it reads no such import.
    assert "ctypes" in set(imported_modules("tilefan.compute.ckernel"))


# What a deployment configures, which the domain is handed as values and never holds: what
# AWS charges (settings' list prices, in a ``Prices`` the ``RoutePolicy`` carries) and the
# sizes of an HTTP request (settings' ``HttpLimits``).
CONFIGURED_MODULES = ("prices", "http_limits")
PRICE_WORDS = ("price",)
HTTP_WORDS = ("body_bytes", "upload_bytes", "http")


def has_default(value: ast.expr | None) -> bool:
    """Whether a field's value gives it a default: ``field(kw_only=True)`` gives none."""
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "field":
        return any(k.arg in ("default", "default_factory") for k in value.keywords)
    return value is not None


def configured_figures(source: str, name: str) -> list[str]:
    """The names ``source`` gives a figure a deployment configures: a module constant or a
    class field with a default named for a price or an HTTP size, or any default in a
    ``Prices`` shape (its figures are handed in)."""
    found = []
    tree = ast.parse(source, name)
    bound: list[tuple[str, str, bool]] = []  # (class or "", name, has a value)
    for node in tree.body:
        if isinstance(node, ast.Assign):
            bound += [("", t.id, True) for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            bound.append(("", node.target.id, has_default(node.value)))
        elif isinstance(node, ast.ClassDef):
            bound += [(node.name, item.target.id, has_default(item.value)) for item in node.body
                      if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)]
    for owner, var, valued in bound:
        lowered = var.lower()
        if any(word in lowered for word in HTTP_WORDS) or (valued and (
                any(word in lowered for word in PRICE_WORDS) or owner.endswith("Prices"))):
            found.append(f"{name}: {owner + '.' if owner else ''}{var}")
    return found


def test_the_domain_holds_no_prices_and_no_http_limits() -> None:
    domain = [m for m in MODULES if layer(m) == "domain"]
    assert "tilefan.domain.routing" in domain  # the rule reads the modules it guards
    assert sorted(m for m in domain if m.rpartition(".")[2] in CONFIGURED_MODULES) == []
    found = [f for m in domain for f in configured_figures(MODULES[m].read_text(), m)]
    assert found == []


def test_the_configured_figures_check_finds_prices_and_http_sizes() -> None:
    # Guards the rule above against passing because it recognises nothing: these are the
    # shapes the domain held before (prices.py's constants, RoutePolicy's priced defaults,
    # Limits' request sizes).
    source = """
PRICES_AS_OF = "2024-11"
class RoutePolicy:
    lambda_gb_s_price: float = prices.LAMBDA_GB_S
    spot_hour_price: float = 0.25
    lambda_gflops: float = 60.0
class Limits:
    max_tiles: int = 10_000
    max_cost_usd: float = 10.0
    max_body_bytes: int = 64 * 1024
    max_upload_bytes: int = 256 << 20
class Prices:
    as_of: str
    spot_hour: float = 0.25
"""
    assert [f.split(": ")[1] for f in configured_figures(source, "old.py")] == [
        "PRICES_AS_OF", "RoutePolicy.lambda_gb_s_price", "RoutePolicy.spot_hour_price", "Limits.max_body_bytes",
        "Limits.max_upload_bytes", "Prices.spot_hour"]
    # The shape the domain holds now: a Prices without figures, a policy handed one.
    now = "class Prices:\n    spot_hour: float\nclass RoutePolicy:\n    prices: Prices = field(kw_only=True)\n"
    assert configured_figures(now, "new.py") == []
    assert configured_figures(now.replace("kw_only=True", "default=LIST"), "new.py") == ["new.py: RoutePolicy.prices"]


def test_each_runtime_stands_alone() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if layer(module) == layer(target) == "runtimes" and "runtimes" not in (group(module), group(target))
        and group(module) != group(target)
    )
    assert wrong == []


def test_each_door_imports_only_the_doors_it_hosts() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if layer(module) == layer(target) == "entrypoints" and "entrypoints" not in (group(module), group(target))
        and group(module) != group(target)
        and group(target) not in DOORS_MAY_IMPORT.get(group(module), set())
    )
    assert wrong == []


def test_every_door_and_runtime_module_lives_in_its_own_folder() -> None:
    # A new door or runtime is a folder with a row in DOORS_MAY_IMPORT (or a runtime package),
    # never a loose module beside the folders.
    loose = sorted(m for m in MODULES if layer(m) in ("entrypoints", "runtimes") and m.count(".") == 2
                   and m not in PACKAGES)
    assert loose == []
    assert {group(m) for m in MODULES if layer(m) == "entrypoints" and m.count(".") >= 2} == set(DOORS_MAY_IMPORT)


def test_doors_reach_the_adapters_only_through_bootstrap() -> None:
    used = {
        target
        for module, targets in import_graph().items()
        if layer(module) == "entrypoints"
        for target in targets
        if layer(target) == "adapters"
    }
    assert sorted(used - set(DOOR_ADAPTER_EXCEPTIONS)) == []


def test_every_module_says_what_it_is_for() -> None:
    silent = sorted(m for m, p in MODULES.items() if not ast.get_docstring(ast.parse(p.read_text(), str(p))))
    assert silent == []


def test_every_folder_of_modules_is_a_package() -> None:
    folders = {p.parent for p in MODULES.values()}
    assert sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").is_file()) == []


def test_the_library_never_imports_the_chalice_app_or_its_lambda_doors() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module in MODULES
        for target in imported_modules(module)
        if target.split(".")[0] in ("chalicelib", "app")
    )
    assert wrong == []


def test_only_bootstrap_reads_the_environment() -> None:
    readers = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
                readers.append(module)
    assert sorted(set(readers)) == ["tilefan.bootstrap"]


def test_no_module_is_over_the_line_limit() -> None:
    paths = [*MODULES.values(), *sorted((ROOT / "chalicelib").glob("*.py")), ROOT / "app.py"]
    long = {str(p.relative_to(ROOT)): n for p in paths if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


# The objects that are ports or hold them, by the names the code gives them: what one of
# them can do beyond its port is a capability field of ``Ports`` (or of the service), wired
# by the composition root, never found by asking the object with getattr or hasattr.
PORTISH_SUFFIXES = ("ports", "blobs", "runner", "jobs", "store")


def attribute_chain(node: ast.expr) -> list[str]:
    """``self.ports.blobs`` -> ``["self", "ports", "blobs"]``; [] for any other expression."""
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    return [node.id, *reversed(names)] if isinstance(node, ast.Name) else []


def port_probes(source: str, name: str) -> list[str]:
    """Every getattr or hasattr in ``source`` whose object is a port or holds ports."""
    found = []
    for node in ast.walk(ast.parse(source, name)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "hasattr") and node.args):
            continue
        if any(part.lower().endswith(PORTISH_SUFFIXES) for part in attribute_chain(node.args[0])):
            found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_port_probe_check_finds_probes_and_only_probes() -> None:
    probes = port_probes(
        "getattr(service.ports.blobs, 'presign_get', None)\n"
        "hasattr(ports, 'claims')\n"
        "getattr(service.runner, 'stop', None)\n"
        "hasattr(self.blob_store, 'put_bytes')\n"
        "getattr(spec, 'out', None)\n"
        "getattr(self._local, 'conn', None)\n"
        "getattr(lib, name)\n",
        "example.py",
    )
    assert [p.split(":")[1] for p in probes] == ["1", "2", "3", "4"]


def test_no_module_probes_a_port_for_a_capability() -> None:
    paths = [*MODULES.values(), *sorted((ROOT / "chalicelib").glob("*.py")), ROOT / "app.py"]
    probes = [probe for p in paths for probe in port_probes(p.read_text(), str(p.relative_to(ROOT)))]
    assert probes == []
