"""Epoch-wise ML training (ETL, per-epoch augmentation, warm-started model) as a workflow.

    spark-submit jobs/ml_training.py --workflow-id churn-2026-11-24 --storage s3a://lake/exo
    python jobs/ml_training.py --workflow-id demo --epochs 6 --checkpoint selective

The ML pipeline of the ExoFlow paper on Spark. ETL joins generated users and events and
aggregates them into one labelled row per user. Every epoch then augments the features (a
deterministic per-epoch noise derived from a hash of the user, the epoch and the seed, plus
a feature cross) and trains a logistic regression (pyspark.ml ``GeneralizedLinearRegression``,
binomial family, logit link) warm-started from the previous epoch's model: the previous
model's margin enters as an offset, a few IRLS steps fit a correction, and the epoch's model
is the sum. Each epoch's model is a one-row DataFrame (intercept and coefficients); the
workflow's output is the final model and its accuracy as a small JSON value.

``--checkpoint`` picks how recovery is made possible:

* ``none``: nothing is durable but the output; a crash re-runs everything;
* ``sync`` / ``async``: the ETL output, every augmentation and every model are
  checkpointed that way (the generated sources are cheap and never are);
* ``selective``: the ETL output is checkpointed asynchronously, augmentation is never
  checkpointed (cheap to replay), and the model is checkpointed synchronously every
  ``--checkpoint-every`` epochs (and at the last one). A crash resumes from the latest
  committed model: earlier epochs are not needed and do not run again.

The final model does not depend on the mode (up to floating-point summation order).
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

import exoflow_spark as xf
from exoflow_spark.surface.entry import job_arg_parser, start

logger = logging.getLogger("jobs.ml_training")

MODES = ("none", "async", "sync", "selective")
BASE_FEATURES = ["f_spend", "f_events", "f_click_rate", "f_age", "f_region"]
#: the augmented feature vector: noisy base features plus one cross
FEATURES = [*BASE_FEATURES, "x_spend_click"]
NOISE = 0.05


def _unit_hash(*cols: Any) -> Any:
    """A deterministic number in [0, 1) from the hash of ``cols`` (independent of partitioning,
    unlike ``rand(seed)``, so a replayed or restored input gives the same rows)."""
    return F.pmod(F.xxhash64(*cols), F.lit(1_000_003)) / F.lit(1_000_003.0)


# -- ETL -----------------------------------------------------------------------------------
@xf.task
def users(n_users: int) -> DataFrame:
    """Generated users: region and age (deterministic)."""
    return (
        xf.get_spark()
        .range(n_users)
        .select(
            F.col("id").alias("user_id"),
            (F.col("id") * 31 % 5).alias("region"),
            (18 + F.col("id") * 7919 % 60).alias("age"),
        )
    )


@xf.task
def events(n_events: int, n_users: int) -> DataFrame:
    """Generated events: a user, a kind (view/click/buy) and an amount (deterministic)."""
    kind = F.element_at(
        F.array(F.lit("view"), F.lit("view"), F.lit("click"), F.lit("buy")),
        (F.pmod(F.xxhash64("id"), F.lit(4)) + 1).cast("int"),
    )
    return (
        xf.get_spark()
        .range(n_events)
        .select(
            F.col("id").alias("event_id"),
            (F.pmod(F.xxhash64(F.col("id"), F.lit(17)), F.lit(n_users))).alias("user_id"),
            kind.alias("kind"),
            F.round(_unit_hash(F.col("id"), F.lit(3)) * 100.0, 2).alias("amount"),
        )
    )


@xf.task
def features(users_df: DataFrame, events_df: DataFrame) -> DataFrame:
    """Join events to users, aggregate per user and derive the label (ETL)."""
    per_user = events_df.groupBy("user_id").agg(
        F.count("*").alias("n_events"),
        F.sum(F.when(F.col("kind") == "buy", F.col("amount")).otherwise(0.0)).alias("spend"),
        F.avg((F.col("kind") == "click").cast("double")).alias("click_rate"),
    )
    joined = users_df.join(per_user, "user_id", "left").fillna(
        {"n_events": 0, "spend": 0.0, "click_rate": 0.0}
    )
    f = joined.select(
        "user_id",
        (F.log1p("spend") / 5.0).alias("f_spend"),
        (F.col("n_events") / 10.0).alias("f_events"),
        F.col("click_rate").alias("f_click_rate"),
        ((F.col("age") - 48) / 30.0).alias("f_age"),
        (F.col("region") / 4.0).alias("f_region"),
    )
    score = (
        1.5 * F.col("f_spend")
        + 2.0 * F.col("f_click_rate")
        - 1.2 * F.col("f_age")
        - 0.8 * F.col("f_region")
        + (_unit_hash("user_id", F.lit(99)) - 0.5) * 1.5
    )
    return f.withColumn("label", (score > 0.9).cast("double"))


# -- per epoch -----------------------------------------------------------------------------
@xf.task
def augment(feats: DataFrame, epoch: int, seed: int) -> DataFrame:
    """Add the epoch's noise to every base feature and a feature cross.

    Deterministic given ``(epoch, seed)``: the noise is a hash of the user, the epoch and the
    seed, so replaying this task (it is never checkpointed in ``selective`` mode) gives the
    same rows.
    """
    cols = [
        (
            F.col(c)
            + (_unit_hash("user_id", F.lit(epoch), F.lit(seed), F.lit(i)) - 0.5) * (2 * NOISE)
        ).alias(c)
        for i, c in enumerate(BASE_FEATURES)
    ]
    noisy = feats.select("user_id", "label", *cols)
    return noisy.withColumn("x_spend_click", F.col("f_spend") * F.col("f_click_rate"))


def margin(model: dict[str, Any]) -> Any:
    """The model's linear predictor as a Column over the :data:`FEATURES` columns."""
    expr = F.lit(float(model["intercept"]))
    for name, weight in zip(FEATURES, model["coefficients"], strict=True):
        expr = expr + F.lit(float(weight)) * F.col(name)
    return expr


