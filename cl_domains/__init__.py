"""cl-domains: contrastive representation learning for sentences, time series, heterogeneous
graphs, sequential recommendation, spoken language understanding and regression."""

from ._version import __version__

__all__ = ["__version__", "load"]


def load(directory):
    """A saved model of any domain (a folder written by ``est.save(dir)`` or a run's ``model/``), as the estimator
    its ``cl_domains.json`` names: ``cl_domains.load(dir).embed(x)``. See :mod:`cl_domains.core.estimator`."""
    from .core.estimator import load as _load

    return _load(directory)
