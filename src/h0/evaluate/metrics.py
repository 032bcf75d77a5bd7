"""Anomaly-detection metrics (public API); definitions in :mod:`h0.evaluate._metrics`."""

from h0.evaluate._metrics import (
    RangePRF,
    auc_pr,
    auc_roc,
    point_f1,
    range_auc_pr,
    range_auc_roc,
    range_precision_recall_f1,
    ranges,
    soft_labels,
    vus_pr,
    vus_roc,
)

__all__ = [
    "RangePRF",
    "auc_pr",
    "auc_roc",
    "point_f1",
    "range_auc_pr",
    "range_auc_roc",
    "range_precision_recall_f1",
    "ranges",
    "soft_labels",
    "vus_pr",
    "vus_roc",
]
