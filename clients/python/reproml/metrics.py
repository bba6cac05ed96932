"""Accuracy and macro precision/recall/F1 from a confusion matrix
(docs/protocol.md section 6), computed operation for operation as the
server does: the server derives the stored metrics from the matrix a
result carries, and this client's claimed metrics then equal them to the
last bit rather than to the last-but-one (numpy's pairwise sums would not).
"""

from __future__ import annotations

from typing import Dict, List, Sequence


def confusion_matrix(truth: Sequence[int], predicted: Sequence[int], classes: int) -> List[List[int]]:
    """Rows are true classes, columns predicted classes."""
    matrix = [[0] * classes for _ in range(classes)]
    for t, p in zip(truth, predicted):
        matrix[int(t)][int(p)] += 1
    return matrix


def metrics_of(matrix: List[List[int]]) -> Dict[str, float]:
    """scikit-learn's definitions (average="macro", zero_division=0), summed
    left to right in class order like the Rust implementation."""
    classes = len(matrix)
    total = sum(sum(row) for row in matrix)
    if total == 0:
        raise ValueError("the confusion matrix is empty: metrics need at least one example")
    correct = 0
    present = []
    for k in range(classes):
        tp = matrix[k][k]
        predicted = sum(matrix[t][k] for t in range(classes))
        support = sum(matrix[k])
        correct += tp
        # int / int is correctly rounded, like Rust's `a as f64 / b as f64`
        # for counts below 2^53.
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 0.0 if precision + recall == 0.0 else 2.0 * precision * recall / (precision + recall)
        if predicted + support > 0:
            present.append((precision, recall, f1))

    def mean(i: int) -> float:
        # A plain loop: Python 3.12's sum() of floats compensates rounding,
        # which the Rust side does not.
        s = 0.0
        for scores in present:
            s += scores[i]
        return s / len(present)

    return {"accuracy": correct / total, "precision": mean(0), "recall": mean(1), "f1": mean(2)}
