"""Helper of bench/fashion_fm.sh: the recipe variants of recipes/fashion-mnist-resnet20.toml
(ResNet-20 teacher, as in the recipe or trained longer with random crops and flips; two
small-CNN students; distillation with and without function matching, 15, 30 and 60 student
epochs) and the README table from the runs' report.json files."""
import json
import re
import sys
from pathlib import Path

BASE = Path(__file__).resolve().parent.parent / "recipes" / "fashion-mnist-resnet20.toml"

# Students (their recipe `arch`): the recipe's (its int8 file under a twentieth of the
# teacher's float file) and two with under a tenth of the teacher's parameters: a small CNN
# (most of its weights in the classifier) and a narrow ResNet-8 of the teacher's own family
# (batch norm, residual blocks, global pooling; 24,967 parameters).
STUDENTS = {
    "cnn47k": '{ family = "small-cnn", c1 = 32, c2 = 60 }',
    "cnn25k": '{ family = "small-cnn", c1 = 32, c2 = 32 }',
    "resnet8w9": '{ family = "resnet", depth = 8, width = 9 }',
}

# Teachers: the recipe's (10 epochs, no augmentation) and a stronger one from the same recipe,
# trained twice as long on random 2-pixel crops and horizontal flips (the students keep the
# recipe's plain images). Key -> (README label, epochs, lines added to its [[teacher]] table).
TEACHERS = {
    "": ("ResNet-20 (teacher)", 10, ""),
    "t20aug": ("ResNet-20 (teacher, crops + flips)", 20,
               "epochs = 20\naugment_shift = 2\naugment_flip = true\n"),
}

HINTON_T1 = 'ce_weight = 0.0\n\n[[distill.loss]]\nkind = "hinton"\nweight = 1.0\ntemperature = 1.0\n'
# variant -> (command, student epochs, [student] mixup, [distill] body or None for no KD row)
VARIANTS = {
    # The student alone with mixup on its own hard labels: is the gain mixup's regularisation?
    "alone-mixup": ("train", 15, 1.0, None),
    # The same soft-target loss on the plain training images (the teacher near one-hot there).
    "kd-plain": ("distill", 15, None, HINTON_T1),
    # Function matching: the teacher labels the very mixup blend the student sees.
    "fm": ("distill", 15, None, "mixup = 1.0\n" + HINTON_T1),
    # Patient: twice the epochs, with the student alone trained as long; plain soft targets as
    # long, to compare.
    "kd-plain-e30": ("distill", 30, None, HINTON_T1),
    "fm-e30": ("distill", 30, None, "mixup = 1.0\n" + HINTON_T1),
    # Function matching keeps improving with epochs (Beyer et al.: the longer the better).
    "fm-e60": ("distill", 60, None, "mixup = 1.0\n" + HINTON_T1),
    # Function matching from the stronger teacher.
    "fm-e30-t20aug": ("distill", 30, None, "mixup = 1.0\n" + HINTON_T1),
    # Function matching as Beyer et al. define it: the student sees random crops and flips of
    # the blends too, and the recipe's teacher labels exactly what the student sees.
    "fm-e30-aug": ("distill", 30, None, "mixup = 1.0\n" + HINTON_T1),
    # The student alone on random crops and flips, 30 epochs (its best setting alone).
    "alone-e30-aug": ("train", 30, None, None),
}

# Variants whose student (alone and distilled) trains on augmented images: lines added to its
# [student] table, and the label its runs get in the table.
CROPS_FLIPS = ("augment_shift = 2\naugment_flip = true\n", "crops + flips")
STUDENT_AUG = {"fm-e30-aug": CROPS_FLIPS, "alone-e30-aug": CROPS_FLIPS}


def teacher_key(name: str) -> str:
    """The TEACHERS key a variant distils from (its name's suffix)."""
    return next((k for k in TEACHERS if k and name.endswith("-" + k)), "")


def variant(student: str, name: str) -> str:
    _, epochs, mixup, body = VARIANTS[name]
    src = BASE.read_text()
    extra = TEACHERS[teacher_key(name)][2]
    if extra:
        arch = 'arch = { family = "resnet", depth = 20, width = 16 }\n'
        src = src.replace(arch, arch + extra, 1)
    src = re.sub(r'arch = \{ family = "small-cnn", c1 = \d+, c2 = \d+ \}',
                 f"arch = {STUDENTS[student]}", src, count=1)
    head, rest = src.split("[student]\n", 1)
    rest = re.sub(r"(?m)^epochs = \d+.*$", f"epochs = {epochs}", rest, count=1)
    if mixup is not None:
        rest = rest.replace(f"epochs = {epochs}", f"epochs = {epochs}\nmixup = {mixup}", 1)
    if name in STUDENT_AUG:
        rest = rest.replace(f"epochs = {epochs}", f"epochs = {epochs}\n{STUDENT_AUG[name][0]}", 1)
    # Distillation only: the pruning and quantization tables are the recipe's own run.
    for sec in ("\n[prune]", "\n[quantize]"):
        if sec in rest:
            rest = rest[: rest.index(sec)] + "\n"
    head2, dist = rest.split("[distill]\n", 1)
    rest = head2 + ("[distill]\n" + body if body else "")
    return f"{head}[student]\n{rest}"


