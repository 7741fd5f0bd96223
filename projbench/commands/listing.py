"""``projbench list`` and ``projbench plugins``: what is registered, and by which plugin.

Architectures show their parameter count D for every dataset they support, counted on the meta
device (no memory is allocated).
"""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from projbench.errors import ProjbenchError
from projbench.manager import REGISTRY_HOOKS, get_registry, plugin_infos

#: the registry kinds ``projbench list`` can show
KINDS = tuple(REGISTRY_HOOKS)


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def _count_params_meta(arch: Any, shape: tuple[int, ...], classes: int) -> int | None:
    """D of an architecture for a dataset shape, built on the meta device (no memory)."""
    import torch

    if arch.supports is not None and not arch.supports(shape):
        return None
    try:
        with torch.device("meta"):
            model = arch.build(shape, classes)
    except ProjbenchError:
        return None
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _listing(kind: str) -> tuple[list[str], list[list[str]]]:
    registry = get_registry(kind)
    rows: list[list[str]] = []
    if kind == "projections":
        header = ["name", "plugin", "options (defaults)", "summary"]
        for name, cls in registry.items():
            opts = ", ".join(f"{k}={v!r}" for k, v in cls.option_defaults().items())
            rows.append([name, registry.owner(name), opts or "-", cls.summary or _first_line(cls.__doc__)])
    elif kind == "architectures":
        datasets = get_registry("datasets").items()
        header = ["name", "plugin", *[f"D {ds}" for ds, _ in datasets], "description"]
        for name, arch in registry.items():
            counts = [_count_params_meta(arch, tuple(spec.input_shape), spec.num_classes)
                      for _, spec in datasets]
            rows.append([name, registry.owner(name), *[f"{c:,}" if c else "-" for c in counts],
                         arch.description])
    elif kind == "datasets":
        header = ["name", "plugin", "input (C,H,W)", "classes", "needs files", "description"]
        for name, spec in registry.items():
            rows.append([name, registry.owner(name), "×".join(map(str, spec.input_shape)),
                         str(spec.num_classes), "yes" if spec.needs_files else "no", spec.description])
    elif kind == "backends":
        header = ["name", "plugin", "available", "devices", "dtypes", "description"]
        for name, backend in registry.items():
            rows.append([name, registry.owner(name), "yes" if backend.available() else "no",
                         ",".join(backend.devices),
                         ",".join(str(d).replace("torch.", "") for d in backend.dtypes), backend.description])
    else:
        header = ["name", "plugin", "description"]
        for name, suite in registry.items():
            rows.append([name, registry.owner(name), _first_line(suite.description)])
    return header, rows


def _option_specs(cls: Any) -> dict[str, dict[str, Any]]:
    """``{option: {"default": value, "type": name}}`` of a projection class (JSON-safe);
    the type is the annotation when there is one, else the default's type."""
    import inspect

    params = inspect.signature(cls.__init__).parameters
    specs: dict[str, dict[str, Any]] = {}
    for name in cls.option_names():
        param = params[name]
        default = None if param.default is inspect.Parameter.empty else param.default
        annotation = param.annotation
        if annotation is inspect.Parameter.empty:
            type_name = type(default).__name__ if default is not None else "any"
        else:
            type_name = annotation if isinstance(annotation, str) else getattr(
                annotation, "__name__", str(annotation))
        specs[name] = {"default": default if isinstance(default, int | float | str | bool | type(None))
                       else repr(default),
                       "type": str(type_name).replace("typing.", ""),
                       "required": param.default is inspect.Parameter.empty}
    return specs


@click.command("list")
@click.argument("kind", required=False, type=click.Choice([*KINDS, "all"]), default="all")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
def list_command(kind: str, as_json: bool) -> None:
    """List what is registered: projections, architectures, datasets, backends, suites.

    Architectures show their parameter count D for every dataset they support.
    """
    kinds = list(KINDS) if kind == "all" else [kind]
    if as_json:
        data: dict[str, list[dict[str, Any]]] = {}
        for k in kinds:
            header, rows = _listing(k)
            data[k] = [dict(zip(header, row)) for row in rows]
            if k == "projections":  # options as data: name -> {default, type}
                registry = get_registry(k)
                for entry in data[k]:
                    entry.pop("options (defaults)", None)
                    entry["options"] = _option_specs(registry.get(entry["name"]))
        click.echo(json.dumps(data, indent=2))
        return
    console = Console()
    for k in kinds:
        header, rows = _listing(k)
        table = Table(title=k, title_justify="left")
        for h in header:
            table.add_column(h, overflow="fold")
        for row in rows:
            table.add_row(*(escape(str(c)) for c in row))
        console.print(table)


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_command(as_json: bool) -> None:
    """List every plugin (built-in or third-party), its version and what it registers."""
    infos = plugin_infos()
    if as_json:
        click.echo(json.dumps([info.__dict__ for info in infos], indent=2))
        return
    table = Table(title="plugins", title_justify="left")
    for h in ("plugin", "version", "kind", "module", "registers"):
        table.add_column(h, overflow="fold")
    for info in infos:
        registers = "; ".join(f"{k}: {', '.join(v)}" for k, v in info.registers.items())
        if info.error:
            registers = f"[red]failed to load: {info.error}[/]"
        table.add_row(info.name, info.version, "built-in" if info.builtin else "third-party",
                      info.module, registers or "-")
    Console().print(table)