def model_of(df: DataFrame | None) -> dict[str, Any]:
    """A model DataFrame (one row) as a dict; the zero model for ``None``."""
    if df is None:
        return {"epoch": 0, "intercept": 0.0, "coefficients": [0.0] * len(FEATURES)}
    row = df.first()
    assert row is not None
    return {
        "epoch": int(row["epoch"]),
        "intercept": float(row["intercept"]),
        "coefficients": [float(w) for w in row["coefficients"]],
    }


@xf.task
def train(data: DataFrame, previous: DataFrame | None, epoch: int, max_iter: int) -> DataFrame:
    """One epoch: IRLS steps of a logistic regression warm-started from ``previous``.

    The previous model's margin is the offset, so the fitted coefficients are a correction
    added to it. Returns the epoch's model as a one-row DataFrame.
    """
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.regression import GeneralizedLinearRegression

    prev = model_of(previous)
    assembled = VectorAssembler(inputCols=FEATURES, outputCol="features").transform(
        data.withColumn("offset", margin(prev))
    )
    glr = GeneralizedLinearRegression(
        family="binomial",
        link="logit",
        offsetCol="offset",
        maxIter=max_iter,
        regParam=0.001,
        tol=1e-9,
    )
    fit = glr.fit(assembled)
    deltas = [float(d) for d in fit.coefficients]
    coefficients = [p + d for p, d in zip(prev["coefficients"], deltas, strict=True)]
    intercept = prev["intercept"] + float(fit.intercept)
    logger.info("[epoch %d] model trained (intercept %.4f)", epoch, intercept)
    return xf.get_spark().createDataFrame(
        [(epoch, intercept, coefficients)],
        "epoch INT, intercept DOUBLE, coefficients ARRAY<DOUBLE>",
    )


