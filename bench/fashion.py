"""Helper of bench/fashion.sh: recipe variants (one distillation loss each, another seed) of
recipes/fashion-mnist.toml, and the README tables from the runs' report.json files."""
import json
import re
import statistics
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent / "recipes" / "fashion-mnist.toml"

# One [distill] section per method: the hard-label cross-entropy plus that loss alone, on the
# layers where student and teacher have the same spatial size (student conv2 and teacher block2
# are both 14×14) or on the logits for the relational losses. Weights bring each term to the
# order of the cross-entropy (RKD's are the paper's).
METHODS = {
    "hinton": 'ce_weight = 0.5\n\n[[distill.loss]]\nkind = "hinton"\nweight = 0.5\ntemperature = 4.0\n',
    "fitnets": 'ce_weight = 1.0\n\n[[distill.loss]]\nkind = "fitnets"\nweight = 0.5\nstudent_layer = "conv2"\nteacher_layer = "block2"\n',
    "attention": 'ce_weight = 1.0\n\n[[distill.loss]]\nkind = "attention"\nweight = 100.0\nstudent_layer = "conv2"\nteacher_layer = "block2"\n',
    "activation-boundary": 'ce_weight = 1.0\n\n[[distill.loss]]\nkind = "activation-boundary"\nweight = 0.02\nstudent_layer = "conv2"\nteacher_layer = "block2"\nmargin = 1.0\n',
    "rkd-distance": 'ce_weight = 1.0\n\n[[distill.loss]]\nkind = "rkd-distance"\nweight = 25.0\nstudent_layer = "fc1"\nteacher_layer = "fc1"\n',
    "rkd-angle": 'ce_weight = 1.0\n\n[[distill.loss]]\nkind = "rkd-angle"\nweight = 50.0\nstudent_layer = "fc1"\nteacher_layer = "fc1"\n',
    "area-rkd": 'ce_weight = 1.0\n\n[[distill.loss]]\nkind = "area-rkd"\nweight = 25.0\ngrid = 7\nstudent_layer = "conv2"\nteacher_layer = "block2"\n',
    "combined": None,  # the recipe's own [distill] (Hinton + activation boundary)
    # Hinton at lower temperatures, and T = 1 without the hard-label term (pure soft targets).
    "hinton-t2": 'ce_weight = 0.5\n\n[[distill.loss]]\nkind = "hinton"\nweight = 0.5\ntemperature = 2.0\n',
    "hinton-t1": 'ce_weight = 0.5\n\n[[distill.loss]]\nkind = "hinton"\nweight = 0.5\ntemperature = 1.0\n',
    "hinton-t1-pure": 'ce_weight = 0.0\n\n[[distill.loss]]\nkind = "hinton"\nweight = 1.0\ntemperature = 1.0\n',
}
# What `bench/fashion.sh` runs when METHODS is not given (the temperature variants on request).
DEFAULT_METHODS = [m for m in METHODS if not m.startswith("hinton-t")]


def variant(seed: int, method: str, student_epochs: str = "") -> str:
    src = BASE.read_text()
    src = re.sub(r"(?m)^seed = \d+", f"seed = {seed}", src, count=1)
    if student_epochs:
        head, rest = src.split("[student]\n", 1)
        rest = re.sub(r"(?m)^epochs = \d+", f"epochs = {int(student_epochs)}", rest, count=1)
        # Distillation only: the pruning schedule is the full budget's.
        if "\n[prune]" in rest:
            rest = rest[: rest.index("\n[prune]")] + "\n"
        src = f"{head}[student]\n{rest}"
    body = METHODS[method]
    if body is not None:
        head, rest = src.split("[distill]\n", 1)
        tail = rest[rest.index("\n[prune]") :] if "\n[prune]" in rest else "\n"
        src = f"{head}[distill]\n{body}{tail}"
    return src


def rows(path: Path) -> dict:
    return {r["model"]: r for r in json.loads(path.read_text())["rows"]}


def cell(values: list) -> str:
    if not values:
        return "–"
    m = statistics.mean(values)
    if len(values) == 1:
        return f"{100 * m:.2f}"
    return f"{100 * m:.2f} ± {100 * statistics.stdev(values):.2f}"


def table(out: Path, prefix: str = "seed") -> None:
    seeds = sorted(p for p in out.glob(f"{prefix}*") if p.name[len(prefix):].isdigit())
    acc: dict = {}
    params: dict = {}
    order = []

    def add(key, row):
        if key not in acc:
            order.append(key)
        acc.setdefault(key, []).append(row["top1"])
        params[key] = row["params"]

    for s in seeds:
        first = True
        for m in METHODS:
            f = s / f"kd-{m}.json"
            if not f.exists():
                continue
            r = rows(f)
            if first:  # teacher and student alone once per seed (every run reuses them)
                first = False
                add("teacher (ResNet-8)", next(v for k, v in r.items() if "teacher" in k))
                alone = (v for k, v in r.items() if k.endswith(" f32") and "KD" not in k and "teacher" not in k)
                add("student alone", next(alone))
            kd = next(v for k, v in r.items() if "+ KD" in k)
            add(f"student + {m}" if m != "combined" else "student + Hinton + activation boundary (combined)", kd)
    print(f"| model | params | top-1 % (10k test images; mean ± std over seeds) | seeds | vs student alone |")
    print("|---|---:|---:|---:|---:|")
    base = statistics.mean(acc["student alone"]) if "student alone" in acc else None
    for k in order:
        delta = "" if base is None or k.startswith("teacher") or k == "student alone" else f"{100 * (statistics.mean(acc[k]) - base):+.2f}"
        print(f"| {k} | {params[k]:,} | {cell(acc[k])} | {len(acc[k])} | {delta} |")


if __name__ == "__main__":
    if sys.argv[1] == "variant":
        sys.stdout.write(variant(int(sys.argv[2]), sys.argv[3], *sys.argv[4:5]))
    elif sys.argv[1] == "table":
        table(Path(sys.argv[2]), *sys.argv[3:4])
    elif sys.argv[1] == "methods":
        print(" ".join(DEFAULT_METHODS))
