"""CI/CD for a project: the workflows as ordered stages (stages.py), one generator per CI system
(github, azure, gitlab) and the writer that keeps regeneration byte-identical (generate.py)."""
