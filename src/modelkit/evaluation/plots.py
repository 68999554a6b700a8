"""Report figures as PNG bytes (matplotlib, drawn by scikit-learn's display classes)."""

from __future__ import annotations

import io
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # reports are written on headless machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
)

DPI = 80


def figure_png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def mark_undefined(ax, title: str, why: str) -> None:
    ax.set_title(title)
    ax.text(0.5, 0.5, f"undefined\n({why})", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def category_figure(category: str, truth: np.ndarray, scores: np.ndarray, threshold: float, section: dict[str, Any]) -> bytes:
    """One row of panels: PR curve, ROC curve, score histograms, reliability, confusion."""
    figure, axes = plt.subplots(1, 5, figsize=(22, 4.2))
    pr_ax, roc_ax, hist_ax, rel_ax, cm_ax = axes
    has_both = truth.any() and not truth.all()

    if truth.any():
        PrecisionRecallDisplay.from_predictions(truth, scores, ax=pr_ax, name=category, plot_chance_level=True)
        for name, point in section["operating_points"].items():
            if point is not None:
                pr_ax.plot(point["recall"], point["precision"], "o", label=f"{name} (t={point['threshold']:.2f})")
        pr_ax.legend(fontsize=7, loc="lower left")
        pr_ax.set_title("precision-recall")
    else:
        mark_undefined(pr_ax, "precision-recall", "no positives")
    if has_both:
        RocCurveDisplay.from_predictions(truth, scores, ax=roc_ax, name=category, plot_chance_level=True)
        roc_ax.set_title("ROC")
    else:
        mark_undefined(roc_ax, "ROC", "labels are all one class")

    bins = np.linspace(0.0, 1.0, 41)
    hist_ax.hist(scores[~truth], bins=bins, alpha=0.6, label=f"negative ({int((~truth).sum())})", color="tab:blue")
    hist_ax.hist(scores[truth], bins=bins, alpha=0.6, label=f"positive ({int(truth.sum())})", color="tab:red")
    hist_ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.2f}")
    hist_ax.set_yscale("log")
    hist_ax.set_xlabel("score")
    hist_ax.set_ylabel("rows (log)")
    hist_ax.set_title("scores by true label")
    hist_ax.legend(fontsize=7)

    table = section["calibration"]["bins"]
    rel_ax.plot([0, 1], [0, 1], linestyle=":", color="gray", label="perfectly calibrated")
    rel_ax.plot([b["mean_score"] for b in table], [b["fraction_positive"] for b in table], "s-", label=category)
    rel_ax.set_xlim(0, 1)
    rel_ax.set_ylim(0, 1)
    rel_ax.set_xlabel("mean score in bin")
    rel_ax.set_ylabel("fraction positive")
    rel_ax.set_title(f"reliability (ECE {section['calibration']['ece']:.3f})")
    rel_ax.legend(fontsize=7, loc="upper left")

    ConfusionMatrixDisplay.from_predictions(
        truth, scores >= threshold, labels=[False, True], display_labels=["no", "yes"], ax=cm_ax, colorbar=False
    )
    cm_ax.set_xlabel("predicted")
    cm_ax.set_ylabel("true")
    cm_ax.set_title(f"confusion at {threshold:.2f}")
    figure.suptitle(category, y=1.04, fontsize=14)
    return figure_png(figure)


def class_confusion_figure(labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> bytes:
    """Full class confusion matrix for data sets whose labels are mutually exclusive."""
    size = max(4.0, 0.7 * len(labels) + 2)
    figure, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay(np.asarray(matrix), display_labels=list(labels)).plot(ax=ax, colorbar=False, xticks_rotation=45)
    ax.set_title("one class per row (highest-scoring flagged category, or none)")
    return figure_png(figure)
