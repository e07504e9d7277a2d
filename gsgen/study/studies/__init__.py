"""The named studies, shipped with the package: ``--study=smoke``, ``cpu``, ``paper``.

Each file defines ``STUDY`` (see `gsgen.study.Study`) and is loaded by `gsgen.study.load`,
as a user's own study file given by its path is.
"""