@xf.task
def evaluate(feats: DataFrame, final: DataFrame) -> dict[str, Any]:
    """The final model and its accuracy on the clean (un-augmented) features."""
    model = model_of(final)
    clean = feats.withColumn("x_spend_click", F.col("f_spend") * F.col("f_click_rate"))
    scored = clean.select(
        ((margin(model) > 0).cast("double") == F.col("label")).cast("double").alias("hit")
    )
    row = scored.agg(F.avg("hit").alias("accuracy"), F.count("*").alias("n")).first()
    assert row is not None
    return {
        **model,
        "features": FEATURES,
        "accuracy": round(float(row["accuracy"]), 6),
        "rows": int(row["n"]),
    }


# -- the DAG -------------------------------------------------------------------------------
def checkpoint_modes(mode: str, epoch: int, epochs: int, every: int) -> dict[str, Any]:
    """The checkpoint option of the ETL, augmentation and training tasks of one epoch."""
    if mode not in MODES:
        raise xf.InvalidOptionError(f"--checkpoint {mode!r} is not one of {MODES}")
    if mode == "selective":
        k_th = epoch % every == 0 or epoch == epochs
        return {"etl": "async", "augment": False, "train": k_th}
    value: Any = {"none": False, "sync": True, "async": "async"}[mode]
    return {"etl": value, "augment": value, "train": value}


def build_dag(
    *,
    n_users: int,
    n_events: int,
    epochs: int,
    mode: str,
    every: int = 2,
    seed: int = 7,
    max_iter: int = 3,
) -> xf.Node:
    """ETL -> (augment -> train) x epochs -> evaluate, with the checkpoints of ``mode``."""
    if epochs < 1 or every < 1:
        raise xf.InvalidOptionError("--epochs and --checkpoint-every must be at least 1")
    etl = checkpoint_modes(mode, 1, epochs, every)["etl"]
    feats = features.options(checkpoint=etl).bind(
        users.bind(n_users), events.bind(n_events, n_users)
    )
    model: xf.Node | None = None
    for epoch in range(1, epochs + 1):
        ck = checkpoint_modes(mode, epoch, epochs, every)
        data = augment.options(name=f"augment_e{epoch}", checkpoint=ck["augment"]).bind(
            feats, epoch, seed
        )
        model = train.options(name=f"train_e{epoch}", checkpoint=ck["train"]).bind(
            data, model, epoch, max_iter
        )
    return evaluate.bind(feats, model)


def main(argv: Sequence[str] | None = None) -> int:
    parser = job_arg_parser(__doc__.splitlines()[0], default_workflow_id="ml-demo")
    parser.add_argument("--users", type=int, default=20_000, help="users to generate")
    parser.add_argument("--events", type=int, default=200_000, help="events to generate")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--checkpoint", choices=MODES, default="selective")
    parser.add_argument(
        "--checkpoint-every", type=int, default=2, help="model checkpoint interval (selective)"
    )
    parser.add_argument("--seed", type=int, default=7, help="augmentation seed")
    parser.add_argument("--max-iter", type=int, default=3, help="IRLS steps per epoch")
    args = parser.parse_args(argv)
    spark, _profile, storage = start(args, "exoflow-ml")
    dag = build_dag(
        n_users=args.users,
        n_events=args.events,
        epochs=args.epochs,
        mode=args.checkpoint,
        every=args.checkpoint_every,
        seed=args.seed,
        max_iter=args.max_iter,
    )
    try:
        result = xf.run(dag, workflow_id=args.workflow_id, storage=storage, spark=spark)
    except xf.ExoflowError as exc:
        logger.error("%s", exc)
        return 1
    status = xf.get_status(args.workflow_id, storage=storage).value
    print(json.dumps({"workflow_id": args.workflow_id, "status": status, **result}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
