"""Bias audit: where a model looks, per class and per subgroup, over a whole dataset.

An audit is described by :class:`engine.audit.settings.AuditRequest` and run by
:func:`engine.audit.job.run_audit_job`, which every caller (command line, GUI, ``engine.api``)
uses: :mod:`~engine.audit.manifest` reads the dataset, :mod:`~engine.audit.runner` (or
:mod:`~engine.audit.ray_engine`) explains every image in batches and streams the results to
disk, and :mod:`~engine.audit.outputs` merges them into audit.json, audit.csv, mean heatmaps
and report.pdf. :mod:`~engine.audit.compare` compares audits of several models.

The package imports nothing itself, so reading the settings does not load torch.
"""
