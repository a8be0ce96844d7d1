"""Notebook files and the tag vocabulary."""

from nbops.notebook.reader import Cell, Notebook, first_line, notebook_from_dict, read_notebook
from nbops.notebook.tags import STAGE_NAME_RE, CellTags, TagError, parse_stage_magic, read_cell_tags

__all__ = [
    "Cell",
    "CellTags",
    "Notebook",
    "STAGE_NAME_RE",
    "TagError",
    "first_line",
    "notebook_from_dict",
    "parse_stage_magic",
    "read_cell_tags",
    "read_notebook",
]
