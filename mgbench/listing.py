"""`mgbench list`: the registered models, metrics and datasets, as text tables."""

from __future__ import annotations

from mgbench.errors import UsageError


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def list_models(dataset: str = "shapes", resolution: int = 32, root: str | None = None) -> str:
    """Each model with its parameter count on ``dataset`` at ``resolution`` px (its data spec only:
    the images are not read), or why it cannot train there."""
    from mgbench import registry
    from mgbench.contract import DataSpec
    from mgbench.data import load_dataset

    try:
        spec = load_dataset(dataset, "reference", resolution=resolution, root=root, reference_size=16,
                            train_size=16).spec()
    except UsageError as err:
        raise UsageError(f"cannot read {dataset} at {resolution} px for the parameter counts: {err.problem}",
                         err.fix or "give --dataset / --resolution / --data-root") from None
    spec = DataSpec(spec.channels, spec.resolution, spec.num_classes)
    rows = []
    for name in registry.list_models():
        cls = registry.get_model_class(name)
        try:
            model = registry.create_model(name, spec)
            params = f"{sum(model.num_parameters().values()):,}"
            scales = " ".join(f"{r}" for r in model.resolutions)
        except UsageError as err:
            params, scales = "—", f"({err.problem})"
        rows.append([name, "yes" if cls.conditional else "no", params, scales, cls.description])
    return _table(["model", "conditional", f"params ({dataset} {resolution}px)", "generates at (px)",
                   "description"], rows)


def list_metrics() -> str:
    """Each metric with its columns (↑ higher / ↓ lower is better), section, needs and whether it is a default."""
    from mgbench.metrics import registry

    arrows = {registry.HIGHER: " ↑", registry.LOWER: " ↓", None: ""}
    rows = []
    for name in registry.list_metrics():
        unit = registry.get_metric(name)
        columns = ", ".join(c.name + arrows[c.direction] for c in unit.columns)
        rows.append([name, columns, unit.section, ", ".join(sorted(unit.needs)) or "images",
                     "yes" if unit.default else "no", unit.description])
    return _table(["metric", "columns", "section", "needs", "default", "description"], rows)


def list_datasets() -> str:
    from mgbench.data import get_dataset
    from mgbench.data import list_datasets as names

    rows = []
    for name in names():
        unit = get_dataset(name)
        rows.append([name, ", ".join(unit.factors) or "—", "data.root" if unit.needs_root else "embedded",
                     unit.description])
    return _table(["dataset", "factors", "files", "description"], rows)
