"""Notebook files, the tag vocabulary and the pipeline magic line."""

from nbops.notebook.magic_line import PIPELINE_MAGICS, MagicLine, cell_magic, pipeline_magic, strip_pipeline_magic
from nbops.notebook.reader import Cell, Notebook, first_line, notebook_from_dict, read_notebook
from nbops.notebook.tags import STAGE_NAME_RE, CellTags, TagError, TagNote, parse_stage_magic, read_cell_tags

__all__ = [
    "Cell",
    "CellTags",
    "MagicLine",
    "Notebook",
    "PIPELINE_MAGICS",
    "STAGE_NAME_RE",
    "TagError",
    "TagNote",
    "cell_magic",
    "first_line",
    "notebook_from_dict",
    "parse_stage_magic",
    "pipeline_magic",
    "read_cell_tags",
    "read_notebook",
    "strip_pipeline_magic",
]
