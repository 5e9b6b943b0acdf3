"""cl-domains: contrastive representation learning for sentences, time series, heterogeneous
graphs, sequential recommendation, spoken language understanding and regression."""

__version__ = "0.1.0"