def rows(path: Path) -> dict:
    return {r["model"]: r for r in json.loads(path.read_text())["rows"]}


def table(out: Path) -> None:
    print("| student | params | run | epochs | top-1 % | vs student alone, 15 epochs | vs student alone, same epochs | agreement with the teacher |")
    print("|---|---:|---|---:|---:|---:|---:|---:|")
    # One row per teacher first, from the first run that distils from it.
    teachers_done = set()
    for student in STUDENTS:
        for name in VARIANTS:
            f = out / f"{student}-{name}" / "report.json"
            tkey = teacher_key(name)
            if f.exists() and tkey not in teachers_done:
                t = next(v for k, v in rows(f).items() if "teacher" in k)
                tlabel, tepochs, _ = TEACHERS[tkey]
                print(f"| {tlabel} | {t['params']:,} | trained alone | {tepochs} | {100 * t['top1']:.2f} | | | |")
                teachers_done.add(tkey)
    for student in STUDENTS:
        base = None
        lines = []
        for name, (_, epochs, mixup, body) in VARIANTS.items():
            f = out / f"{student}-{name}" / "report.json"
            if not f.exists():
                continue
            r = rows(f)
            alone = r["student f32"]
            aug = STUDENT_AUG.get(name, ("", ""))[1]
            alone_label = "alone" + (f", {aug}" if aug else "")
            if epochs == 15 and mixup is None and not aug and base is None:
                base = alone["top1"]
                lines.insert(0, ("alone", 15, alone))
            if mixup is not None:
                lines.append(("alone, mixup on its own labels", epochs, alone))
            elif (epochs != 15 or aug) and not any(l == alone_label and e == epochs for l, e, _ in lines):
                lines.append((alone_label, epochs, alone))
            if body is not None:
                label = {"kd-plain": "KD, soft targets at T = 1, plain images",
                         "kd-plain-e30": "KD, soft targets at T = 1, plain images",
                         "fm": "KD by function matching (mixup, T = 1)",
                         "fm-e30": "KD by function matching (mixup, T = 1)",
                         "fm-e60": "KD by function matching (mixup, T = 1)",
                         "fm-e30-t20aug": "KD by function matching from the crops + flips teacher",
                         "fm-e30-aug": "KD by function matching (mixup, T = 1), crops + flips"}[name]
                lines.append((label, epochs, r["student + KD f32"]))
        # The student alone at each schedule and augmentation (mixup on its own labels is a
        # variant, not the base); a run compares with the alone run of its own settings.
        def setting(label):
            return next((a for _, a in STUDENT_AUG.values() if label.endswith(a)), "")
        alone_at = {(e, setting(label)): row["top1"] for label, e, row in lines if label.startswith("alone") and "mixup" not in label}
        for label, epochs, row in lines:
            is_alone = label.startswith("alone") and "mixup" not in label
            delta = "" if base is None or label == "alone" and epochs == 15 else f"{100 * (row['top1'] - base):+.2f}"
            same = alone_at.get((epochs, setting(label)))
            same = "" if same is None or is_alone else f"{100 * (row['top1'] - same):+.2f}"
            agree = row.get("teacher_agreement")
            agree = f"{100 * agree:.2f}%" if agree is not None else ""
            print(f"| {student} | {row['params']:,} | {label} | {epochs} | {100 * row['top1']:.2f} | {delta} | {same} | {agree} |")

if __name__ == "__main__":
    if sys.argv[1] == "variant":
        sys.stdout.write(variant(sys.argv[2], sys.argv[3]))
    elif sys.argv[1] == "teacher":
        print(teacher_key(sys.argv[2]))
    elif sys.argv[1] == "command":
        print(VARIANTS[sys.argv[2]][0])
    elif sys.argv[1] == "table":
        table(Path(sys.argv[2]))
    elif sys.argv[1] == "same-alone":
        # Runs whose student alone is trained with the same settings (their checkpoint is reused).
        student, name = sys.argv[2], sys.argv[3]
        def key(v):
            return VARIANTS[v][1:3] + (STUDENT_AUG.get(v, ("",))[0],)
        same = [f"{sys.argv[4]}/{student}-{v}" for v in VARIANTS if key(v) == key(name) and v != name]
        if student == "cnn47k" and key(name) == (15, None, ""):
            same.insert(0, "out/fashion-r20")
        print(" ".join(same))
    elif sys.argv[1] == "list":
        print(" ".join(f"{s}:{v}" for s in STUDENTS for v in VARIANTS))
