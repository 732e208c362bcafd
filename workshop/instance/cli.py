"""The instance track's side of the ``workshop`` command (``train``, ``evaluate``, ``predict``).

``workshop.cli`` hands a command over here when the config asks for ``data.task: instance`` (or has a
``stages:`` plan), or when the run it names is an instance run.

Taught in: notebooks/10_instance.ipynb
"""

from __future__ import annotations

import argparse

from workshop.instance.runs import is_instance_config, is_instance_run

__all__ = ["evaluate_command", "is_instance_run", "predict_command", "train_command", "wants_instance"]


def wants_instance(args: argparse.Namespace) -> bool:
    """True when ``workshop train`` should train Mask R-CNN (the config, or the run to resume, is an instance one)."""
    if args.resume:
        return is_instance_run(args.resume)
    return is_instance_config(args.config, list(args.overrides))


def train_command(args: argparse.Namespace) -> int:
    from workshop.instance.runs import load_instance_config, summarize_instance, train_instance

    if args.resume:
        summary = train_instance(None, None, None, resume=args.resume, max_minutes=args.max_minutes)
    else:
        cfg, icfg, stages = load_instance_config(args.config, profile=args.profile, overrides=list(args.overrides))
        summary = train_instance(cfg, icfg, stages, run_dir=args.run_dir, max_minutes=args.max_minutes)
    print(summarize_instance(summary))
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    from workshop.instance.evaluate import evaluate_instance_run, format_instance_result

    print(format_instance_result(evaluate_instance_run(args.run, args.data, split=args.split, out=args.out)))
    return 0


def predict_command(args: argparse.Namespace) -> int:
    from workshop.instance.predict import predict_instances

    written = predict_instances(args.checkpoint, args.input, args.out, threshold=args.threshold, alpha=args.alpha)
    for w in written:
        shown = ", ".join(f"{n} {s:.2f}" for n, s in zip(w["labels"], w["scores"])) or "none"
        print(f"{w['image']} -> {w['overlay']}, {w['ids']}: {w['objects']} object(s) ({shown})")
    print(f"{len(written)} image(s) predicted into {args.out} (COCO results: {args.out}/coco_results.json, "
          f"images: {args.out}/coco_images.json)")
    return 0
