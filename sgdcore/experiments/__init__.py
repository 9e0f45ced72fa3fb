"""The paper's experiments, one module each: ``run(...) -> DataFrame``, ``plot(df)`` and
the command-line hooks ``NAME``, ``add_arguments(parser)`` and ``main(args)``.
"""
