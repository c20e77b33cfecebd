"""The study report: figures, tables and generated findings."""
