"""Statistics of tables that more than one layer needs: column kinds and drift.

Pure numpy/pandas, no display: ``nbops.compare`` (widgets) draws them and
``nbops.models.drift`` (services) reports them on served inputs, from one
implementation. Importable from any layer (tests/test_layers.py ANYWHERE).
"""
