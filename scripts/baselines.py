"""The scikit-learn reference every text figure is set against (shared/data/README.md): character
1-3-gram TF-IDF (min_df=2, sublinear tf) + logistic regression (C=4), on raw texts.

It follows a recipe's decision rule, so that the comparison is about the model, not the rule:
``exclusive`` recipes get one multinomial regression over the categories and 'none' (decision:
the argmax), ``bce`` recipes one binary regression per category (thresholds 0.5, or fitted on the
dev split when the recipe tunes them). Scores follow modelkit's convention: for an exclusive
model, category c's score is P(c) / (P(c) + P(none)), so 0.5 marks the argmax.
"""

from __future__ import annotations

import numpy as np


class TfidfLogisticRegression:
    def __init__(self, exclusive: bool, C: float = 4.0) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.exclusive = exclusive
        self.C = C
        self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), min_df=2, sublinear_tf=True)

    def fit(self, texts: list[str], labels: np.ndarray) -> "TfidfLogisticRegression":
        from sklearn.linear_model import LogisticRegression

        features = self.vectorizer.fit_transform(texts)
        labels = np.asarray(labels) >= 0.5
        self.n_categories = labels.shape[1]
        if self.exclusive:
            classes = np.where(labels.any(axis=1), labels.argmax(axis=1), self.n_categories)
            self.model = LogisticRegression(C=self.C, max_iter=2000).fit(features, classes)
        else:
            # A category without both classes in training gets a constant score.
            self.models = [LogisticRegression(C=self.C, max_iter=2000).fit(features, column)
                           if 0 < column.sum() < len(column) else float(column.mean())
                           for column in labels.T]
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        features = self.vectorizer.transform(texts)
        if not self.exclusive:
            return np.stack([m.predict_proba(features)[:, 1] if not isinstance(m, float) else np.full(len(texts), m)
                             for m in self.models], axis=1)
        probabilities = np.zeros((len(texts), self.n_categories + 1))
        probabilities[:, self.model.classes_] = self.model.predict_proba(features)
        none = probabilities[:, -1:]
        return probabilities[:, :-1] / np.maximum(probabilities[:, :-1] + none, 1e-12)
