"""The scikit-learn clustering models: k-means, mini-batch k-means, DBSCAN, agglomerative, Gaussian mixture.

Every one can place new rows: DBSCAN and agglomerative clustering have no ``predict`` in scikit-learn, so
they get one here (nearest core sample within ``eps``, and nearest cluster centroid).
"""

from __future__ import annotations

import math
from typing import Any

from microlearn_grpc.core.estimators._base import CLUSTERING, register_estimator
from microlearn_grpc.core.estimators._search_space import HyperparameterError, ParameterCondition, ParameterSpec
from microlearn_grpc.core.estimators.sklearn_models import SklearnEstimator, _cat, _float, _int, _space

__all__: list[str] = []  # the classes are reached through the registry

_TASKS = frozenset({CLUSTERING})
_DEFAULT_CLUSTERS = 8  # scikit-learn's k-means default; a study searches the count against a cluster metric


def _n_clusters(name: str, n_rows: int | None) -> ParameterSpec:
    high = 50 if n_rows is None else min(50, n_rows - 1)
    return _int(name, 2, high, _DEFAULT_CLUSTERS, "Number of clusters.")


class _Clustering(SklearnEstimator):
    family = "clustering"
    tasks = _TASKS
    needs_scaling = True  # every one of them measures Euclidean-like distances
    count_param = "n_clusters"

    def _check_data(self, params, n_rows, n_features):
        wanted = params.get(self.count_param)
        if wanted is not None and wanted > n_rows:
            raise HyperparameterError(f"{self.name}: {self.count_param}={wanted} exceeds the {n_rows} rows",
                                      parameter=self.count_param)


@register_estimator
class KMeansEstimator(_Clustering):
    name = "kmeans"
    display_name = "k-means"
    description = "Partitions rows into k compact, similar-sized spherical clusters; fast and predictable."
    model_class = "sklearn.cluster.KMeans"
    relative_cost = 0.5

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(
            _n_clusters("n_clusters", n_rows),
            _cat("init", ("k-means++", "random"), "k-means++", "How the first centroids are chosen."),
            _int("n_init", 1, 10, 3, "Restarts from different centroids; the best is kept."))


@register_estimator
class MiniBatchKMeansEstimator(_Clustering):
    name = "minibatch_kmeans"
    display_name = "Mini-batch k-means"
    description = "k-means on random mini-batches; nearly as good as k-means and far faster on large tables."
    model_class = "sklearn.cluster.MiniBatchKMeans"
    relative_cost = 0.2

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(
            _n_clusters("n_clusters", n_rows),
            _int("batch_size", 256, 8192, 1024, "Rows per mini-batch.", log=True),
            _int("n_init", 1, 10, 3, "Restarts from different centroids; the best is kept."))


@register_estimator
class DBSCANEstimator(_Clustering):
    """``predict`` gives a new row the cluster of its nearest core sample when that lies within ``eps``
    (the rule DBSCAN itself uses to attach border points) and -1 (noise) otherwise."""

    name = "dbscan"
    display_name = "DBSCAN"
    description = ("Density-based clusters of any shape, with outliers labelled -1; finds the number of "
                   "clusters itself but is sensitive to eps.")
    model_class = "sklearn.cluster.DBSCAN"
    relative_cost = 10.0
    max_rows = 100_000  # neighbourhood lists grow quadratically in dense data
    count_param = ""

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        # Distances between standardized rows grow like the square root of the number of features.
        eps = 0.5 * math.sqrt(n_features) if n_features else 0.5
        samples_high = 100 if n_rows is None else min(100, n_rows // 10)
        return _space(
            _float("eps", 0.01, 100.0, eps, "Neighbourhood radius.", log=True),
            _int("min_samples", 2, samples_high, 5, "Rows within eps that make a core sample.", log=True),
            _cat("metric", ("euclidean", "manhattan"), "euclidean", "Distance between rows."))

    def _fit(self, params, X, y, X_val, y_val, progress, early_stopping):
        from sklearn.neighbors import NearestNeighbors

        model = super()._fit(params, X, y, X_val, y_val, progress, early_stopping)
        self._core_labels = model.labels_[model.core_sample_indices_]
        self._core_index = (NearestNeighbors(n_neighbors=1, metric=model.metric).fit(model.components_)
                            if len(model.components_) else None)
        return model

    def predict(self, X: Any) -> Any:
        import numpy as np

        model = self._fitted()
        X = np.asarray(X, dtype=float)
        if self._core_index is None:  # every training row was noise
            return np.full(len(X), -1, dtype=model.labels_.dtype)
        distance, nearest = self._core_index.kneighbors(X)
        return np.where(distance[:, 0] <= model.eps, self._core_labels[nearest[:, 0]], -1)


@register_estimator
class AgglomerativeEstimator(_Clustering):
    """``predict`` assigns a new row to the nearest training-cluster centroid (Euclidean), since the merge
    tree cannot take new rows; for ward linkage that is the cluster whose variance grows least."""

    name = "agglomerative"
    display_name = "Agglomerative clustering"
    description = ("Bottom-up hierarchical clustering; finds non-spherical clusters with single or average "
                   "linkage, quadratic in rows.")
    model_class = "sklearn.cluster.AgglomerativeClustering"
    relative_cost = 50.0
    max_rows = 20_000  # the pairwise distance matrix

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(
            _n_clusters("n_clusters", n_rows),
            _cat("linkage", ("ward", "complete", "average", "single"), "ward",
                 "Which distance between clusters decides the next merge."),
            _cat("metric", ("euclidean", "manhattan", "cosine"), "euclidean",
                 "Distance between rows (ward needs Euclidean).",
                 condition=ParameterCondition("linkage", ("complete", "average", "single"))))

    def _fit(self, params, X, y, X_val, y_val, progress, early_stopping):
        import numpy as np

        model = super()._fit(params, X, y, X_val, y_val, progress, early_stopping)
        rows = np.asarray(X, dtype=float)
        self._clusters = np.unique(self._labels)
        self._centroids = np.stack([rows[self._labels == c].mean(axis=0) for c in self._clusters])
        return model

    def predict(self, X: Any) -> Any:
        import numpy as np

        self._fitted()
        rows = np.asarray(X, dtype=float)
        # |x - c|^2 less the per-row constant |x|^2, as a rows x clusters matrix (no rows x clusters x features).
        distance = (self._centroids ** 2).sum(axis=1)[None, :] - 2.0 * rows @ self._centroids.T
        return self._clusters[distance.argmin(axis=1)]


@register_estimator
class GaussianMixtureEstimator(_Clustering):
    name = "gaussian_mixture"
    display_name = "Gaussian mixture"
    description = "Mixture of normal distributions fit by EM; elliptical clusters of different sizes and shapes."
    model_class = "sklearn.mixture.GaussianMixture"
    relative_cost = 5.0
    count_param = "n_components"

    @classmethod
    def search_space(cls, task, n_rows=None, n_features=None):
        cls.check_task(task)
        return _space(
            _n_clusters("n_components", n_rows),
            _cat("covariance_type", ("full", "tied", "diag", "spherical"), "full", "Shape of each component."),
            _float("reg_covar", 1e-6, 1e-1, 1e-6, "Added to covariance diagonals for stability.", log=True),
            _int("n_init", 1, 5, 1, "EM restarts; the best is kept."))
