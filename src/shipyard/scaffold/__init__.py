"""New projects (`shipyard init`): the seed's files as templates (templates.py) and the writer that
renders them, with the generated CI files, and refuses to overwrite (writer.py). docs/init.md."""

from shipyard.scaffold.writer import InitResult, init_project, project_name, render_project

__all__ = ["InitResult", "init_project", "project_name", "render_project"]
