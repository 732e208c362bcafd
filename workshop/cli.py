"""The ``workshop`` command line.

    workshop quickstart [--profile cpu]            train on the embedded data, fill a run folder
    workshop train [--config FILE] [--set K=V]...  train from the profile's defaults, a YAML config and
                                                   overrides (or continue a run with --resume RUN)
    workshop predict RUN_OR_CHECKPOINT INPUT       masks and overlays for an image or a folder
    workshop evaluate RUN DATA [--split test]      IoU, Dice, precision, recall per class on labelled data
    workshop doctor                                versions, device, data dir, offline weights
    workshop data generate | list | check PATH     the embedded data set, the registry, a data scan
    workshop grade SUBMISSIONS... [--out DIR]      grade a class's notebooks (or --self NOTEBOOK)
    workshop torchrun [TORCHRUN OPTIONS] train ... torchrun -m workshop train ..., failures in one line

Under torchrun (``torchrun --nproc_per_node N -m workshop train --config FILE``) every process runs
this command line; rank 0 prints and writes for the run (see ``workshop.distributed``).

Errors a user can cause print one line (``error: ...``) and exit with status 2.

Taught in: notebooks/00_setup.ipynb (doctor) and notebooks/07_training.ipynb (train)
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from workshop import distributed
from workshop.errors import WorkshopError


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=("smoke", "cpu", "gpu"), help="size of the run (default: $WORKSHOP_PROFILE, else from the hardware)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a config key, e.g. --set train.lr=0.01")
    p.add_argument("--max-minutes", type=float, help="stop cleanly (finish the step, save) after this many minutes")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workshop", description="Hands-on image segmentation workshop.")
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="train on the embedded data set and write a run folder")
    _add_common(q)
    q.add_argument("--run-dir", help="folder to write (default: runs/quickstart-TIMESTAMP)")

    t = sub.add_parser("train", help="train from the profile's defaults, a YAML config and --set overrides, or resume a run")
    _add_common(t)
    t.add_argument("--config", help="YAML config file (default: none, the profile's defaults plus --set)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last checkpoint")
    t.add_argument("--run-dir", help="folder to write (default: runs/train-TIMESTAMP)")

    p = sub.add_parser("predict", help="predict masks for an image or a folder")
    p.add_argument("checkpoint", help="run folder (uses checkpoints/best.pt) or a .pt file")
    p.add_argument("input", help="image file or folder of images")
    p.add_argument("--out", default="predictions", help="output folder (default: predictions)")
    p.add_argument("--threshold", type=float, default=0.5)
    p.add_argument("--alpha", type=float, default=0.5, help="overlay opacity")

    e = sub.add_parser("evaluate", help="score a trained run on labelled data (IoU, Dice, precision, recall per class)")
    e.add_argument("run", help="run folder (uses checkpoints/best.pt) or a .pt file")
    e.add_argument("data", nargs="?", default=None,
                   help="a registered data set (camvid) or a folder, CSV, list file or annotation file "
                        "(default: the run's own validation split)")
    e.add_argument("--split", default=None, help="the data's split (test, val, all; default: test, else val, else all)")
    e.add_argument("--out", default=None, help="output folder (default: RUN/evaluate-DATA-SPLIT)")

    sub.add_parser("doctor", help="report versions, device, data dir and offline weights")
    sub.add_parser("torchrun", add_help=False, help="torchrun's options, then train/quickstart: several processes or "
                   "machines (torchrun -m workshop ...), launch failures in one line")

    d = sub.add_parser("data", help="the embedded data set, real data sets, data checks")
    dsub = d.add_subparsers(dest="data_command", required=True)
    g = dsub.add_parser("generate", help="generate (or reuse) the embedded data set")
    g.add_argument("--profile", choices=("smoke", "cpu", "gpu"))
    g.add_argument("--num-images", type=int)
    g.add_argument("--image-size", type=int)
    g.add_argument("--seed", type=int, default=0)
    dsub.add_parser("list", help="list the embedded and downloadable data sets")
    c = dsub.add_parser("check", help="scan a data folder and report every problem per file")
    c.add_argument("path", help="data folder (images/ + masks/, a CSV, or a file pair layout)")
    c.add_argument("--images-dir", default=None)
    c.add_argument("--masks-dir", default=None)
    c.add_argument("--task", choices=("binary", "multiclass"), default=None)
    c.add_argument("--label-map", default=None, help="JSON of class names, ids, colours (declares the valid ids)")
    c.add_argument("--ignore-index", type=int, default=255, help="mask value allowed besides the class ids (default 255)")
    c.add_argument("--label-attribute", default=None, help="annotation files: the region attribute holding the class (VIA)")
    c.add_argument("--keep-unannotated", action="store_true", help="annotation files: keep images listed without regions")
    dl = dsub.add_parser("download", help="download a registered data set (checked by sha256)")
    dl.add_argument("name")
    v = dsub.add_parser("verify", help="verify a downloaded data set")
    v.add_argument("name")

    from workshop.grading.cli import add_grade_parser

    add_grade_parser(sub)
    return parser


def _config_from_args(args: argparse.Namespace, path: str | None = None):
    from workshop.config import load_config

    overrides = list(args.overrides)
    if args.max_minutes is not None:
        overrides.append(f"train.max_minutes={args.max_minutes!r}")
    return load_config(path, profile=args.profile, overrides=overrides)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from workshop.runs import summarize, train_from_config

    cfg = _config_from_args(args)
    if distributed.is_main():
        print(f"workshop quickstart: profile {cfg.profile!r}, {cfg.train.epochs} epochs of "
              f"{cfg.model.arch}/{cfg.model.encoder} on the embedded data set")
    result = train_from_config(cfg, run_dir=args.run_dir, name="quickstart")
    if distributed.is_main():  # under torchrun rank 0 reports for every rank
        print(summarize(result))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from workshop.runs import summarize, train_from_config

    from workshop.instance import cli as instance_cli

    if instance_cli.wants_instance(args):  # data.task: instance (a stages: plan): Mask R-CNN
        return instance_cli.train_command(args)
    cfg = _config_from_args(args, args.config)
    result = train_from_config(cfg, run_dir=args.run_dir, resume=args.resume)
    if distributed.is_main():  # under torchrun rank 0 reports for every rank
        print(summarize(result))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from workshop.env import get_device
    from workshop.inference import load_trained_model, predict_paths

    from workshop.instance import cli as instance_cli

    if instance_cli.is_instance_run(args.checkpoint):  # Mask R-CNN: colours and scores per object, ids, COCO JSON
        return instance_cli.predict_command(args)
    device = get_device("auto")
    model, state = load_trained_model(args.checkpoint, device)
    size = state["config"]["data"]["image_size"]
    label_map = None
    if state["config"]["data"].get("task") == "multiclass":
        from workshop.config import load_config
        from workshop.evaluate import run_label_map

        label_map = run_label_map(load_config(overrides=state["config"], profile=state["config"].get("profile")), state["class_names"])
    written = predict_paths(model, args.input, args.out, size, device, args.threshold, args.alpha, label_map=label_map,
                            class_names=list(state["class_names"]))
    for w in written:
        shares = ", ".join(f"{name} {share:.1%}" for name, share in sorted(w["shares"].items(), key=lambda kv: -kv[1]))
        ids = f" (class ids: {w['ids']})" if "ids" in w else ""
        print(f"{w['image']} -> {w['mask']}{ids}, {w['overlay']}: {shares}")
    print(f"{len(written)} image(s) predicted into {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from workshop.evaluate import evaluate_run, format_result
    from workshop.instance import cli as instance_cli

    if instance_cli.is_instance_run(args.run):  # box and mask mAP
        return instance_cli.evaluate_command(args)
    print(format_result(evaluate_run(args.run, args.data, split=args.split, out=args.out)))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from workshop.env import doctor, format_doctor

    print(format_doctor(doctor()))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    from workshop.config import load_config

    if args.data_command == "generate":
        from workshop.data.synthetic import embedded_dir, ensure_dataset

        cfg = load_config(profile=args.profile)
        n = args.num_images or cfg.data.num_images
        size = args.image_size or cfg.data.image_size
        root = ensure_dataset(embedded_dir(n, size, args.seed), n, size, args.seed)
        print(f"embedded data set ({n} images, {size}px, seed {args.seed}): {root}")
        return 0
    if args.data_command == "list":
        from workshop.data.synthetic import default_data_dir

        base = default_data_dir()
        found = sorted(p.name for p in base.glob("embedded-*") if (p / "manifest.json").exists()) if base.exists() else []
        print(f"data dir: {base}")
        print("embedded (generated here): " + (", ".join(found) if found else "none yet (run: workshop data generate)"))
        try:
            from workshop.data import registry
        except ImportError:
            return 0
        for line in registry.describe_all():
            print(line)
        return 0
    if args.data_command == "check":
        from workshop.data.check import check_path

        report = check_path(args.path, images_dir=args.images_dir, masks_dir=args.masks_dir, task=args.task,
                            label_map=args.label_map, ignore_index=args.ignore_index,
                            label_attribute=args.label_attribute, keep_unannotated=args.keep_unannotated)
        lines = report.format().splitlines()
        extra: list[str] = []
        if report.ok:  # what the training recipe will see (workshop.recipe reads the same numbers)
            from workshop.fingerprint import describe_path

            text = describe_path(args.path, args.task, images_dir=args.images_dir, masks_dir=args.masks_dir,
                                 label_map=args.label_map, ignore_index=args.ignore_index,
                                 label_attribute=args.label_attribute, keep_unannotated=args.keep_unannotated)
            extra += text.splitlines() if text else []
        from workshop.instance.sizing import describe_objects  # data with instances: the object-size distribution

        objects = describe_objects(args.path, label_attribute=args.label_attribute, keep_unannotated=args.keep_unannotated)
        extra += objects.splitlines() if objects else []
        at = lines.index(report.summary())  # before the closing summary, the verdict and the train command
        lines[at:at] = extra
        print("\n".join(lines))
        return 0 if report.ok else 1
    from workshop.data import registry

    if args.data_command == "download":
        path = registry.download(args.name)
        print(f"{args.name}: ready in {path}")
        return 0
    if args.data_command == "verify":
        print(registry.verify(args.name))
        return 0
    return 2


def cmd_grade(args: argparse.Namespace) -> int:
    from workshop.grading.cli import cmd_grade as grade_command

    return grade_command(args)


COMMANDS = {
    "quickstart": cmd_quickstart,
    "train": cmd_train,
    "predict": cmd_predict,
    "evaluate": cmd_evaluate,
    "doctor": cmd_doctor,
    "data": cmd_data,
    "grade": cmd_grade,
}


def _printable(text: str) -> str:
    """``text`` with undecodable file-name bytes shown as ``\\xNN`` (they cannot be printed as they are)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``workshop`` console script (and of ``torchrun -m workshop``)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["torchrun"]:  # torchrun itself, with its launcher errors as one line
        from workshop.launch import torchrun

        return torchrun(argv[1:])
    args = build_parser().parse_args(argv)
    warnings.simplefilter("default")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="pycocotools")  # numpy 2 copy= notice, not ours
    try:
        code = COMMANDS[args.command](args)
        distributed.teardown()
        return code
    except (WorkshopError, FileNotFoundError, ValueError) as exc:
        distributed.record_error(exc)  # torchrun's report shows the message
        if distributed.is_main() or not isinstance(exc, distributed.PeerFailure):  # rank 0 speaks for a lost run
            # one write of the whole line: the ranks of a torchrun share stderr, and print() writes the
            # newline separately, so two ranks' messages could run into one line
            sys.stderr.write(f"error: {distributed.error_prefix()}{_printable(str(exc))}\n")
            sys.stderr.flush()
        distributed.release_signals()
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
