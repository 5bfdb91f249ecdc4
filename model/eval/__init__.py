"""MMEB-V2 evaluation: task catalogue and published tables (`published`), data readers
(`mmeb_data`), ranking and metrics (`metrics`), and roll-ups beside the paper (`aggregate`).

Kept import-free so that `import model.eval` costs nothing; import the submodule you need.
"""
